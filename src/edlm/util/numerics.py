"""Numerically careful elementwise functions shared by layers that may not import each other."""

from __future__ import annotations

import torch


def log_expm1(sigma: torch.Tensor) -> torch.Tensor:
    """log(e^sigma - 1) for sigma in [0, inf], without overflow: sigma + log(1 - e^-sigma)."""
    return sigma + torch.log(-torch.expm1(-sigma))
