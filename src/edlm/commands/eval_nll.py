"""`edlm eval nll CHECKPOINT --split test`: likelihood of a data split under a trained model.

Prints nats per token, bits per token (BPC for character models) and perplexity, and writes them as
JSON. For a diffusion model these are Monte Carlo estimates of the MDLM NELBO, i.e. upper bounds on
the true NLL; for an autoregressive model they are exact.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

KIND_WORDS = {"upper_bound": "upper bounds (MDLM NELBO, Monte Carlo over t)", "exact": "exact (autoregressive NLL)"}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "nll", help="NLL / BPC / PPL of a data split under a checkpoint (upper bounds for diffusion models)",
        description="Evaluate the negative log-likelihood of a split under a trained model. For diffusion "
                    "models the numbers are NELBO upper bounds, estimated with --num-t antithetic times per sequence.")
    parser.add_argument("checkpoint", help="a run directory, a checkpoint directory, or ckpt:PATH")
    parser.add_argument("--split", default="test", help="train, valid or test (default: test)")
    parser.add_argument("--num-t", type=int, default=16, help="diffusion times per sequence (default: 16)")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per batch (default: 32)")
    parser.add_argument("--max-sequences", type=int, default=0, help="evaluate only the first N sequences (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the Monte Carlo draws (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    parser.add_argument("--data-path", default=None, help="override the checkpoint's data.path")
    parser.add_argument("--no-ema", action="store_true", help="use the trained weights instead of the EMA weights")
    parser.add_argument("--out", default=None, help="JSON file to write (default: nll-<split>.json in the checkpoint directory)")
    parser.set_defaults(func=run)


def run(args) -> int:
    import torch

    from edlm.data import load_split
    from edlm.errors import require
    from edlm.likelihood.nelbo import split_likelihood
    from edlm.util.atomic import write_text_atomic
    from edlm.loading.checkpoint import load_model, read_checkpoint, resolve_checkpoint
    from edlm.util.device import select_device

    require(args.num_t >= 1, f"--num-t {args.num_t} must be at least 1.")
    require(args.batch_size >= 1, f"--batch-size {args.batch_size} must be at least 1.")
    require(args.max_sequences >= 0, f"--max-sequences {args.max_sequences} must be >= 0 (0 means all).")
    path = resolve_checkpoint(args.checkpoint)
    model, cfg = load_model(path, ema=not args.no_ema, device=select_device(args.device))
    data_cfg = cfg.data if args.data_path is None else dataclasses.replace(cfg.data, path=args.data_path)
    data = load_split(data_cfg, args.split)
    if args.max_sequences:
        data = data[: args.max_sequences]
    result = split_likelihood(model, data, num_t=args.num_t, batch_size=args.batch_size,
                              generator=torch.Generator().manual_seed(args.seed), progress=sys.stderr.isatty())

    unit = "BPC" if data_cfg.tokenizer == "char" else "bits/token"
    report = {
        "checkpoint": str(path), "step": read_checkpoint(path).step, "split": args.split, "weights": "model" if args.no_ema else "ema",
        "objective": cfg.train.objective, "tokenizer": data_cfg.tokenizer, "seed": args.seed,
        "bound": result.kind == "upper_bound", **result.to_dict(),
    }
    if data_cfg.tokenizer == "char":
        report["bpc"] = result.bits_per_token
    out = Path(args.out) if args.out else path / f"nll-{args.split}.json"
    write_text_atomic(out, json.dumps(report, indent=1) + "\n")
    print(f"{args.split}: {result.nats_per_token:.4f} ± {result.stderr:.4f} nats/token, "
          f"{result.bits_per_token:.4f} {unit}, PPL {result.ppl:.4f} over {result.num_sequences} sequences "
          f"({result.num_tokens} tokens); {KIND_WORDS.get(result.kind, result.kind)}")
    print(f"wrote {out}")
    return 0
