"""`edlm sample [--denoiser SPEC] [--energy ar:SPEC] ... --out FILE.jsonl`: sample from a masked
diffusion model (an edlm checkpoint, a `pretrained:` directory, a `bundled:NAME` model - by default
`bundled:text8-small-mdlm` - or `hf:ID_OR_PATH` for an MDLM hub checkpoint such as
`hf:kuleshov-group/mdlm-owt`; see `edlm.loading.specs`), optionally with EDLM
importance-sampled denoising under an AR energy, or (`--sampler glauber`) run Glauber dynamics with
the AR model of `--energy` as the target and the denoiser as the infill proposal.

Each JSONL line holds `index`, `ids` (token ids), `text` (decoded), `seed`, the sampler settings and
what the sampler measured: `ess_mean` for mdlm (the mean effective sample size over the steps where
importance sampling ran; null without it), `acceptance`, `energy_initial` and `energy_final` for
glauber. Under `torchrun` the samples are split into contiguous blocks across processes and
rank 0 writes one merged file (atomically). Process r draws from a generator seeded with the seed
itself on rank 0 and with a value derived from (seed, r) on the others, so the samples depend on the
seed and on the number of processes.
"""

from __future__ import annotations

import json

from edlm.commands.glauber_options import (
    add_glauber_arguments, check_glauber_args, glauber_sample_fields, glauber_settings, run_glauber_from_args)

DEFAULT_DENOISER = "bundled:text8-small-mdlm"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sample", help="sample from a diffusion checkpoint (MDLM, or EDLM with an AR energy)",
        description="Sample with the MDLM ancestral sampler; with --energy, importance-sampled denoising "
                    "(k candidates per sequence, weights softmax(-E/tau)) at every step with t >= 1 - window.")
    parser.add_argument("--denoiser", default=DEFAULT_DENOISER,
                        help="diffusion model: an edlm run dir, checkpoint dir or ckpt:PATH; a pretrained dir "
                             "(pretrained:DIR_OR_ID); a model bundled with edlm (bundled:NAME); or hf:ID_OR_PATH, "
                             "an MDLM hub checkpoint such as hf:kuleshov-group/mdlm-owt (GPT-2 tokenizer) "
                             f"(default: {DEFAULT_DENOISER}, a small text8 MDLM)")
    parser.add_argument("--energy", default=None,
                        help="ar:SPEC, an AR energy from an edlm AR model (path, ckpt:PATH, pretrained:DIR_OR_ID, "
                             "bundled:NAME) or hf:ID_OR_PATH; or nce:SPEC, an NCE energy (edlm train ... "
                             "train.objective=nce, or its export)")
    parser.add_argument("--carry-over", action="store_true",
                        help="carry-over AR energy (AR terms at masked positions only)")
    parser.add_argument("--steps", type=int, default=None, help="reverse steps (default: the sequence length)")
    parser.add_argument("--k", type=int, default=1, help="candidates per sequence (default 1 = plain MDLM)")
    parser.add_argument("--window", type=float, default=0.0,
                        help="importance sampling at steps with t >= 1 - window; 0 = never, 1 = always (default 0)")
    parser.add_argument("--tau", type=float, default=1.0, help="temperature of the importance weights (default 1)")
    parser.add_argument("--num-samples", type=int, default=4, help="number of samples in total (default 4)")
    parser.add_argument("--seq-len", type=int, default=None,
                        help="tokens per sample (default: the checkpoint's data.seq_len)")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per batch on each process (default 16)")
    parser.add_argument("--prefix", default=None, help="text every sample starts with")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    parser.add_argument("--no-ema", action="store_true", help="use the trained weights instead of the EMA weights")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow an hf: energy model to run its own code")
    parser.add_argument("--out", required=True, help="JSONL file to write")
    parser.add_argument("--sampler", choices=["mdlm", "glauber"], default="mdlm",
                        help="mdlm: the (EDLM) diffusion sampler; glauber: causal generation by the --energy "
                             "AR model, then Glauber rounds with the denoiser as infill proposal (default mdlm)")
    add_glauber_arguments(parser)
    parser.set_defaults(func=run)


