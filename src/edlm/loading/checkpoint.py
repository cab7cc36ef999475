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
                                non-tensor state, and the byte size and sha256 of every file above
                                (`edlm.loading.integrity`; version 1 recorded the size only)

A checkpoint directory is written under a temporary name, fsynced and renamed into place, and only
then does `latest` (itself replaced atomically) point to it; a crash at any moment leaves the
previous checkpoint and pointer intact (`edlm.train.checkpointing` writes them; this module reads them).

The functions here take plain paths: a run directory (its latest checkpoint), its `checkpoints/`
directory, or one checkpoint directory. Model specs (`ckpt:PATH` and the others) are resolved by
`edlm.loading.specs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from edlm.config import RunConfig, read_run_json
from edlm.errors import EdlmError, require
from edlm.loading.integrity import check_file
from edlm.loading.pretrained import build_run_model
from edlm.util.device import select_device

FORMAT = "edlm-checkpoint"
VERSION = 2
READ_VERSIONS = (1, 2)
CHECKPOINTS_DIR = "checkpoints"
LATEST = "latest"
STATE_FILE = "state.json"
TENSOR_FILES = {"model": "model.safetensors", "ema": "ema.safetensors", "optimizer": "optimizer.safetensors"}
STEP_PREFIX = "step_"


def checkpoint_name(step: int) -> str:
    return f"{STEP_PREFIX}{step:08d}"


def is_checkpoint_dir(path) -> bool:
    """True when `path` is a checkpoint directory, a run directory or its `checkpoints/` directory
    (it holds state.json, checkpoints/latest or latest)."""
    path = Path(path).expanduser()
    return any((path / name).is_file() for name in (STATE_FILE, f"{CHECKPOINTS_DIR}/{LATEST}", LATEST))


def resolve_checkpoint(path) -> Path:
    """The checkpoint directory that a run directory, `checkpoints/` directory or checkpoint directory names."""
    spec = str(path)
    path = Path(spec).expanduser()
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


@dataclass
class Checkpoint:
    """A checkpoint directory whose state.json has been read and checked."""

    path: Path
    state: dict
    config: RunConfig

    @property
    def step(self) -> int:
        return int(self.state["step"])

    def tensors(self, kind: str) -> dict[str, torch.Tensor]:
        """The tensors of file `kind` ("model", "ema" or "optimizer") on the CPU, after checking its
        size and sha256 against state.json."""
        file = self.path / TENSOR_FILES[kind]
        check_file(file, self.state["files"].get(file.name), version=self.state["version"],
                   listed_in=self.path / STATE_FILE, fix="use another checkpoint of the run (a step_* directory)")
        try:
            return load_file(str(file), device="cpu")
        except SafetensorError as err:
            raise EdlmError(f"checkpoint file {file} is corrupt ({err}); use another checkpoint.") from None


def read_checkpoint(path) -> Checkpoint:
    """Find and read a checkpoint's state.json; raise EdlmError naming the path if it is not sound."""
    path = resolve_checkpoint(path)
    state, config = read_run_json(path / STATE_FILE, fmt=FORMAT, versions=READ_VERSIONS, what="checkpoint state",
                                  required=("step", "data_position", "optimizer", "files"), writer="edlm train")
    return Checkpoint(path, state, config)


def load_weights_into(module: nn.Module, tensors: dict[str, torch.Tensor], ckpt: Checkpoint, kind: str) -> None:
    try:
        module.load_state_dict(tensors)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise EdlmError(f"the {kind} weights in {ckpt.path} do not fit the model its config describes ({first}); "
                        "the checkpoint is corrupt or was written by an incompatible edlm.") from None


def load_model(path, *, ema: bool = True, device=None) -> tuple[nn.Module, RunConfig]:
    """The model of a checkpoint (EMA weights unless ema=False) in eval mode, and its RunConfig.

    `path`: a run directory, its `checkpoints/` directory or a checkpoint directory (model specs such
    as `ckpt:PATH` go through `edlm.load`). `device`: where to put the model; None picks CUDA when
    available, else the CPU.
    """
    ckpt = read_checkpoint(path)
    kind = "ema" if ema else "model"
    model = build_run_model(ckpt.config)
    load_weights_into(model, ckpt.tensors(kind), ckpt, kind)
    return model.to(device if device is not None else select_device()).eval(), ckpt.config
