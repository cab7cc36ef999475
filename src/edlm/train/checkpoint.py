"""Checkpoints: safetensors and JSON, written atomically, read without unpickling anything.

Layout of a run directory (`train.out_dir`):

    metrics.jsonl
    checkpoints/
      latest                    text file: the name of the newest complete checkpoint
      step_00000500/
        model.safetensors       trained weights (parameter names as in `model.state_dict()`)
        ema.safetensors         EMA weights, same names
        optimizer.safetensors   optimizer tensors ("state.<param>.<name>"); the rest is in state.json
        state.json              format, version, step, data position, the RunConfig, the optimizer's
                                non-tensor state, and the byte size of every file above

A checkpoint directory is written under a temporary name, fsynced and renamed into place, and only
then does `latest` (itself replaced atomically) point to it; a crash at any moment leaves the
previous checkpoint and pointer intact. The data order and every random draw are functions of
`train.seed` and the step (see `edlm.train.order`), so step and data position are all the
random state a resumed run needs.

Checkpoint specs accepted everywhere: a run directory (its latest checkpoint), its `checkpoints/`
directory, one checkpoint directory, or any of these prefixed with `ckpt:`.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from edlm.config import RunConfig, read_run_json
from edlm.errors import EdlmError, require
from edlm.train.atomic import atomic_directory, remove_stale_temporaries, write_text_atomic
from edlm.train.order import DataPosition
from edlm.train.treeio import join_tree, split_tree

FORMAT = "edlm-checkpoint"
VERSION = 1
CHECKPOINTS_DIR = "checkpoints"
LATEST = "latest"
STATE_FILE = "state.json"
TENSOR_FILES = {"model": "model.safetensors", "ema": "ema.safetensors", "optimizer": "optimizer.safetensors"}
STEP_PREFIX = "step_"


def checkpoint_name(step: int) -> str:
    return f"{STEP_PREFIX}{step:08d}"


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def save_checkpoint(out_dir, *, step: int, position: DataPosition, config: RunConfig, model: nn.Module,
                    ema_model: nn.Module, optimizer: torch.optim.Optimizer, keep_last: int = 0) -> Path:
    """Write checkpoint `step` of the run in `out_dir` atomically, point `latest` to it, and prune.

    Pruning removes checkpoints of later steps (left by a run that was resumed from an earlier one)
    and, when keep_last > 0, all but the newest `keep_last` ones. Returns the checkpoint directory.
    """
    root = Path(out_dir) / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(root)
    final = root / checkpoint_name(step)
    optimizer_tensors, optimizer_skeleton = split_tree(optimizer.state_dict())
    with atomic_directory(final) as tmp:
        for kind, tensors in (("model", _cpu_state(model)), ("ema", _cpu_state(ema_model)),
                              ("optimizer", optimizer_tensors)):
            save_file(tensors, str(tmp / TENSOR_FILES[kind]))
        from edlm import __version__

        state = {
            "format": FORMAT, "version": VERSION, "step": step,
            "data_position": {"epoch": position.epoch, "offset": position.offset},
            "config": config.to_dict(), "optimizer": optimizer_skeleton,
            "files": {name: (tmp / name).stat().st_size for name in TENSOR_FILES.values()},
            "edlm_version": __version__, "torch_version": torch.__version__,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))
    write_text_atomic(root / LATEST, final.name + "\n")
    _prune(root, step, keep_last)
    return final


def _prune(root: Path, step: int, keep_last: int) -> None:
    steps = sorted(int(p.name[len(STEP_PREFIX):]) for p in root.glob(STEP_PREFIX + "*")
                   if p.is_dir() and p.name[len(STEP_PREFIX):].isdigit())
    older = [s for s in steps if s <= step]
    doomed = [s for s in steps if s > step] + (older[:-keep_last] if keep_last > 0 else [])
    for s in doomed:
        shutil.rmtree(root / checkpoint_name(s), ignore_errors=True)


def resolve_checkpoint(path_or_spec) -> Path:
    """The checkpoint directory that a spec names (see the module docstring)."""
    spec = str(path_or_spec)
    path = Path(spec[len("ckpt:"):] if spec.startswith("ckpt:") else spec).expanduser()
    require(path.exists(), f"checkpoint {spec!r} does not exist; pass a run directory, a checkpoint directory or ckpt:PATH.")
    if (path / STATE_FILE).is_file():
        return path
    for root in (path / CHECKPOINTS_DIR, path):
        pointer = root / LATEST
        if pointer.is_file():
            target = root / pointer.read_text().strip()
            require(target.name.startswith(STEP_PREFIX) and (target / STATE_FILE).is_file(),
                    f"{pointer} names checkpoint {target.name!r}, which is missing or incomplete; "
                    "point it at an existing step_* directory or pass that directory instead.")
            return target
    raise EdlmError(f"{path} is not an edlm checkpoint or run directory (no {STATE_FILE}, no {CHECKPOINTS_DIR}/{LATEST}); "
                    "pass the train.out_dir of a run or one of its checkpoints/step_* directories.")


def latest_checkpoint(out_dir) -> Path | None:
    """The newest checkpoint of the run in `out_dir`, or None when it has none yet."""
    root = Path(out_dir) / CHECKPOINTS_DIR
    return resolve_checkpoint(root) if (root / LATEST).is_file() else None


@dataclass
class Checkpoint:
    """A checkpoint directory whose state.json has been read and checked."""

    path: Path
    state: dict
    config: RunConfig

    @property
    def step(self) -> int:
        return int(self.state["step"])

    @property
    def position(self) -> DataPosition:
        return DataPosition(**self.state["data_position"])

    def tensors(self, kind: str) -> dict[str, torch.Tensor]:
        """The tensors of file `kind` ("model", "ema" or "optimizer") on the CPU, after a size check."""
        name = TENSOR_FILES[kind]
        file = self.path / name
        require(file.is_file(), f"checkpoint file {file} is missing; the checkpoint is incomplete, use another one.")
        size, expected = file.stat().st_size, self.state["files"][name]
        require(size == expected, f"checkpoint file {file} has {size} bytes instead of {expected} "
                "(truncated or corrupt); use another checkpoint.")
        try:
            return load_file(str(file), device="cpu")
        except SafetensorError as err:
            raise EdlmError(f"checkpoint file {file} is corrupt ({err}); use another checkpoint.") from None


def read_checkpoint(path_or_spec) -> Checkpoint:
    """Find and read a checkpoint's state.json; raise EdlmError naming the path if it is not sound."""
    path = resolve_checkpoint(path_or_spec)
    state, config = read_run_json(path / STATE_FILE, fmt=FORMAT, version=VERSION, what="checkpoint state",
                                  required=("step", "data_position", "optimizer", "files"), writer="edlm train")
    return Checkpoint(path, state, config)


