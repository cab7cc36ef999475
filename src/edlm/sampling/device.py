"""Where a model lives and where random numbers are drawn."""

from __future__ import annotations

import torch


def module_device(model) -> torch.device:
    """Device of the first parameter of `model` (CPU for parameter-free callables)."""
    params = getattr(model, "parameters", None)
    if params is not None:
        for p in params():
            return p.device
    return torch.device("cpu")


def uniform(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """Float64 uniforms in [0, 1) of `shape`, drawn on the generator's device, returned on `device`."""
    noise_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, dtype=torch.float64, device=noise_device).to(device)
