"""`edlm export MODEL OUT_DIR`: write an edlm model (a run's EMA weights unless --no-ema, or an exported
or bundled model) as a self-contained pretrained directory (`model.safetensors` + `edlm_config.json`,
see `edlm.loading.pretrained`), loadable with `edlm.load` as a model spec (`pretrained:DIR` or the bare
directory), or from the hub once uploaded (`pretrained:ORG/NAME`). hf: models carry no edlm run
config and are refused."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a checkpoint as a pretrained directory",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("model", metavar="MODEL", help="model spec of the edlm model to export (a run or checkpoint "
                                                       "directory, ckpt:PATH, pretrained:DIR_OR_ID, bundled:NAME)")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="directory to write (replaced atomically if it exists)")
    parser.add_argument("--no-ema", action="store_true", help="export the trained weights instead of the EMA weights")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="dtype of the stored weights (default float32; bfloat16 halves the size, and loading "
                             "widens it back to float32 exactly)")
    parser.set_defaults(func=run)


def run(args) -> int:
    import sys

    from edlm.errors import require
    from edlm.loading.pretrained import save_pretrained
    from edlm.loading.specs import load_spec, parse_model_spec

    import torch
    from edlm.util.outputs import check_output_path

    check_output_path(args.out_dir, option="OUT_DIR", kind="dir")
    require(parse_model_spec(args.model, "MODEL")[0] != "hf", f"MODEL {args.model!r} carries no edlm run config, "
            "so it cannot be written as an edlm pretrained directory; export edlm models (checkpoints, pretrained or "
            "bundled ones).")
    loaded = load_spec(args.model, device="cpu", ema=not args.no_ema, what="MODEL")
    model, config = loaded.model, loaded.config
    path = save_pretrained(model.to(getattr(torch, args.dtype)), args.out_dir, config=config)
    print(f"wrote {path}", file=sys.stderr)
    return 0
