"""Writing training checkpoints and restoring a run from one (the format is read by `edlm.loading.checkpoint`).

The data order and every random draw are functions of `train.seed` and the step (see
`edlm.train.order`), so step and data position are all the random state a resumed run needs.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from edlm.config import RunConfig
from edlm.errors import EdlmError
from edlm.loading.checkpoint import (CHECKPOINTS_DIR, FORMAT, LATEST, STATE_FILE, STEP_PREFIX, TENSOR_FILES, VERSION,
                                     Checkpoint, checkpoint_name, load_weights_into, resolve_checkpoint)
from edlm.loading.integrity import file_record
from edlm.train.order import DataPosition
from edlm.train.treeio import join_tree, split_tree
from edlm.util.atomic import atomic_directory, remove_stale_temporaries, write_text_atomic


def checkpoint_position(ckpt: Checkpoint) -> DataPosition:
    """Where in the data order the run of `ckpt` stopped."""
    return DataPosition(**ckpt.state["data_position"])


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
        from edlm.version import __version__

        state = {
            "format": FORMAT, "version": VERSION, "step": step,
            "data_position": {"epoch": position.epoch, "offset": position.offset},
            "config": config.to_dict(), "optimizer": optimizer_skeleton,
            "files": {name: file_record(tmp / name) for name in TENSOR_FILES.values()},
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


def latest_checkpoint(out_dir) -> Path | None:
    """The newest checkpoint of the run in `out_dir`, or None when it has none yet."""
    root = Path(out_dir) / CHECKPOINTS_DIR
    return resolve_checkpoint(root) if (root / LATEST).is_file() else None


def restore_training_state(ckpt: Checkpoint, model: nn.Module, ema_model: nn.Module,
                           optimizer: torch.optim.Optimizer) -> None:
    """Load a checkpoint's trained weights, EMA weights and optimizer state into a fresh run."""
    load_weights_into(model, ckpt.tensors("model"), ckpt, "model")
    load_weights_into(ema_model, ckpt.tensors("ema"), ckpt, "ema")
    try:
        optimizer.load_state_dict(join_tree(ckpt.tensors("optimizer"), ckpt.state["optimizer"]))
    except (KeyError, ValueError) as err:
        raise EdlmError(f"the optimizer state in {ckpt.path} does not fit the model ({err}); "
                        "the checkpoint is corrupt or was written by an incompatible edlm.") from None