def check_sampler_args(args) -> None:
    """Checks of the options `edlm sample` shares with `edlm demo` (k, window, tau, steps, num_samples,
    seq_len, energy) that need no model: raise EdlmError with one sentence."""
    from edlm.errors import require

    require(args.k >= 1, f"--k {args.k} must be at least 1 (1 = plain MDLM).")
    require(0.0 <= args.window <= 1.0, f"--window {args.window} must lie in [0, 1].")
    require(args.tau > 0, f"--tau {args.tau} must be positive.")
    require(args.steps is None or args.steps >= 1, f"--steps {args.steps} must be at least 1.")
    require(args.num_samples >= 1, f"--num-samples {args.num_samples} must be at least 1.")
    require(args.seq_len is None or args.seq_len >= 1, f"--seq-len {args.seq_len} must be at least 1.")
    require(args.energy is None or args.energy.startswith(("ar:", "nce:")),
            f"--energy {args.energy!r} is not supported; use ar:CKPT, ar:hf:ID_OR_PATH or nce:CKPT.")
    require(args.energy is None or bool(args.energy.split(":", 1)[1]),
            f"--energy {args.energy} names no model; write ar:CKPT or nce:CKPT.")


def check_args(args) -> None:
    """Argument checks that need no model: raise EdlmError with one sentence."""
    from edlm.errors import require

    check_sampler_args(args)
    require(args.batch_size >= 1, f"--batch-size {args.batch_size} must be at least 1.")
    require(not args.carry_over or (args.energy or "").startswith("ar:"), "--carry-over needs --energy ar:CKPT.")
    if args.sampler == "glauber":
        check_glauber_args(args)
        require((args.energy or "").startswith("ar:"),
                "--sampler glauber needs the target AR model as --energy ar:CKPT.")


def check_seq_len(seq_len: int, model, what: str) -> None:
    """EdlmError unless `model` (named `what` in the message) takes sequences of `seq_len` tokens."""
    from edlm.errors import require

    limit = getattr(getattr(model, "config", None), "max_seq_len", None)
    require(limit is None or seq_len <= limit,
            f"--seq-len {seq_len} exceeds the {what}'s max_seq_len={limit}; use a shorter --seq-len.")


def load_denoiser(spec: str, *, device, ema: bool = True):
    """The `LoadedModel` of a masked diffusion model spec (`edlm.loading.specs`), with a known tokenizer
    that fits its vocabulary; EdlmError otherwise."""
    from edlm.data.tokenizers import check_vocab
    from edlm.errors import require
    from edlm.loading.specs import load_model_spec

    loaded = load_model_spec(spec, device=str(device), ema=ema)
    denoiser, tokenizer = loaded.model, loaded.tokenizer
    require(not hasattr(denoiser, "token_logprobs") and hasattr(denoiser, "vocab_size")
            and not hasattr(denoiser, "xt_embed"),
            f"--denoiser {spec!r} is not a masked diffusion model; pass a diffusion (mdlm) checkpoint.")
    require(tokenizer is not None, f"--denoiser {spec!r} has no known tokenizer; save its tokenizer "
            "(tokenizer.json) in the checkpoint directory.")
    check_vocab(tokenizer, denoiser.vocab_size)
    return loaded


def load_energy(spec: str, denoiser, tokenizer, seq_len: int, *, device, carry_over: bool = False,
                trust_remote_code: bool = False, ema: bool = True):
    """(energy, causal LM or None) of an `--energy` spec: `ar:SPEC` (an AR energy from a causal LM, which
    is returned too) or `nce:SPEC` (an NCE energy; the LM is None). EdlmError unless it fits `denoiser`
    (vocabulary, mask id), its `tokenizer` and sequences of `seq_len` tokens."""
    from edlm.energy import AREnergy, NCEEnergy, check_compatible
    from edlm.errors import require
    from edlm.loading.specs import load_model_spec, same_tokenizer
    from edlm.loading.pretrained import from_pretrained, pretrained_spec

    lm = None
    if spec.startswith("nce:"):
        pretrained = pretrained_spec(spec[4:])
        if pretrained is not None:
            energy, _ = from_pretrained(pretrained, device=device)
            require(isinstance(energy, NCEEnergy), f"--energy {spec!r} is not an NCE energy; "
                    "pass a directory exported from an edlm train ... train.objective=nce run.")
        else:
            energy = NCEEnergy.from_checkpoint(spec, ema=ema, device=device)
        check_compatible(denoiser, energy)
    else:
        loaded = load_model_spec(spec[3:], device=str(device), trust_remote_code=trust_remote_code, ema=ema)
        require(loaded.causal, f"--energy {spec!r} is not a causal LM; pass an AR checkpoint or an hf: causal LM.")
        lm = loaded.model
        energy = AREnergy(lm, carry_over=carry_over)
        check_compatible(denoiser, energy)
        difference = same_tokenizer(tokenizer, loaded.tokenizer)
        require(difference is None,
                f"the energy's tokenizer {getattr(loaded.tokenizer, 'name', '?')} differs from the denoiser's "
                f"{getattr(tokenizer, 'name', '?')}: {difference}; use models that share one tokenizer.")
        lm_eos, our_eos = getattr(lm, "eos_id", None), getattr(tokenizer, "eos_id", None)
        require(lm_eos is None or our_eos is None or lm_eos == our_eos,
                f"the energy model ends sequences with token {lm_eos} but the denoiser's tokenizer uses "
                f"{our_eos}; use models that share one tokenizer and special tokens.")
    check_seq_len(seq_len, lm if lm is not None else energy, "--energy model")
    return energy, lm


