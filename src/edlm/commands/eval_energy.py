"""`edlm eval energy CKPT [--denoiser CKPT] --out PREFIX`: Figure 2 of the EDLM paper for an NCE energy.

On a grid of `--num-t` times, for `--num-sequences` data sequences of `--split`: the energy of the
positives (data), the mean / min / max energy over `--negatives` negatives drawn from the denoiser,
and the effective sample size of their importance weights softmax(-E) (see
`edlm.metrics.energy_diagnostics`). Writes PREFIX.json and PREFIX.png (both atomically).
"""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "energy", help="energy diagnostics of an NCE energy against t: positives, negatives, ESS (JSON + PNG)",
        description="Figure 2 of the EDLM paper: on a grid of diffusion times, the energy of data sequences "
                    "(positives), the mean/min/max energy of negatives drawn from the denoiser given the same xt, "
                    "and the effective sample size of their importance weights softmax(-E).")
    parser.add_argument("checkpoint", help="the NCE energy: nce:CKPT or CKPT (run dir, checkpoint dir, ckpt:PATH)")
    parser.add_argument("--denoiser", default=None,
                        help="the mdlm checkpoint proposing negatives (default: the energy's train.init_from)")
    parser.add_argument("--num-t", type=int, default=10, help="times t = j/N, j = 1..N (default 10)")
    parser.add_argument("--negatives", type=int, default=16, help="negatives per sequence and t (default 16)")
    parser.add_argument("--split", default="valid", help="train, valid or test (default: valid)")
    parser.add_argument("--num-sequences", type=int, default=64, help="data sequences, a seeded random subset (default 64)")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per denoiser call (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset, the masks and the negatives (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    parser.add_argument("--data-path", default=None, help="override the energy checkpoint's data.path")
    parser.add_argument("--no-ema", action="store_true", help="use the energy's trained weights instead of its EMA weights")
    parser.add_argument("--out", required=True, help="output prefix: writes PREFIX.json and PREFIX.png")
    parser.set_defaults(func=run)


def run(args) -> int:
    import dataclasses
    import io
    from pathlib import Path

    import torch

    from edlm.data import load_split
    from edlm.diffusion import make_schedule
    from edlm.energy import NCEEnergy
    from edlm.errors import require
    from edlm.metrics.energy_diagnostics import energy_diagnostics, plot_energy_diagnostics, time_grid
    from edlm.util.atomic import write_bytes_atomic, write_text_atomic
    from edlm.loading.checkpoint import load_model, read_checkpoint
    from edlm.util.device import select_device

    require(args.num_t >= 1, f"--num-t {args.num_t} must be at least 1.")
    require(args.negatives >= 2, f"--negatives {args.negatives} must be at least 2.")
    require(args.num_sequences >= 1, f"--num-sequences {args.num_sequences} must be at least 1.")
    require(args.batch_size >= 1, f"--batch-size {args.batch_size} must be at least 1.")
    device = select_device(args.device)
    spec = args.checkpoint[len("nce:"):] if args.checkpoint.startswith("nce:") else args.checkpoint
    energy_ckpt = read_checkpoint(spec)
    energy = NCEEnergy.from_checkpoint(spec, ema=not args.no_ema, device=device)
    cfg = energy_ckpt.config
    denoiser_spec = args.denoiser or cfg.train.init_from
    require(bool(denoiser_spec), f"energy checkpoint {spec!r} records no train.init_from; pass --denoiser CKPT.")
    denoiser, den_cfg = load_model(denoiser_spec, ema=True, device=device)
    require(den_cfg.train.objective == "mdlm" and not hasattr(denoiser, "token_logprobs"),
            f"--denoiser {denoiser_spec!r} is a train.objective={den_cfg.train.objective} checkpoint; "
            "pass the mdlm checkpoint the energy was trained against.")

    data_cfg = cfg.data if args.data_path is None else dataclasses.replace(cfg.data, path=args.data_path)
    data = load_split(data_cfg, args.split)
    generator = torch.Generator().manual_seed(args.seed)
    rows = torch.randperm(len(data), generator=generator)[: args.num_sequences]
    x0 = data[rows]
    times = time_grid(args.num_t)
    result = energy_diagnostics(energy, denoiser, x0, times=times, num_negatives=args.negatives,
                                schedule=make_schedule(cfg.train.schedule, cfg.train.eps), generator=generator,
                                batch_size=args.batch_size)
    lower = [g > 0 for g in result["gap"]]
    report = {
        "energy": str(energy_ckpt.path), "energy_step": energy_ckpt.step, "denoiser": str(denoiser_spec),
        "weights": "model" if args.no_ema else "ema", "split": args.split, "seed": args.seed,
        "schedule": cfg.train.schedule, "eps": cfg.train.eps, "seq_len": int(x0.shape[1]),
        "units": "nats; gap = mean negative energy - positive energy; ess of softmax(-E) over the negatives",
        **result,
        "summary": {"positives_below_mean_negative_at_every_t": all(lower),
                    "times_with_positive_below_mean_negative": sum(lower),
                    "mean_gap": sum(result["gap"]) / len(result["gap"])},
    }
    prefix = Path(args.out)
    json_path, png_path = prefix.with_name(prefix.name + ".json"), prefix.with_name(prefix.name + ".png")
    png = io.BytesIO()
    plot_energy_diagnostics(result, png, title=f"{energy_ckpt.path} (step {energy_ckpt.step}), {args.split}, "
                                               f"{result['num_sequences']} sequences")
    write_bytes_atomic(png_path, png.getvalue())
    write_text_atomic(json_path, json.dumps(report, indent=1) + "\n")
    print(f"{'t':>6} {'positive':>10} {'neg mean':>10} {'neg min':>10} {'neg max':>10} {'ESS':>7}")
    for i, t in enumerate(result["t"]):
        print(f"{t:6.3f} {result['positive'][i]:10.4f} {result['negative_mean'][i]:10.4f} "
              f"{result['negative_min'][i]:10.4f} {result['negative_max'][i]:10.4f} {result['ess'][i]:7.2f}")
    print(f"positives below the mean negative at {sum(lower)} of {len(lower)} times; wrote {json_path} and {png_path}",
          file=sys.stderr)
    return 0
