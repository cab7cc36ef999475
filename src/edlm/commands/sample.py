"""`edlm sample [--denoiser MODEL] [--energy ENERGY] ... --out FILE.jsonl`: sample from a masked
diffusion model (any model spec of `edlm.loading.specs`: a checkpoint, a `pretrained:` directory, a
`bundled:NAME` model - by default `bundled:text8-small-mdlm` - or `hf:ID_OR_PATH` for an MDLM hub
checkpoint such as `hf:kuleshov-group/mdlm-owt`), optionally with EDLM importance-sampled denoising
under an energy (`ar:MODEL`, `coar:MODEL` or `nce:MODEL`, see `edlm.loading.energy_specs`), or
(`--sampler glauber`) run Glauber dynamics with the AR model of `--energy ar:MODEL` as the target and
the denoiser as the infill proposal. A SEDD score model as `--denoiser` (`edlm train ...
train.objective=sedd`, or `hf:louaaron/sedd-small`) is sampled by SEDD's sampler with `--predictor
analytic` or `euler`, or, with `--energy` (absorbing graph), is the proposal of the EDLM sampler.
`--sampler glauber-diffusion` samples a Glauber diffusion model (a UL2-style `--denoiser`, trained by
`train.objective=glauber`): causal generation, then the learned reverse steps over `--rounds` rounds
(`edlm.commands.glauber_diffusion_options`). Options of the other sampler are refused, and so is an
`--energy` that could not take effect (`--k 1` or `--window 0`).

Each JSONL line holds `index`, `ids` (token ids), `text` (decoded), `seed`, where the sample came from
(`tokenizer`: the denoiser's tokenizer spec, e.g. `char` or `gpt2`; `denoiser`; `energy` when one was
used; `prompts`, `prompt_len` and `cont_len` with `--prompts`, `edlm.commands.prompt_options`), the
sampler settings and what the sampler measured: `ess_mean` for mdlm (the mean effective sample size over
the steps where importance sampling ran; null without it), `acceptance`, `energy_initial` and `energy_final` for
glauber. `--trace FILE.html` also writes the page of `edlm.reports.trace_html` for sample 0 (rank 0
draws it). Under `torchrun` the samples are split into contiguous blocks across processes and
rank 0 writes one merged file (atomically). Process r draws from a generator seeded with the seed
itself on rank 0 and with a value derived from (seed, r) on the others, so the samples depend on the
seed and on the number of processes.
"""

from __future__ import annotations

import json
from pathlib import Path

from edlm.commands.arguments import DEFAULT_DENOISER, check_sampler_args, load_denoiser
from edlm.commands.glauber_diffusion_options import (
    SAMPLER as GLAUBER_DIFFUSION, check_glauber_diffusion_applicable, glauber_diffusion_settings, load_glauber_model,
    resolve_rounds, run_glauber_diffusion)
from edlm.commands.glauber_options import (
    GLAUBER_DEFAULTS, GLAUBER_FLAGS, add_glauber_arguments, check_glauber_args, glauber_sample_fields, glauber_settings,
    run_glauber_from_args)
from edlm.commands.prompt_options import add_prompt_arguments, check_prompt_args, load_prompts, prompt_settings

# Options of the mdlm sampler: effective defaults (the parser's default is None, so a given value is known).
MDLM_DEFAULTS = {"k": 1, "window": 0.0, "tau": 1.0, "unmasking": "random", "unmasking_noise": 0.0,
                 "temperature": 1.0, "eta": 0.0}
