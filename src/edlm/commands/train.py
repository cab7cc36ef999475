"""`edlm train RECIPE [key=value ...]`: train, or resume, the run in `train.out_dir`."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model from a recipe (resumes the run in train.out_dir)",
        description="Train a model from a recipe with key=value overrides. If train.out_dir already holds "
                    "a checkpoint of the same run, training resumes from it exactly. On Ctrl-C (SIGINT) or "
                    "SIGTERM the current step is finished and checkpointed, the command that resumes is "
                    "printed, and the exit status is 130 or 143. Run it under "
                    "`torchrun --nproc_per_node=N -m edlm train ...` for data-parallel training.")
    parser.add_argument("recipe", metavar="RECIPE",
                        help="a shipped recipe name (text8-tiny, text8-small, text8-paper, ...) or a YAML file")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides such as train.steps=500 model.n_layers=2 train.out_dir=runs/x")
    parser.add_argument("--no-progress", action="store_true", help="no header, progress bar or validation lines")
    parser.set_defaults(func=run)


def run(args) -> int:
    """Train; on SIGINT/SIGTERM, after the checkpoint of the current step, print one line with the
    step, the checkpoint and the command that resumes, and return 130 / 143."""
    import sys

    from edlm.config import load_config
    from edlm.train import TrainingStopped, train

    try:
        result = train(load_config(args.recipe, args.overrides), progress=not args.no_progress)
    except TrainingStopped as stop:
        if stop.rank == 0:
            print(f"edlm train: stopped by {stop.signal_name} after step {stop.step}; checkpoint {stop.checkpoint}; "
                  f"resume with: {resume_command(args)}", file=sys.stderr, flush=True)
        return stop.exit_code
    if result.rank != 0:
        return 0
    if result.checkpoint is not None and result.step > result.resumed_from:
        print(f"trained to step {result.step}; checkpoint {result.checkpoint}", flush=True)
    elif result.checkpoint is not None:
        print(f"{result.out_dir} is already at step {result.step}; raise train.steps to train further "
              f"(checkpoint {result.checkpoint})", flush=True)
    return 0


def resume_command(args) -> str:
    """The command line that runs this `edlm train` again (under `torchrun` when it ran under it)."""
    import os
    import shlex

    words = ["edlm", "train", args.recipe, *args.overrides] + (["--no-progress"] if args.no_progress else [])
    world, local = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if world > 1:
        nodes = [f"--nnodes={world // local}"] if world > local else []
        words = ["torchrun", *nodes, f"--nproc_per_node={local}", "-m", *words]
    return shlex.join(words)
