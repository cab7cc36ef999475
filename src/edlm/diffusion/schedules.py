"""Noise schedules alpha_t (probability that a token is still unmasked at time t in [0, 1]).

Both schedules run from alpha_0 = 1 to alpha_1 = eps. The continuous-time MDLM NELBO weights the
masked cross-entropy at time t by `-alpha'_t / (1 - alpha_t)`, which is `1 / t` for the log-linear one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from edlm.errors import require


@dataclass(frozen=True)
class LogLinearSchedule:
    """alpha_t = 1 - (1 - eps) t."""

    eps: float = 1e-3

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return 1 - (1 - self.eps) * t

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """-alpha'_t / (1 - alpha_t) = 1 / t."""
        return 1 / t


@dataclass(frozen=True)
class CosineSchedule:
    """alpha_t = eps + (1 - eps) cos(pi t / 2)."""

    eps: float = 1e-3

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return self.eps + (1 - self.eps) * torch.cos(0.5 * math.pi * t)

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """-alpha'_t / (1 - alpha_t) = (pi/2) sin(pi t/2) / (1 - cos(pi t/2))."""
        half = 0.5 * math.pi * t
        return 0.5 * math.pi * torch.sin(half) / (1 - torch.cos(half))


SCHEDULES = {"loglinear": LogLinearSchedule, "cosine": CosineSchedule}


def make_schedule(name: str, eps: float = 1e-3):
    """Schedule by name: 'loglinear' or 'cosine'."""
    require(name in SCHEDULES, f"diffusion.schedule={name!r} is unknown; use one of {sorted(SCHEDULES)}.")
    require(0.0 <= eps < 1.0, f"diffusion.eps={eps} must lie in [0, 1).")
    return SCHEDULES[name](eps)


def antithetic_times(n: int, generator: torch.Generator | None = None, device=None,
                     t_min: float = 0.0) -> torch.Tensor:
    """n stratified times in (t_min, 1]: t_j = 1 - ((u + j / n) mod 1), mapped linearly onto (t_min, 1].

    One uniform u shifts an evenly spaced grid (MDLM's low-discrepancy sampler), so the n times cover
    [0, 1) with one point per stratum and the estimate of the time integral has low variance.
    """
    u = torch.rand((), generator=generator, dtype=torch.float64,
                   device=generator.device if generator is not None else None).cpu()
    grid = (u + torch.arange(n, dtype=torch.float64) / n) % 1.0
    t = 1.0 - grid
    return (t_min + (1.0 - t_min) * t).to(device=device, dtype=torch.float32)