def _load_into(module: nn.Module, tensors: dict[str, torch.Tensor], ckpt: Checkpoint, kind: str) -> None:
    try:
        module.load_state_dict(tensors)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise EdlmError(f"the {kind} weights in {ckpt.path} do not fit the model its config describes ({first}); "
                        "the checkpoint is corrupt or was written by an incompatible edlm.") from None


def load_state_dict(path_or_spec, *, ema: bool = True) -> tuple[dict[str, torch.Tensor], RunConfig]:
    """(EMA or trained weights on the CPU, RunConfig) of a checkpoint spec (or of a pretrained directory,
    `pretrained:DIR_OR_ID` or a local directory with edlm_config.json, which holds one set of weights)."""
    from edlm.pretrained import load_pretrained_state, pretrained_spec

    name = pretrained_spec(path_or_spec)
    if name is not None:
        return load_pretrained_state(name)
    ckpt = read_checkpoint(path_or_spec)
    return ckpt.tensors("ema" if ema else "model"), ckpt.config


def load_model(path_or_spec, *, ema: bool = True, device=None) -> tuple[nn.Module, RunConfig]:
    """The model of a checkpoint (EMA weights unless ema=False) in eval mode, and its RunConfig.

    `path_or_spec`: a run directory, a checkpoint directory, or `ckpt:PATH`. `device`: where to put
    the model; None picks CUDA when available, else the CPU. A pretrained directory
    (`pretrained:DIR_OR_ID`, or a local directory with edlm_config.json; see `edlm.pretrained`) loads
    through `edlm.pretrained.from_pretrained`; it holds one set of weights, so `ema` does not apply.
    """
    from edlm.pretrained import from_pretrained, pretrained_spec

    name = pretrained_spec(path_or_spec)
    if name is not None:
        return from_pretrained(name, device=device)
    from edlm.train.objectives import objective_class
    from edlm.train.runtime import select_device

    ckpt = read_checkpoint(path_or_spec)
    kind = "ema" if ema else "model"
    model = objective_class(ckpt.config.train.objective).build_model(ckpt.config)
    _load_into(model, ckpt.tensors(kind), ckpt, kind)
    return model.to(device if device is not None else select_device()).eval(), ckpt.config


def restore_training_state(ckpt: Checkpoint, model: nn.Module, ema_model: nn.Module,
                           optimizer: torch.optim.Optimizer) -> None:
    """Load a checkpoint's trained weights, EMA weights and optimizer state into a fresh run."""
    _load_into(model, ckpt.tensors("model"), ckpt, "model")
    _load_into(ema_model, ckpt.tensors("ema"), ckpt, "ema")
    try:
        optimizer.load_state_dict(join_tree(ckpt.tensors("optimizer"), ckpt.state["optimizer"]))
    except (KeyError, ValueError) as err:
        raise EdlmError(f"the optimizer state in {ckpt.path} does not fit the model ({err}); "
                        "the checkpoint is corrupt or was written by an incompatible edlm.") from None
