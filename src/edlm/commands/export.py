"""`edlm export RUN OUT_DIR`: write a run's model (EMA weights unless --no-ema) as a self-contained
pretrained directory (`model.safetensors` + `edlm_config.json`, see `edlm.loading.pretrained`), loadable with
`edlm.loading.pretrained.from_pretrained`, as a model spec (`pretrained:DIR` or the bare directory), or from the
hub once uploaded (`pretrained:ORG/NAME`)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a checkpoint as a pretrained directory",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="run directory, checkpoint directory or ckpt:PATH")
    parser.add_argument("out_dir", help="directory to write (replaced atomically if it exists)")
    parser.add_argument("--no-ema", action="store_true", help="export the trained weights instead of the EMA weights")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="dtype of the stored weights (default float32; bfloat16 halves the size, and loading "
                             "widens it back to float32 exactly)")
    parser.set_defaults(func=run)


def run(args) -> int:
    import sys

    from edlm.loading.pretrained import save_pretrained
    from edlm.loading.checkpoint import load_model

    import torch

    model, config = load_model(args.run, ema=not args.no_ema, device="cpu")
    path = save_pretrained(model.to(getattr(torch, args.dtype)), args.out_dir, config=config)
    print(f"wrote {path}", file=sys.stderr)
    return 0
