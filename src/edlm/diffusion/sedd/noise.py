"""Noise schedules of score-entropy diffusion: the total noise sigma_bar(t) and its rate sigma'(t), t in [0, 1].

The forward process at time t is the graph's `P_{sigma_bar(t)}`. Both methods take `t: Float[...]`
and return Float64[...].

| name | total `sigma_bar(t)` | rate `sigma'(t)` |
|---|---|---|
| `loglinear` | `-log(1 - (1 - eps) t)` | `(1 - eps) / (1 - (1 - eps) t)` |
| `geometric` | `sigma_min^(1 - t) sigma_max^t` | `sigma_bar(t) log(sigma_max / sigma_min)` |

Log-linear makes `e^-sigma_bar(t) = 1 - (1 - eps) t`, MDLM's log-linear alpha_t: on the absorbing graph
a token is absorbed by time t with probability (1 - eps) t. With eps = 0 the total noise is infinite at
t = 1 (every token absorbed), which the likelihood bound of an absorbing model needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from edlm.errors import require


@dataclass(frozen=True)
class LogLinearNoise:
    """sigma_bar(t) = -log(1 - (1 - eps) t); eps in [0, 1)."""

    eps: float = 1e-3
    name = "loglinear"

    def __post_init__(self) -> None:
        require(0.0 <= self.eps < 1.0, f"noise eps={self.eps} must lie in [0, 1).")

    def total(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.log1p(-(1 - self.eps) * t.double())

    def rate(self, t: torch.Tensor) -> torch.Tensor:
        return (1 - self.eps) / (1 - (1 - self.eps) * t.double())


@dataclass(frozen=True)
class GeometricNoise:
    """sigma_bar(t) = sigma_min^(1 - t) sigma_max^t; 0 < sigma_min < sigma_max."""

    sigma_min: float = 1e-4
    sigma_max: float = 20.0
    name = "geometric"

    def __post_init__(self) -> None:
        require(0.0 < self.sigma_min < self.sigma_max < math.inf,
                f"geometric noise needs 0 < sigma_min < sigma_max, got sigma_min={self.sigma_min}, "
                f"sigma_max={self.sigma_max}.")

    def total(self, t: torch.Tensor) -> torch.Tensor:
        low, high = math.log(self.sigma_min), math.log(self.sigma_max)
        return torch.exp(low + t.double() * (high - low))

    def rate(self, t: torch.Tensor) -> torch.Tensor:
        return self.total(t) * math.log(self.sigma_max / self.sigma_min)



NOISES = {"loglinear": LogLinearNoise, "geometric": GeometricNoise}


def make_noise(name: str, eps: float = 1e-3):
    """The noise `name` of a run (`train.noise`): "loglinear" with `eps` (`train.eps`), or "geometric"
    with SEDD's sigma_min = 1e-4 and sigma_max = 20 (its configs/config.yaml)."""
    require(name in NOISES, f"noise={name!r} is unknown; use one of {', '.join(NOISES)}.")
    return LogLinearNoise(eps=eps) if name == "loglinear" else GeometricNoise()
