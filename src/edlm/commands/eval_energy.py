"""`edlm eval energy ENERGY [--denoiser MODEL] --out STEM`: Figure 2 of the EDLM paper for an NCE energy.

On a grid of `--num-t` times, for `--max-sequences` data sequences of `--split`: the energy of the
positives (data), the mean / min / max energy over `--negatives` negatives drawn from the denoiser,
and the effective sample size of their importance weights softmax(-E) (see
`edlm.metrics.energy_diagnostics`). Writes STEM.json, STEM.md and STEM-energy.png (atomically).
"""

from __future__ import annotations

import sys

COLUMNS = ["t", "positive", "negative_mean", "negative_min", "negative_max", "gap", "ess"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "energy", help="energy diagnostics of an NCE energy against t: positives, negatives, ESS (report + PNG)",
        description="Figure 2 of the EDLM paper: on a grid of diffusion times, the energy of data sequences "
                    "(positives), the mean/min/max energy of negatives drawn from the denoiser given the same xt, "
                    "and the effective sample size of their importance weights softmax(-E).")
    from edlm.data.corpora import SPLITS

    parser.add_argument("energy", metavar="ENERGY", help="energy spec of the NCE energy evaluated: nce:MODEL, or "
                                                         "the bare model spec of an NCE energy")
    parser.add_argument("--denoiser", default=None,
                        help="model spec of the MDLM proposing negatives (default: the energy's train.init_from; "
                             "for a bundled energy, the bundled model of that run's name)")
    parser.add_argument("--num-t", type=int, default=10, help="times t = j/N, j = 1..N (default 10)")
    parser.add_argument("--negatives", type=int, default=16, help="negatives per sequence and t (default 16)")
    parser.add_argument("--split", default="test", choices=SPLITS, help="data split to draw from (default: test)")
    parser.add_argument("--max-sequences", type=int, default=64,
                        help="data sequences, a seeded random subset of the split (default 64; 0: all)")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per denoiser call (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset, the masks and the negatives (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    parser.add_argument("--data", default=None, help="where the corpus lives, instead of the energy's data.path")
    parser.add_argument("--no-ema", action="store_true",
                        help="use the energy's trained weights instead of its EMA weights")
    parser.add_argument("--out", required=True, metavar="STEM",
                        help="writes STEM.json, STEM.md and STEM-energy.png")
    parser.set_defaults(func=run)


def default_denoiser(energy) -> str:
    """The denoiser spec an NCE energy (a `LoadedModel`) was trained against: its train.init_from, or for a
    bundled energy whose init_from is not here, the bundled model named like that run (the bundled
    models are exported from runs of their own names)."""
    from pathlib import Path

    from edlm.errors import require
    from edlm.loading.pretrained import bundled_names

    init = energy.config.train.init_from
    require(bool(init), f"ENERGY {energy.spec!r} records no train.init_from; pass --denoiser MODEL.")
    name = Path(init.partition(":")[2] if init.startswith("ckpt:") else init).name
    if energy.kind == "bundled" and not Path(init).exists() and name in bundled_names():
        return f"bundled:{name}"
    return init


def run(args) -> int:
    import dataclasses
    import io
    from pathlib import Path

    import torch

    from edlm.data import load_split
    from edlm.diffusion import make_schedule
    from edlm.errors import require
    from edlm.loading.energy_specs import ENERGY_ROLES, check_energy, load_energy_spec, parse_energy_spec
    from edlm.loading.specs import load_spec
    from edlm.metrics.energy_diagnostics import energy_diagnostics, plot_energy_diagnostics, time_grid
    from edlm.reports.report import write_report
    from edlm.util.atomic import write_bytes_atomic
    from edlm.util.device import select_device
    from edlm.util.outputs import check_output_path

    check_output_path(args.out, option="--out", kind="stem", suffixes=(".json", ".md", "-energy.png"))
    require(args.num_t >= 1, f"--num-t {args.num_t} must be at least 1.")
    require(args.negatives >= 2, f"--negatives {args.negatives} must be at least 2.")
    require(args.max_sequences >= 0, f"--max-sequences {args.max_sequences} must be at least 0 (0 means all).")
    require(args.batch_size >= 1, f"--batch-size {args.batch_size} must be at least 1.")
    device = select_device(args.device)
    spec = args.energy if args.energy.partition(":")[0] in ENERGY_ROLES else f"nce:{args.energy}"
    require(parse_energy_spec(spec, "ENERGY")[0] == "nce",
            f"ENERGY {args.energy!r} is not an NCE energy; eval energy diagnoses nce:MODEL energies.")
    loaded_energy = load_energy_spec(spec, device=device, ema=not args.no_ema, what="ENERGY")
    energy, cfg = loaded_energy.energy, loaded_energy.model.config
    denoiser_spec = args.denoiser or default_denoiser(loaded_energy.model)
    loaded_denoiser = load_spec(denoiser_spec, device=device, role="denoiser", what="--denoiser")
    denoiser = loaded_denoiser.model
    check_energy(loaded_energy, denoiser, tokenizer=loaded_denoiser.tokenizer, what="ENERGY")
    source = str(loaded_energy.model.directory or args.energy)

    data_cfg = cfg.data if args.data is None else dataclasses.replace(cfg.data, path=args.data)
    data = load_split(data_cfg, args.split)
    generator = torch.Generator().manual_seed(args.seed)
    rows = torch.randperm(len(data), generator=generator)[: args.max_sequences or None]
    x0 = data[rows]
    times = time_grid(args.num_t)
    result = energy_diagnostics(energy, denoiser, x0, times=times, num_negatives=args.negatives,
                                schedule=make_schedule(cfg.train.schedule, cfg.train.eps), generator=generator,
                                batch_size=args.batch_size, progress=True)
    lower = [g > 0 for g in result["gap"]]
    report = {
        "energy": source, "energy_spec": args.energy, "energy_step": loaded_energy.model.step,
        "denoiser": str(denoiser_spec),
        "weights": ("model" if args.no_ema else "ema") if loaded_energy.model.kind == "ckpt" else "exported", "split": args.split, "seed": args.seed,
        "schedule": cfg.train.schedule, "eps": cfg.train.eps, "seq_len": int(x0.shape[1]),
        "units": "nats; gap = mean negative energy - positive energy; ess of softmax(-E) over the negatives",
        **result,
        "summary": {"positives_below_mean_negative_at_every_t": all(lower),
                    "times_with_positive_below_mean_negative": sum(lower),
                    "mean_gap": sum(result["gap"]) / len(result["gap"])},
    }
    stem = Path(args.out)
    png_path = stem.with_name(stem.name + "-energy.png")
    png = io.BytesIO()
    step = "" if loaded_energy.model.step is None else f" (step {loaded_energy.model.step})"
    plot_energy_diagnostics(result, png, title=f"{source}{step}, {args.split}, {result['num_sequences']} sequences")
    write_bytes_atomic(png_path, png.getvalue())
    rows = [{column: result[column][i] for column in COLUMNS} for i in range(len(result["t"]))]
    notes = (f"Energies in nats over {result['num_sequences']} sequences of {args.split}; gap = mean negative energy "
             f"- positive energy; ess of softmax(-E) over {args.negatives} negatives. Positives lie below the mean "
             f"negative at {sum(lower)} of {len(lower)} times.")
    json_path, md_path = write_report(stem, "Energy diagnostics", report, rows, COLUMNS, notes)
    print(md_path.read_text(), end="")
    print(f"wrote {json_path}, {md_path} and {png_path}", file=sys.stderr)
    return 0
