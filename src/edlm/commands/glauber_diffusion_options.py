"""Command-line glue for `edlm sample --sampler glauber-diffusion --denoiser MODEL [--rounds N] [--block M]`:
which options apply, loading the UL2-style model, the sampler call (Algorithm 2 of the Glauber-dynamics
paper: causal generation in the model's causal mode, then `edlm.glauber_diffusion.reverse` over the
rounds) and the JSONL settings. `edlm.commands.sample` wires these in; it shares `--rounds` and `--block`
with `--sampler glauber` (`edlm.commands.glauber_options`).
"""

from __future__ import annotations

import torch

from edlm.errors import require

SAMPLER = "glauber-diffusion"
# options of `edlm sample` that do not apply to this sampler (dest -> flag); the mdlm sampler's are refused too
REFUSED = {"energy": "--energy", "steps": "--steps", "parallel": "--parallel", "parallel_test": "--parallel-test",
           "metropolis": "--no-metropolis", "predictor": "--predictor"}


def check_glauber_diffusion_applicable(args) -> None:
    """Refuse, in one sentence, the options that do not apply to --sampler glauber-diffusion (call before
    the defaults are filled in: a given option is one that is not None)."""
    given = [flag for dest, flag in REFUSED.items() if getattr(args, dest, None) is not None]
    require(not given, f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to --sampler {SAMPLER} "
            "(the --denoiser model is its own causal initialisation and reverse model); drop "
            f"{'it' if len(given) == 1 else 'them'}.")
    require(not args.trust_remote_code, f"--trust-remote-code applies to an hf: --energy model only; drop it with "
            f"--sampler {SAMPLER}.")
    require(args.rounds is None or args.rounds >= 1, f"--rounds {args.rounds} must be at least 1.")
    require(args.block is None or args.block >= 1, f"--block {args.block} must be at least 1.")


def load_glauber_model(spec: str, *, device, ema: bool = True):
    """The `LoadedModel` of a UL2-style model (kind ul2 or glauber) with a known tokenizer that fits it."""
    from edlm.data.tokenizers import check_vocab
    from edlm.loading.specs import load_spec
    from edlm.models.ul2 import UL2Model

    loaded = load_spec(spec, device=device, ema=ema, what="--denoiser")
    require(isinstance(loaded.model, UL2Model), f"--sampler {SAMPLER} needs a UL2-style model (edlm train ... "
            f"train.objective=glauber, or ul2), and --denoiser {spec!r} is not one; pass such a model.")
    require(loaded.tokenizer is not None, f"--denoiser {spec!r} has no known tokenizer; save its tokenizer "
            "(tokenizer.json) in the checkpoint directory.")
    check_vocab(loaded.tokenizer, loaded.model.vocab_size)
    return loaded


def trained_rounds(loaded) -> int | None:
    """The rounds N a Glauber-trained model (kind glauber) was trained with; None for other models."""
    config = loaded.config
    return config.train.glauber_rounds if config is not None and config.train.objective == "glauber" else None


def resolve_rounds(requested: int | None, loaded, length: int, model: str, length_what: str, fix: str) -> int:
    """The rounds to run: `requested` (--rounds), by default the model's training rounds (1 for a model
    Glauber training never saw). A Glauber-trained model runs only with its own rounds and sequence
    length, the time scale and permutations it learned. model: how the messages name the model (its
    option and spec); length_what: what set `length` (for the message); fix: the fix of a wrong length."""
    trained = trained_rounds(loaded)
    rounds = requested or trained or 1
    if trained is not None:
        require(rounds == trained, f"--rounds {rounds} differs from the {trained} round(s) {model} was trained "
                f"with; drop --rounds or pass --rounds {trained}.")
        require(length == loaded.seq_len, f"{length_what} {length} differs from the length {loaded.seq_len} {model} "
                f"was trained on (its times and permutations); {fix}.")
    return rounds


def run_glauber_diffusion(model, *, rounds: int, block: int, num_samples: int, seq_len: int, prefix=None,
                          generator: torch.Generator | None = None, batch_size: int | None = None,
                          progress: bool = False) -> torch.Tensor:
    """Long[num_samples, seq_len]: causal samples of the model's causal mode (continuing `prefix`), then the
    reverse chain over `fixed_order(rounds, seq_len)` with the prefix positions clamped; chunk after chunk."""
    from edlm.sampling.ar import ar_sample
    from edlm.sampling.glauber_diffusion import fixed_order, reverse

    perms = fixed_order(rounds, seq_len)
    clamp = torch.zeros(seq_len, dtype=torch.bool)
    clamp[:0 if prefix is None else len(prefix)] = True
    init = ar_sample(model, num_samples, seq_len, prefix=prefix, generator=generator, batch_size=batch_size,
                     progress=progress)
    chunk = batch_size or num_samples
    return torch.cat([reverse(model, init[start:start + chunk], perms, generator=generator, block=block, clamp=clamp)
                      for start in range(0, num_samples, chunk)])


def glauber_diffusion_settings(rounds: int, block: int) -> dict:
    """The sampler's JSONL settings."""
    return dict(sampler=SAMPLER, rounds=rounds, block=block)