def _rank_seed(seed: int, rank: int) -> int:
    if rank == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([seed, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


def run(args) -> int:
    import sys

    import torch
    import torch.distributed as dist

    from edlm.sampling import sample
    from edlm.errors import require
    from edlm.util.atomic import write_text_atomic
    from edlm.train.runtime import runtime

    check_args(args)
    with runtime(args.device) as rt:
        loaded_denoiser = load_denoiser(args.denoiser, device=rt.device, ema=not args.no_ema)
        denoiser, tokenizer = loaded_denoiser.model, loaded_denoiser.tokenizer
        seq_len = args.seq_len or loaded_denoiser.seq_len
        steps = args.steps or seq_len
        check_seq_len(seq_len, denoiser, "denoiser")
        energy = lm = None
        if args.energy is not None:
            energy, lm = load_energy(args.energy, denoiser, tokenizer, seq_len, device=rt.device,
                                     carry_over=args.carry_over, trust_remote_code=args.trust_remote_code,
                                     ema=not args.no_ema)
            if rt.is_main and args.sampler == "mdlm" and (args.k == 1 or args.window == 0):
                print("edlm: note: --energy has no effect with --k 1 or --window 0 (plain MDLM).", file=sys.stderr)
        prefix = None
        if args.prefix:
            prefix = tokenizer.encode(args.prefix)
            require(len(prefix) <= seq_len, f"--prefix encodes to {len(prefix)} tokens, more than --seq-len {seq_len}; "
                    "shorten the prefix or raise --seq-len.")

        block = torch.arange(args.num_samples).tensor_split(rt.world_size)[rt.rank]
        mine = torch.empty((0, seq_len), dtype=torch.long)
        extras: list[dict] = []
        if block.numel():
            generator = torch.Generator(device=rt.device).manual_seed(_rank_seed(args.seed, rt.rank))
            if args.sampler == "glauber":
                mine, gstats = run_glauber_from_args(args, lm, denoiser, num_samples=block.numel(), seq_len=seq_len,
                                                     prefix=prefix, generator=generator, batch_size=args.batch_size,
                                                     progress=rt.is_main)
                extras = glauber_sample_fields(gstats)
            else:
                mine, stats = sample(denoiser, block.numel(), seq_len, steps, energy=energy, k=args.k,
                                          window=args.window, tau=args.tau, prefix=prefix, generator=generator,
                                          batch_size=args.batch_size, return_stats=True, progress=rt.is_main)
                extras = [dict(ess_mean=None if e != e else e) for e in stats.ess.nanmean(dim=1).tolist()]
        part = [(int(i), ids, extra) for i, ids, extra in zip(block, mine.cpu().tolist(), extras)]
        if rt.distributed:
            parts = [None] * rt.world_size
            dist.all_gather_object(parts, part)
        else:
            parts = [part]
        if rt.is_main:
            settings = dict(denoiser=args.denoiser, energy=args.energy, seq_len=seq_len, prefix=args.prefix,
                            world_size=rt.world_size)
            if args.sampler == "glauber":
                settings.update(glauber_settings(args))
            else:
                settings.update(sampler="mdlm", carry_over=args.carry_over, steps=steps, k=args.k,
                                window=args.window, tau=args.tau)
            lines = []
            for index, ids, extra in sorted((row for rows in parts for row in rows), key=lambda row: row[0]):
                text = tokenizer.decode(ids)
                print(text)
                lines.append(json.dumps(dict(index=index, ids=ids, text=text, seed=args.seed, **extra, **settings)))
            write_text_atomic(args.out, "\n".join(lines) + "\n")
            print(f"wrote {len(lines)} samples to {args.out}", file=sys.stderr)
        rt.barrier()
    return 0
