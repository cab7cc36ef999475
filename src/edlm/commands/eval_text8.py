"""`edlm eval text8 --out PREFIX`: the text8 benchmark (EDLM's Table 1 and Figure 1 at CPU scale) from
the bundled text8-small checkpoints or any others; see `edlm.bench.text8` for what it computes."""

from __future__ import annotations

from edlm.bench.text8 import BUNDLED, Settings


def _csv(values) -> str:
    return ",".join(str(v) for v in values)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v.strip())


def register(subparsers) -> None:
    d = Settings()
    parser = subparsers.add_parser(
        "text8", help="the text8 benchmark: Table 1 BPC, generation quality vs steps, k x window ablation",
        description="Runs every job of the text8 benchmark (each cached under --cache as it finishes, so a rerun "
                    "resumes), then writes PREFIX.json, PREFIX.md and PREFIX-{steps,walltime,calls,entropy,"
                    "ablation}.png. Comma-separated lists.")
    for role, spec in BUNDLED.items():
        parser.add_argument(f"--{role}", default=spec, help=f"{role} model spec (default {spec})")
    parser.add_argument("--steps", default=_csv(d.steps), help="sampling steps of the grid (default 8,...,256)")
    parser.add_argument("--energies", default=",".join(d.energies), help="energies of the grid: ar,nce (default both)")
    parser.add_argument("--ks", default=_csv(d.ks), help="candidates k of the grid (default 4,16)")
    parser.add_argument("--windows", type=_floats, default=d.windows, help="windows of the grid (default 0.2,1)")
    parser.add_argument("--num-samples", type=int, default=d.num_samples, help="samples per grid point (default 16)")
    parser.add_argument("--seq-len", type=int, default=d.seq_len, help="characters per sample (default 256)")
    parser.add_argument("--ablation-steps", type=int, default=d.ablation_steps,
                        help="steps of the ablation (default 32)")
    parser.add_argument("--ablation-ks", default=_csv(d.ablation_ks), help="k of the ablation (default 2,4,8,16)")
    parser.add_argument("--ablation-windows", type=_floats, default=d.ablation_windows,
                        help="windows of the ablation (default 0.2,...,1.0)")
    parser.add_argument("--table-sequences", type=int, default=d.table_sequences,
                        help="test sequences for the EDLM likelihood rows (default 64)")
    parser.add_argument("--num-t", type=int, default=d.num_t, help="times t per sequence, EDLM rows (default 4)")
    parser.add_argument("--num-z", type=int, default=d.num_z, help="proposal draws per log Z (default 16)")
    parser.add_argument("--full-num-t", type=int, default=d.full_num_t,
                        help="times t per sequence for the MDLM NELBO on the whole test split (default 2)")
    parser.add_argument("--reference-samples", type=int, default=d.reference_samples,
                        help="AR samples and test sequences judged as references (default 64)")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--shard", default="0/1",
                        help="I/N: run every N-th job (by estimated cost) starting at I (default 0/1)")
    parser.add_argument("--cache", default=None, help="job cache directory (default $EDLM_CACHE/text8-bench)")
    parser.add_argument("--data", default="", help="text8 location (default: $EDLM_DATA or the download)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    parser.add_argument("--out", default="benchmarks/results/text8", help="output prefix")
    parser.set_defaults(func=run)


def run(args) -> int:
    import sys
    import time
    from pathlib import Path

    import torch

    from edlm.commands.eval_latency import int_list
    from edlm.data import cache_dir
    from edlm.errors import require
    from edlm.reports.provenance import git_revision
    from edlm.bench.text8 import Cache, load_models, run_jobs
    from edlm.bench.text8_report import write
    from edlm.util.device import select_device

    started = time.perf_counter()
    index, _, count = args.shard.partition("/")
    require(index.isdigit() and count.isdigit() and int(index) < int(count),
            f"--shard {args.shard!r} must be I/N with 0 <= I < N, e.g. 0/2.")
    settings = Settings(steps=tuple(int_list("--steps", args.steps)),
                        energies=tuple(e for e in args.energies.split(",") if e), ks=tuple(int_list("--ks", args.ks)),
                        windows=args.windows, num_samples=args.num_samples, seq_len=args.seq_len,
                        ablation_steps=args.ablation_steps,
                        ablation_ks=tuple(int_list("--ablation-ks", args.ablation_ks)),
                        ablation_windows=args.ablation_windows, table_sequences=args.table_sequences,
                        num_t=args.num_t, num_z=args.num_z, full_num_t=args.full_num_t,
                        reference_samples=args.reference_samples, seed=args.seed)
    settings.check()
    if args.threads:
        torch.set_num_threads(args.threads)
    specs = {role: getattr(args, role) for role in ("mdlm", "ar", "nce", "oracle")}
    models = load_models(specs, device=select_device(args.device), data_path=args.data)
    require(settings.seq_len <= models.mdlm.config.max_seq_len,
            f"--seq-len {settings.seq_len} exceeds the models' max_seq_len={models.mdlm.config.max_seq_len}.")
    cache = Cache(args.cache or cache_dir() / "text8-bench", models.fingerprints, settings)
    results = run_jobs(models, settings, cache, shard=(int(index), int(count)))
    if results is None:
        print("other shards still have pending jobs; run again without --shard once they finish to write the report")
        return 0
    script = Path(sys.argv[0])
    program = "edlm" if script.name == "edlm" else f"python {script.parent.name}/{script.name}"
    meta = dict(command=" ".join([program, *sys.argv[1:]]),
                git_revision=git_revision(), specs=specs, fingerprints=models.fingerprints,
                machine=describe_machine(), threads=torch.get_num_threads(), test_sequences=models.test.shape[0],
                report_wall_s=time.perf_counter() - started)
    for path in write(args.out, settings, results, meta):
        print(f"wrote {path}")
    return 0


def describe_machine() -> str:
    """'CPU model (N cores)' or the GPU name, with the torch version."""
    from edlm.reports.provenance import machine

    m = machine()
    return f"{m['gpu'] or m['cpu']} ({m['cores']} cores), torch {m['torch']}"
