"""Training: the loop (`train`), pluggable objectives, safetensors checkpoints with exact resume
(models are loaded back through `edlm.load`).

- `train(cfg) -> TrainResult`: train or resume the run in `cfg.train.out_dir`, alone or under torchrun;
  on SIGINT/SIGTERM it checkpoints the current step and raises `TrainingStopped` (a KeyboardInterrupt).
- `register_objective(name)`: add a `train.objective` (see `edlm.train.objectives`).
"""

from edlm.train.loop import TrainResult, train
from edlm.train.objectives import register_objective
from edlm.train.signals import TrainingStopped

__all__ = ["TrainResult", "TrainingStopped", "register_objective", "train"]