MDLM_FLAGS = {"k": "--k", "window": "--window", "tau": "--tau", "unmasking": "--unmasking",
              "unmasking_noise": "--unmasking-noise", "temperature": "--temperature", "remasking": "--remasking",
              "eta": "--eta", "remasking_window": "--remasking-window", "block_size": "--block-size", "trace": "--trace"}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sample", help="sample from a diffusion checkpoint (MDLM, or EDLM with an AR energy)",
        description="Sample with the MDLM ancestral sampler; with --energy, importance-sampled denoising "
                    "(k candidates per sequence, weights softmax(-E/tau)) at every step with t >= 1 - window.")
    parser.add_argument("--denoiser", default=DEFAULT_DENOISER,
                        help="diffusion model: an edlm run dir, checkpoint dir or ckpt:PATH; a pretrained dir "
                             "(pretrained:DIR_OR_ID); a model bundled with edlm (bundled:NAME); or hf:ID_OR_PATH, "
                             "an MDLM hub checkpoint such as hf:kuleshov-group/mdlm-owt (GPT-2 tokenizer); a masked "
                             "diffusion (mdlm) or SEDD score model (sedd, hf:louaaron/sedd-small) "
                             f"(default: {DEFAULT_DENOISER}, a small text8 MDLM)")
    parser.add_argument("--energy", default=None,
                        help="ar:MODEL, the AR energy of a causal LM; coar:MODEL, the carry-over AR energy (AR terms "
                             "at masked positions only); or nce:MODEL, an NCE energy (edlm train ... "
                             "train.objective=nce, or its export). MODEL: a path, ckpt:PATH, pretrained:DIR_OR_ID, "
                             "bundled:NAME or hf:ID_OR_PATH")
    parser.add_argument("--steps", type=int, default=None, help="reverse steps (default: the sequence length)")
    parser.add_argument("--k", type=int, default=None,
                        help="candidates per sequence (default 1 = plain MDLM; --sampler mdlm only)")
    parser.add_argument("--window", type=float, default=None,
                        help="importance sampling at steps with t >= 1 - window; 0 = never, 1 = always "
                             "(default 0; --sampler mdlm only)")
    parser.add_argument("--tau", type=float, default=None,
                        help="temperature of the importance weights (default 1; --sampler mdlm only)")
    parser.add_argument("--num-samples", type=int, default=4, help="number of samples in total (default 4)")
    parser.add_argument("--seq-len", type=int, default=None,
                        help="tokens per sample (default: the checkpoint's data.seq_len; with --prompts, "
                             "--prompt-len + --cont-len)")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per batch on each process (default 16)")
    parser.add_argument("--prefix", default=None, help="text every sample starts with")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    parser.add_argument("--no-ema", action="store_true", help="use the trained weights instead of the EMA weights")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow an hf: energy model to run its own code")
    parser.add_argument("--out", required=True, metavar="FILE", help="JSONL file to write (one sample per line)")
    parser.add_argument("--trace", default=None, metavar="FILE.html",
                        help="also write a self-contained HTML page that steps through the denoising of sample 0: "
                             "the sequence after each step with masked, revealed and remasked positions marked, and "
                             "inside the --window the --k candidates with their energies, importance weights and "
                             "effective sample size (--sampler mdlm only)")
    parser.add_argument("--sampler", choices=["mdlm", "glauber", GLAUBER_DIFFUSION], default="mdlm",
                        help="mdlm: the (EDLM) diffusion sampler; glauber: causal generation by the --energy "
                             "AR model, then Glauber rounds with the denoiser as infill proposal; "
                             "glauber-diffusion: a Glauber diffusion model (train.objective=glauber) as --denoiser, "
                             "its causal generation then --rounds rounds of its learned reverse steps (--block sites "
                             "per call) (default mdlm)")
    parser.add_argument("--predictor", choices=["analytic", "euler"], default=None,
                        help="SEDD's predictor for a score-model --denoiser without --energy: analytic (Tweedie "
                             "tau-leaping) or euler (default analytic; masked diffusion models refuse it)")
    add_adaptive_arguments(parser)
    add_glauber_arguments(parser)
    add_prompt_arguments(parser)
    parser.set_defaults(func=run)


def _window(text: str) -> tuple[float, float]:
    """`T_ON,T_OFF` -> (t_on, t_off)."""
    import argparse

    try:
        t_on, t_off = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not T_ON,T_OFF (two numbers, e.g. 0.55,0.05)") from None
    return t_on, t_off


