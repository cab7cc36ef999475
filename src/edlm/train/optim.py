"""Optimiser, learning-rate schedule and EMA weights.

- AdamW over two parameter groups: matrices and embeddings (ndim >= 2) get `train.weight_decay`,
  biases and norm weights get none.
- `learning_rate(step, cfg)`: linear warm-up over `warmup_steps`, then constant, a cosine decay
  that reaches 0 at `steps`, or warm-up-stable-decay (constant, then linear to 0 over the last
  `decay_fraction` of `steps`). A pure function of the step, so nothing about it needs checkpointing.
- `EMA`: a frozen copy of the model, `ema <- d * ema + (1 - d) * param` after each optimizer step
  with `d = min(train.ema, (1 + n) / (10 + n))` after n updates (MDLM's warm-up of the decay, so
  short runs get a useful average too). Validation, sampling and `load_model` use the EMA weights.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def build_optimizer(model: nn.Module, cfg, device: torch.device) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of `model` (fused kernel on CUDA). cfg: TrainConfig."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=device.type == "cuda")


def learning_rate(step: int, cfg) -> float:
    """Learning rate of optimizer step `step` (0-based). cfg: TrainConfig."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "wsd":
        decay_steps = max(1.0, cfg.decay_fraction * cfg.steps)
        return cfg.lr * min(1.0, max(0.0, (cfg.steps - step) / decay_steps))
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


class EMA:
    """Exponential moving average of a model's parameters, kept in a frozen eval-mode copy."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, updates: int) -> float:
        """Decay used for update number `updates` (1-based)."""
        return min(self.decay, (1 + updates) / (10 + updates))

    @torch.no_grad()
    def update(self, model: nn.Module, updates: int) -> None:
        """Move the average towards `model` (after optimizer step number `updates`, 1-based)."""
        weight = 1.0 - self.decay_at(updates)
        ema_params = list(self.model.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], weight)
        for ema_buf, buf in zip(self.model.buffers(), model.buffers()):
            ema_buf.copy_(buf)
