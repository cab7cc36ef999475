"""`edlm eval latency`: wall time to generate N sequences of length L with MDLM (or a SEDD score model and
its `--predictor`), EDLM and an AR model with a KV cache, side by side in one process (see
`edlm.metrics.latency` for the method).

Models come from specs (`--denoiser`, `--energy ar:MODEL` or `coar:MODEL`, `--ar`) or, with `--random-init`, are
random-weight edlm models of one size (`--layers --width --heads --vocab`): the denoiser, the AR
baseline and the AR energy of EDLM are then networks of the same backbone (the AR model is also the
energy), so the comparison runs at equal model size without trained checkpoints.
"""

from __future__ import annotations

from edlm.commands.arguments import int_list

METHODS = ("ar", "mdlm", "sedd", "edlm")
DIFFUSION = {"mdlm", "sedd", "edlm"}  # the methods that need --denoiser
PREDICTOR_ONLY = ("--predictor applies to SEDD's sampler only (a score-model --denoiser, timed as method sedd); "
                  "drop --predictor.")


def register(subparsers) -> None:
    from edlm.models import ModelConfig

    shape = ModelConfig()
    parser = subparsers.add_parser(
        "latency", help="time to generate N sequences with MDLM or SEDD, EDLM and an AR model with a KV cache",
        description="Times generation of --num-samples sequences of --seq-len tokens: AR with a KV cache, MDLM "
                    "(or SEDD's --predictor for a score-model --denoiser) for each of --steps, and EDLM (AR energy, "
                    "--k candidates, --window) for each of --steps. "
                    "Warm-up runs are excluded; the median and spread of --repeats timed runs are reported with "
                    "the forward passes per sample. Writes STEM.json and STEM.md.")
    parser.add_argument("--denoiser", default=None,
                        help="model spec of the diffusion model timed as MDLM (a SEDD score model: as SEDD) and EDLM")
    parser.add_argument("--energy", default=None, help="the AR energy of EDLM: ar:MODEL, or coar:MODEL for the "
                                                       "carry-over AR energy (MODEL: a model spec of a causal LM)")
    parser.add_argument("--ar", default=None, help="model spec of the AR baseline, timed with a KV cache")
    parser.add_argument("--random-init", action="store_true",
                        help="time random-weight edlm models of the size below instead of checkpoints")
    parser.add_argument("--layers", type=int, default=shape.n_layers,
                        help=f"random-init layers (default {shape.n_layers})")
    parser.add_argument("--width", type=int, default=shape.d_model, help=f"random-init width (default {shape.d_model})")
    parser.add_argument("--heads", type=int, default=shape.n_heads, help=f"random-init heads (default {shape.n_heads})")
    parser.add_argument("--vocab", type=int, default=shape.vocab_size,
                        help=f"random-init data vocabulary (default {shape.vocab_size})")
    parser.add_argument("--adaln", action="store_true",
                        help="random-init: give the denoiser adaLN blocks as the recipes do (more parameters than "
                             "the AR model; default: identical backbones)")
    parser.add_argument("--methods", default=None,
                        help="comma list of ar, mdlm, sedd, edlm (default: every method the given models can run; "
                             "mdlm needs a masked diffusion --denoiser, sedd a score model)")
    parser.add_argument("--predictor", choices=["analytic", "euler"], default=None,
                        help="SEDD's predictor for a score-model --denoiser (default analytic; a masked diffusion "
                             "model refuses it)")
    parser.add_argument("--num-samples", type=int, default=8, help="sequences per timed run (default 8)")
    parser.add_argument("--seq-len", type=int, default=None,
                        help="tokens per sequence (default: the denoiser's, else the AR model's training length; "
                             "required with --random-init)")
    parser.add_argument("--steps", default=None, help="diffusion steps, T or T1,T2,... (default: the sequence length)")
    parser.add_argument("--k", default="4", help="EDLM candidates per sequence, K or K1,K2,... (default 4)")
    parser.add_argument("--window", type=float, default=1.0,
                        help="EDLM importance sampling at steps with t >= 1 - window (default 1: every step, "
                             "the most expensive setting)")
    parser.add_argument("--tau", type=float, default=1.0, help="temperature of the importance weights (default 1)")
    parser.add_argument("--batch-size", type=int, default=0, help="sequences per chunk (default 0: all at once)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per configuration (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before them (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="run i draws from a generator seeded seed + i")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                        help="auto: bf16 autocast on CUDA, fp32 elsewhere (default auto)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's choice)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow hf: models that run their own code")
    parser.add_argument("--out", required=True, metavar="STEM", help="writes STEM.json and STEM.md")
    parser.set_defaults(func=run)


def check_args(args) -> list[str]:
    """Checks that need no model; returns the methods asked for (all four when --methods is not given; which of
    mdlm and sedd applies is known once the --denoiser is loaded, `fit_methods`)."""
    from edlm.errors import require
    from edlm.loading.energy_specs import parse_energy_spec

    methods = list(METHODS)
    if args.methods is not None:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        require(methods and all(m in METHODS for m in methods),
                f"--methods {args.methods!r} must be a comma list of {', '.join(METHODS)}.")
    require(args.num_samples >= 1, f"--num-samples {args.num_samples} must be at least 1.")
    require(args.seq_len is None or args.seq_len >= 1, f"--seq-len {args.seq_len} must be at least 1.")
    require(args.repeats >= 1, f"--repeats {args.repeats} must be at least 1.")
    require(args.warmup >= 0, f"--warmup {args.warmup} must be 0 or more.")
    require(args.batch_size >= 0, f"--batch-size {args.batch_size} must be 0 (all at once) or more.")
    require(args.threads >= 0, f"--threads {args.threads} must be 0 (torch's choice) or more.")
    require(args.tau > 0, f"--tau {args.tau} must be positive.")
    int_list("--steps", args.steps)
    ks = int_list("--k", args.k)
    if "edlm" in methods:
        require(all(k >= 2 for k in ks), f"--k {args.k} must be at least 2 for EDLM (k = 1 is plain MDLM); "
                "drop edlm from --methods to time MDLM only.")
        require(0.0 < args.window <= 1.0, f"--window {args.window} must lie in (0, 1] for EDLM (0 is plain MDLM).")
    require(args.predictor is None or (args.denoiser is not None and "sedd" in methods), PREDICTOR_ONLY)
    require(args.energy is None or parse_energy_spec(args.energy, "--energy")[0] in ("ar", "coar"),
            f"--energy {args.energy!r} is not an AR energy; eval latency times ar:MODEL or coar:MODEL.")
    if args.random_init:
        require(args.denoiser is None and args.energy is None and args.ar is None,
                "--random-init builds its own models; drop --denoiser, --energy and --ar (or drop --random-init).")
        require(args.seq_len is not None, "--random-init needs --seq-len, e.g. --seq-len 128.")
        require(args.layers >= 1 and args.vocab >= 2, f"--layers {args.layers} and --vocab {args.vocab} must be at "
                "least 1 and 2.")
        require(args.heads >= 1 and args.width % args.heads == 0 and (args.width // args.heads) % 2 == 0
                and args.width > 0, f"--width {args.width} must split into --heads {args.heads} heads of even "
                "width; e.g. --width 128 --heads 4.")
    else:
        require(args.denoiser is not None or args.ar is not None,
                "nothing to time: pass --denoiser and/or --ar, or --random-init with a model size.")
        require(args.energy is None or args.denoiser is not None, "--energy needs the --denoiser it corrects.")
        if args.methods is not None:  # an explicit method needs its model
            require(args.denoiser is not None or not DIFFUSION & set(methods),
                    f"--methods {args.methods!r} includes a diffusion method; pass --denoiser.")
            require(args.energy is not None or "edlm" not in methods,
                    f"--methods {args.methods!r} includes edlm; pass --energy ar:MODEL.")
            require(args.ar is not None or "ar" not in methods, f"--methods {args.methods!r} includes ar; pass --ar.")
    return methods


def fit_methods(args, methods: list[str], score: bool) -> list[str]:
    """The methods that the denoiser (a score model when `score`) runs: mdlm for a masked diffusion model, sedd
    for a score model. An explicit --methods entry or a --predictor that does not fit is refused in one sentence."""
    from edlm.errors import require

    what = "--random-init's denoiser" if args.random_init else f"--denoiser {args.denoiser!r}"
    kind = "a score model (SEDD)" if score else "a masked diffusion model"
    wrong = "mdlm" if score else "sedd"
    require(args.methods is None or wrong not in methods, f"--methods {wrong} does not apply: {what} is {kind}; "
            f"use --methods {'sedd' if score else 'mdlm'}.")
    require(args.predictor is None or score, PREDICTOR_ONLY)
    return [m for m in methods if m != wrong]


def _describe(spec: str, model, seq_len=None) -> dict:
    from edlm.metrics.latency import count_parameters

    config = getattr(model, "config", None)
    shape = {k: getattr(config, k) for k in ("vocab_size", "n_layers", "d_model", "n_heads", "adaln", "causal")
             if hasattr(config, k)} if config is not None else {}
    return dict(spec=spec, parameters=count_parameters(model), **shape)


def load_models(args, methods, device):
    """(denoiser, energy, ar_lm, seq_len, models description, methods) for the requested methods; methods
    as `fit_methods` leaves them."""
    from edlm.energy import AREnergy
    from edlm.errors import require
    from edlm.loading.energy_specs import load_energy_spec
    from edlm.loading.specs import load_spec, max_seq_len
    from edlm.metrics.latency import random_models

    if args.random_init:
        denoiser, lm = random_models(vocab_size=args.vocab, n_layers=args.layers, d_model=args.width,
                                     n_heads=args.heads, max_seq_len=args.seq_len, adaln=args.adaln,
                                     seed=args.seed, device=device)
        models = {"denoiser": _describe("random-init", denoiser), "ar": _describe("random-init", lm)}
        if "edlm" in methods:
            models["energy"] = dict(models["ar"], note="the AR baseline model is the EDLM energy")
        return (denoiser, AREnergy(lm) if "edlm" in methods else None, lm, args.seq_len, models,
                fit_methods(args, methods, score=False))
    denoiser = energy = energy_lm = ar_lm = None
    models, seq_len = {}, args.seq_len
    # --trust-remote-code goes to the hf: models among the specs; with none, it is refused.
    hf = {spec for spec in (args.denoiser, args.ar, (args.energy or "").partition(":")[2])
          if spec and spec.startswith("hf:")}
    require(not args.trust_remote_code or hf, "--trust-remote-code applies to hf: models only, and none of "
            "--denoiser, --energy and --ar is one; drop the flag.")

    def trust(spec: str) -> bool:
        return args.trust_remote_code and spec in hf

    if args.denoiser is not None and DIFFUSION & set(methods):
        loaded = load_spec(args.denoiser, device=device, trust_remote_code=trust(args.denoiser),
                           role=("denoiser", "score"), what="--denoiser")
        denoiser, seq_len = loaded.model, seq_len or loaded.seq_len
        methods = fit_methods(args, methods, score=loaded.role == "score")
        models["denoiser"] = _describe(args.denoiser, denoiser)
        if args.energy is not None and "edlm" in methods:
            loaded_energy = load_energy_spec(args.energy, denoiser=denoiser, tokenizer=loaded.tokenizer, device=device,
                                             trust_remote_code=trust(args.energy.partition(":")[2]), what="--energy")
            energy, energy_lm = loaded_energy.energy, loaded_energy.lm
            models["energy"] = _describe(args.energy, energy_lm)
    if args.ar is not None and "ar" in methods:
        loaded = load_spec(args.ar, device=device, trust_remote_code=trust(args.ar), role="causal", what="--ar")
        ar_lm, seq_len = loaded.model, seq_len or loaded.seq_len
        models["ar"] = _describe(args.ar, ar_lm)
    require(denoiser is not None or ar_lm is not None,
            f"--methods {args.methods!r} asks for nothing the given models can run; pass --denoiser for "
            "mdlm/sedd/edlm and --ar for ar.")
    require(seq_len is not None, "the models do not say their sequence length; pass --seq-len.")
    for name, model in (("--denoiser", denoiser), ("--energy", energy_lm), ("--ar", ar_lm)):
        limit = max_seq_len(model) if model is not None else None
        require(limit is None or seq_len <= limit,
                f"--seq-len {seq_len} exceeds the {name} model's maximum length {limit}; use a shorter --seq-len.")
    return denoiser, energy, ar_lm, seq_len, models, methods


def run(args) -> int:
    import torch

    from edlm.metrics.latency import COLUMNS, latency_benchmark
    from edlm.reports.report import write_report
    from edlm.util.device import cpu_threads, select_device
    from edlm.util.outputs import check_output_path

    check_output_path(args.out, option="--out", kind="stem")
    methods = check_args(args)
    with cpu_threads(args.threads):  # restored afterwards: the command may run in-process
        device = select_device(args.device)
        denoiser, energy, ar_lm, seq_len, models, methods = load_models(args, methods, device)
        steps = int_list("--steps", args.steps) or [seq_len]
        result = latency_benchmark(denoiser=denoiser if DIFFUSION & set(methods) else None, energy=energy,
                                   ar=ar_lm if "ar" in methods else None, mdlm=bool({"mdlm", "sedd"} & set(methods)),
                                   num_samples=args.num_samples, seq_len=seq_len, steps=steps,
                                   k=int_list("--k", args.k), window=args.window, tau=args.tau,
                                   predictor=args.predictor, batch_size=args.batch_size or None,
                                   repeats=args.repeats, warmup=args.warmup, seed=args.seed, precision=args.precision,
                                   models=models, progress=True)
        results = dict(num_samples=args.num_samples, seq_len=seq_len, steps=steps, repeats=args.repeats,
                       warmup=args.warmup, random_init=args.random_init, **result.to_dict())
        params = ", ".join(f"{name} {info['parameters']:,}" for name, info in models.items())
        notes = (f"Wall time in seconds to generate {args.num_samples} sequences of {seq_len} tokens "
                 f"(batch {args.batch_size or args.num_samples}) on {result.device} ({result.precision}, "
                 f"{torch.get_num_threads()} CPU threads): median, min, max and IQR of {args.repeats} timed runs after "
                 f"{args.warmup} warm-up run(s). Passes per sample: full-length denoiser / AR-energy evaluations and "
                 f"one-token KV-cache AR steps. vs_ar = median / AR median. Parameters: {params}.")
        json_path, md_path = write_report(args.out, "Generation latency", results, result.rows(), COLUMNS, notes)
        print(md_path.read_text(), end="")
        print(f"wrote {json_path} and {md_path}")
        return 0