def add_adaptive_arguments(parser) -> None:
    """Options of the mdlm sampler beyond MDLM's step: unmasking order, ReMDM remasking, blocks."""
    parser.add_argument("--unmasking", choices=["random", "confidence", "margin", "entropy"], default=None,
                        help="which masked positions a step reveals: random (MDLM, exact) or the heuristics "
                             "confidence, margin, entropy (default random; --sampler mdlm only)")
    parser.add_argument("--unmasking-noise", type=float, default=None,
                        help="scale of Gumbel noise on the adaptive scores (default 0; Kim et al. use 0.5)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="draw tokens from softmax(logits / temperature) (default 1 = the model)")
    parser.add_argument("--remasking", choices=["cap", "rescale", "conf"], default=None,
                        help="ReMDM remasking schedule (default: none)")
    parser.add_argument("--eta", type=float, default=None,
                        help="ReMDM eta in [0, 1] (default 0 = MDLM; needs --remasking)")
    parser.add_argument("--remasking-window", type=_window, default=None, metavar="T_ON,T_OFF",
                        help="remask only at steps with t_off < t <= t_on (ReMDM's loop window; default 1,0)")
    parser.add_argument("--block-size", type=int, default=None,
                        help="generate blocks of this many tokens left to right, each with --steps steps; "
                             "a --seq-len beyond the model's context is generated semi-autoregressively")


def check_applicable(args) -> None:
    """Refuse the options of the sampler not chosen (one sentence), then fill in the effective defaults
    of the options the user left out (their parser default is None)."""
    from edlm.errors import require

    defaults = {**MDLM_DEFAULTS, **GLAUBER_DEFAULTS}
    if args.sampler in ("glauber", GLAUBER_DIFFUSION):
        given = [flag for dest, flag in MDLM_FLAGS.items() if getattr(args, dest) is not None]
        require(not given, f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to --sampler mdlm only; "
                f"drop it with --sampler {args.sampler}.")
    if args.sampler == GLAUBER_DIFFUSION:
        check_glauber_diffusion_applicable(args)
        del defaults["rounds"]  # the model's own rounds, known once it is loaded (resolve_rounds)
    elif args.sampler == "glauber":
        require(args.parallel_test is None or (args.parallel or 1) > 1,
                f"--parallel-test {args.parallel_test} applies with --parallel 2 or more only; drop it or raise --parallel.")
    else:
        given = [flag for dest, flag in GLAUBER_FLAGS.items() if getattr(args, dest) is not None]
        require(not given, f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to --sampler glauber "
                "only; add --sampler glauber or drop it.")
        for dest in ("eta", "remasking_window"):
            require(getattr(args, dest) is None or args.remasking is not None,
                    f"{MDLM_FLAGS[dest]} needs --remasking cap, rescale or conf; add it or drop {MDLM_FLAGS[dest]}.")
        require(args.unmasking_noise is None or args.unmasking not in (None, "random"),
                "--unmasking-noise applies to --unmasking confidence, margin or entropy only; add one or drop it.")
    for dest, value in defaults.items():
        if getattr(args, dest) is None:
            setattr(args, dest, value)


def mdlm_flags_given(args) -> list[str]:
    """The options of the mdlm sampler on the command line (before `check_applicable` fills defaults)."""
    return [flag for dest, flag in MDLM_FLAGS.items() if getattr(args, dest) is not None]


def check_model_kind(args, score: bool, mdlm_given: list[str]) -> None:
    """Refuse what does not apply to the loaded --denoiser (one sentence), then default --predictor.

    A masked diffusion model takes no --predictor. A score model (SEDD) takes no --sampler glauber;
    without --energy SEDD's sampler runs, which takes none of the mdlm sampler's options
    (`mdlm_given`); with --energy it is the EDLM sampler's proposal, and --predictor does not apply."""
    from edlm.errors import require

    if not score:
        require(args.predictor is None, f"--predictor applies to a score model (SEDD) --denoiser only, and "
                f"{args.denoiser!r} is a masked diffusion model; drop --predictor.")
        return
    require(args.sampler == "mdlm", f"--sampler {args.sampler} needs a masked diffusion --denoiser, and "
            f"{args.denoiser!r} is a score model (SEDD); drop --sampler {args.sampler}.")
    if args.energy is not None:
        require(args.predictor is None, "--predictor selects SEDD's sampler, but with --energy the score model is the "
                "proposal of the EDLM sampler; drop --predictor or --energy.")
        return
    require(not mdlm_given, f"{', '.join(mdlm_given)} {'applies' if len(mdlm_given) == 1 else 'apply'} to the mdlm "
            f"sampler only, and a score model (SEDD) --denoiser without --energy is sampled by SEDD's --predictor; "
            "drop it.")
    args.predictor = args.predictor or "analytic"


def check_args(args) -> None:
    """Argument checks that need no model: raise EdlmError with one sentence."""
    from edlm.errors import require
    from edlm.loading.energy_specs import parse_energy_spec

    check_applicable(args)
    check_prompt_args(args)
    check_sampler_args(args)
    require(args.batch_size >= 1, f"--batch-size {args.batch_size} must be at least 1.")
    require(args.trace is None or Path(args.trace).expanduser().resolve() != Path(args.out).expanduser().resolve(),
            f"--trace {args.trace} is the --out file; pass another path for the HTML page.")
    require(not args.trust_remote_code or args.energy is not None,
            "--trust-remote-code applies to an hf: --energy model only; drop it or pass --energy.")
    if args.sampler == "glauber":
        check_glauber_args(args)
        require(args.energy is not None and parse_energy_spec(args.energy, "--energy")[0] == "ar",
                f"--sampler glauber needs the target AR model as --energy ar:MODEL, not {args.energy!r}.")
    elif args.sampler != GLAUBER_DIFFUSION:
        require(0.0 <= args.eta <= 1.0, f"--eta {args.eta} must lie in [0, 1].")
        require(args.unmasking_noise >= 0, f"--unmasking-noise {args.unmasking_noise} must be at least 0.")
        require(args.block_size is None or args.block_size >= 1, f"--block-size {args.block_size} must be at least 1.")
        t_on, t_off = args.remasking_window or (1.0, 0.0)
        require(0.0 <= t_off < t_on <= 1.0,
                f"--remasking-window {t_on:g},{t_off:g} must have 0 <= T_OFF < T_ON <= 1.")
        require(args.energy is None or (args.k > 1 and args.window > 0),
                f"--energy {args.energy!r} would have no effect with --k {args.k} and --window {args.window:g} "
                "(plain MDLM); pass --k 2 or more and a --window above 0, or drop --energy.")
        require(args.energy is not None or args.k == 1 or args.window == 0,
                f"--k {args.k} with --window {args.window:g} needs an --energy to weight the candidates; pass "
                "--energy ar:MODEL, coar:MODEL or nce:MODEL, or use --k 1.")


def adaptive_options(args, context: int | None, record: bool = False) -> dict:
    """The `edlm.sample` keywords of the adaptive options; with record=True only those that take effect
    (the unmasking rule always), as written to the output."""
    options = dict(unmasking=args.unmasking)
    if args.unmasking_noise or not record:
        options.update(unmasking_noise=args.unmasking_noise)
    if args.temperature != 1.0 or not record:
        options.update(temperature=args.temperature)
    if args.remasking is not None:
        options.update(remasking=args.remasking, eta=args.eta, remasking_window=args.remasking_window or (1.0, 0.0))
    if args.block_size is not None:
        options.update(block_size=args.block_size, context=context)
    return options


def _rank_seed(seed: int, rank: int) -> int:
    if rank == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([seed, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


def run(args) -> int:
    import sys

    import torch
    import torch.distributed as dist

    from edlm.errors import require
    from edlm.loading.energy_specs import load_energy_spec
    from edlm.loading.specs import check_seq_len, max_seq_len
    from edlm.reports.trace_html import write_trace_html
    from edlm.sampling import sample
    from edlm.sampling.trace import SampleTrace
    from edlm.train.runtime import runtime
    from edlm.util.atomic import write_text_atomic
    from edlm.util.outputs import check_output_path

    check_output_path(args.out, option="--out", kind="file")
    check_output_path(args.trace, option="--trace", kind="file")
    mdlm_given = mdlm_flags_given(args)
    check_args(args)
    with runtime(args.device) as rt:
        loaded_denoiser = (load_glauber_model(args.denoiser, device=rt.device, ema=not args.no_ema)
                           if args.sampler == GLAUBER_DIFFUSION else
                           load_denoiser(args.denoiser, device=rt.device, ema=not args.no_ema, score=True))
        denoiser, tokenizer = loaded_denoiser.model, loaded_denoiser.tokenizer
        check_model_kind(args, loaded_denoiser.role == "score", mdlm_given)
        sedd_sampler = loaded_denoiser.role == "score" and args.energy is None
        seq_len = args.seq_len or loaded_denoiser.seq_len
        if args.sampler == GLAUBER_DIFFUSION:
            args.rounds = resolve_rounds(args.rounds, loaded_denoiser, seq_len, f"--denoiser {args.denoiser!r}",
                                         "--seq-len", f"pass --seq-len {loaded_denoiser.seq_len}")
        steps = args.steps or seq_len
        context = max_seq_len(denoiser) if args.block_size else None
        if context is None or seq_len <= context:
            check_seq_len(seq_len, denoiser, "denoiser")
        energy = lm = None
        if args.energy is not None:
            loaded_energy = load_energy_spec(args.energy, denoiser=denoiser, tokenizer=tokenizer, seq_len=min(seq_len, context or seq_len),
                                             device=rt.device, trust_remote_code=args.trust_remote_code,
                                             ema=not args.no_ema, what="--energy")
            energy, lm = loaded_energy.energy, loaded_energy.lm
        prefix = None
        if args.prompts is not None:
            prefix = load_prompts(args, tokenizer)
        elif args.prefix:
            prefix = tokenizer.encode(args.prefix)
            require(len(prefix) <= seq_len, f"--prefix encodes to {len(prefix)} tokens, more than --seq-len {seq_len}; "
                    "shorten the prefix or raise --seq-len.")

        block = torch.arange(args.num_samples).tensor_split(rt.world_size)[rt.rank]
        mine = torch.empty((0, seq_len), dtype=torch.long)
        extras: list[dict] = []
        trace = SampleTrace(index=0) if args.trace is not None and rt.is_main else None  # rank 0 draws sample 0
        if block.numel():
            generator = torch.Generator(device=rt.device).manual_seed(_rank_seed(args.seed, rt.rank))
            if args.prompts is not None:
                prefix = prefix[block]  # this process's samples continue their own prompts
            if args.sampler == "glauber":
                mine, gstats = run_glauber_from_args(args, lm, denoiser, num_samples=block.numel(), seq_len=seq_len,
                                                     prefix=prefix, generator=generator, batch_size=args.batch_size,
                                                     progress=rt.is_main)
                extras = glauber_sample_fields(gstats)
            elif args.sampler == GLAUBER_DIFFUSION:
                mine = run_glauber_diffusion(denoiser, rounds=args.rounds, block=args.block, num_samples=block.numel(),
                                             seq_len=seq_len, prefix=prefix, generator=generator,
                                             batch_size=args.batch_size, progress=rt.is_main)
                extras = [{} for _ in range(block.numel())]
            else:
                options = (dict(predictor=args.predictor) if sedd_sampler else
                           dict(energy=energy, k=args.k, window=args.window, tau=args.tau, trace=trace,
                                **adaptive_options(args, context)))
                mine, stats = sample(denoiser, block.numel(), seq_len, steps, prefix=prefix, generator=generator,
                                     batch_size=args.batch_size, return_stats=True, progress=rt.is_main, **options)
                extras = [dict(ess_mean=None if e != e else e) for e in stats.ess.nanmean(dim=1).tolist()]
        part = [(int(i), ids, extra) for i, ids, extra in zip(block, mine.cpu().tolist(), extras)]
        if rt.distributed:
            parts = [None] * rt.world_size
            dist.all_gather_object(parts, part)
        else:
            parts = [part]
        if rt.is_main:
            settings = dict(tokenizer=loaded_denoiser.tokenizer_spec, denoiser=args.denoiser,
                            **({} if energy is None else dict(energy=args.energy)), seq_len=seq_len,
                            prefix=args.prefix, **prompt_settings(args), world_size=rt.world_size)
            if args.sampler == "glauber":
                settings.update(glauber_settings(args))
            elif args.sampler == GLAUBER_DIFFUSION:
                settings.update(glauber_diffusion_settings(args.rounds, args.block))
            elif sedd_sampler:
                settings.update(sampler="sedd", steps=steps, predictor=args.predictor)
            else:
                settings.update(sampler="mdlm", steps=steps, k=args.k, window=args.window, tau=args.tau,
                                **adaptive_options(args, context, record=True))
            lines = []
            for index, ids, extra in sorted((row for rows in parts for row in rows), key=lambda row: row[0]):
                text = tokenizer.decode(ids)
                print(text)
                lines.append(json.dumps(dict(index=index, ids=ids, text=text, seed=args.seed, **extra, **settings)))
            write_text_atomic(args.out, "\n".join(lines) + "\n")
            print(f"wrote {len(lines)} samples to {args.out}", file=sys.stderr)
            if trace is not None:
                write_trace_html(args.trace, trace, lambda token: tokenizer.decode([token]),
                                 title="edlm sample: the denoising of sample 0", settings=dict(seed=args.seed, **settings))
                print(f"wrote the denoising of sample 0 to {args.trace}", file=sys.stderr)
        rt.barrier()
    return 0
