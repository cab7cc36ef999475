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
previous checkpoint and pointer intact (`edlm.train.checkpointing` writes them; this module reads them).

Checkpoint specs accepted everywhere: a run directory (its latest checkpoint), its `checkpoints/`
directory, one checkpoint directory, or any of these prefixed with `ckpt:`.
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
from edlm.models import build_model
from edlm.util.device import select_device

FORMAT = "edlm-checkpoint"
VERSION = 1
CHECKPOINTS_DIR = "checkpoints"
LATEST = "latest"
STATE_FILE = "state.json"
TENSOR_FILES = {"model": "model.safetensors", "ema": "ema.safetensors", "optimizer": "optimizer.safetensors"}
STEP_PREFIX = "step_"


def checkpoint_name(step: int) -> str:
    return f"{STEP_PREFIX}{step:08d}"


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


def load_weights_into(module: nn.Module, tensors: dict[str, torch.Tensor], ckpt: Checkpoint, kind: str) -> None:
    try:
        module.load_state_dict(tensors)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise EdlmError(f"the {kind} weights in {ckpt.path} do not fit the model its config describes ({first}); "
                        "the checkpoint is corrupt or was written by an incompatible edlm.") from None


def load_state_dict(path_or_spec, *, ema: bool = True) -> tuple[dict[str, torch.Tensor], RunConfig]:
    """(EMA or trained weights on the CPU, RunConfig) of a checkpoint spec (or of a pretrained directory,
    `pretrained:DIR_OR_ID` or a local directory with edlm_config.json, which holds one set of weights)."""
    from edlm.loading.pretrained import load_pretrained_state, pretrained_spec

    name = pretrained_spec(path_or_spec)
    if name is not None:
        return load_pretrained_state(name)
    ckpt = read_checkpoint(path_or_spec)
    return ckpt.tensors("ema" if ema else "model"), ckpt.config


def load_model(path_or_spec, *, ema: bool = True, device=None) -> tuple[nn.Module, RunConfig]:
    """The model of a checkpoint (EMA weights unless ema=False) in eval mode, and its RunConfig.

    `path_or_spec`: a run directory, a checkpoint directory, or `ckpt:PATH`. `device`: where to put
    the model; None picks CUDA when available, else the CPU. A pretrained directory
    (`pretrained:DIR_OR_ID`, or a local directory with edlm_config.json; see `edlm.loading.pretrained`) loads
    through `edlm.loading.pretrained.from_pretrained`; it holds one set of weights, so `ema` does not apply.
    """
    from edlm.loading.pretrained import from_pretrained, pretrained_spec

    name = pretrained_spec(path_or_spec)
    if name is not None:
        return from_pretrained(name, device=device)

    ckpt = read_checkpoint(path_or_spec)
    kind = "ema" if ema else "model"
    model = build_model(ckpt.config.model, ckpt.config.train.objective)
    load_weights_into(model, ckpt.tensors(kind), ckpt, kind)
    return model.to(device if device is not None else select_device()).eval(), ckpt.config
