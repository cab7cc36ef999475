"""`edlm train RECIPE [key=value ...]`: train, or resume, the run in `train.out_dir`."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model from a recipe (resumes the run in train.out_dir)",
        description="Train a model from a recipe with key=value overrides. If train.out_dir already holds "
                    "a checkpoint of the same run, training resumes from it exactly. Run it under "
                    "`torchrun --nproc_per_node=N -m edlm train ...` for data-parallel training.")
    parser.add_argument("recipe", help="a shipped recipe name (text8-tiny, text8-small, text8-paper, ...) or a YAML file")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides such as train.steps=500 model.n_layers=2 train.out_dir=runs/x")
    parser.add_argument("--no-progress", action="store_true", help="no header, progress bar or validation lines")
    parser.set_defaults(func=run)


def run(args) -> int:
    from edlm.config import load_config
    from edlm.train import train

    result = train(load_config(args.recipe, args.overrides), progress=not args.no_progress)
    if result.rank != 0:
        return 0
    if result.checkpoint is not None and result.step > result.resumed_from:
        print(f"trained to step {result.step}; checkpoint {result.checkpoint}", flush=True)
    elif result.checkpoint is not None:
        print(f"{result.out_dir} is already at step {result.step}; raise train.steps to train further "
              f"(checkpoint {result.checkpoint})", flush=True)
    return 0
