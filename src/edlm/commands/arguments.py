"""Option helpers that several subcommands share (this module is not a subcommand: it has no `register`).

Commands never import each other; what two of them share lives here or in `glauber_options`.
"""

from __future__ import annotations

DEFAULT_DENOISER = "bundled:text8-small-mdlm"


def int_list(option: str, text: str | None) -> list[int] | None:
    """'64,128' -> [64, 128]; raises EdlmError unless every item is an integer >= 1."""
    from edlm.errors import require

    if text is None:
        return None
    items = [s.strip() for s in str(text).split(",")]
    require(all(s.isdigit() and int(s) >= 1 for s in items),
            f"{option} {text!r} must be a positive integer or a comma list of them, e.g. 64,128.")
    return [int(s) for s in items]


def check_sampler_args(args) -> None:
    """Checks of the options `edlm sample` shares with `edlm demo` (k, window, tau, temperature, steps,
    num_samples, seq_len, the energy spec's form) that need no model: raise EdlmError with one sentence."""
    from edlm.errors import require
    from edlm.loading.energy_specs import parse_energy_spec

    require(args.k >= 1, f"--k {args.k} must be at least 1 (1 = plain MDLM).")
    require(0.0 <= args.window <= 1.0, f"--window {args.window} must lie in [0, 1].")
    require(args.tau > 0, f"--tau {args.tau} must be positive.")
    require(args.temperature > 0, f"--temperature {args.temperature} must be positive (1 = the model).")
    require(args.steps is None or args.steps >= 1, f"--steps {args.steps} must be at least 1.")
    require(args.num_samples >= 1, f"--num-samples {args.num_samples} must be at least 1.")
    require(args.seq_len is None or args.seq_len >= 1, f"--seq-len {args.seq_len} must be at least 1.")
    if args.energy is not None:
        parse_energy_spec(args.energy, "--energy")


def load_denoiser(spec: str, *, device, ema: bool = True, score: bool = False):
    """The `LoadedModel` of a masked diffusion model spec (`edlm.loading.specs`), or with score=True also
    of a score model (SEDD), with a known tokenizer that fits its vocabulary; EdlmError otherwise."""
    from edlm.data.tokenizers import check_vocab
    from edlm.errors import require
    from edlm.loading.specs import load_spec

    loaded = load_spec(spec, device=device, ema=ema, role=("denoiser", "score") if score else "denoiser",
                       what="--denoiser")
    require(loaded.tokenizer is not None, f"--denoiser {spec!r} has no known tokenizer; save its tokenizer "
            "(tokenizer.json) in the checkpoint directory.")
    check_vocab(loaded.tokenizer, loaded.model.vocab_size)
    return loaded
