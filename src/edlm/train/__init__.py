"""Training: the loop (`train`), pluggable objectives, safetensors checkpoints with exact resume.

- `train(cfg) -> TrainResult`: train or resume the run in `cfg.train.out_dir`, alone or under torchrun.
- `load_model(spec, *, ema=True, device=None) -> (model, RunConfig)`: a trained model from a run
  directory, a checkpoint directory or `ckpt:PATH`.
- `register_objective(name)`: add a `train.objective` (see `edlm.train.objectives`).
"""

from edlm.train.checkpoint import load_model, read_checkpoint, resolve_checkpoint
from edlm.train.loop import TrainResult, train
from edlm.train.objectives import register_objective

__all__ = ["TrainResult", "load_model", "read_checkpoint", "register_objective", "resolve_checkpoint", "train"]
