"""Building blocks of the backbone: norm, rotary embeddings, time embedding, adaLN modulation.

The layout follows the DiT blocks of MDLM (Sahoo et al. 2024, `models/dit.py` in kuleshov-group/mdlm):
weight-only LayerNorm computed in float32, rotate-half rotary embeddings on q and k, sinusoidal
time features through a two-layer SiLU MLP, and `x * (1 + scale) + shift` modulation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.Module):
    """LayerNorm with a weight and no bias, computed in float32 and cast back to the input dtype."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = F.layer_norm(x.float(), (self.dim,), self.weight.float())
        return y.to(x.dtype)


class Rotary(nn.Module):
    """Rotary position embeddings (rotate-half convention, as GPT-NeoX and MDLM).

    `forward(positions)` returns `(cos, sin)`, each FloatTensor[L, head_dim] in float32.
    """

    def __init__(self, head_dim: int, base: float) -> None:
        super().__init__()
        self.head_dim, self.base = head_dim, base
        self.register_buffer("inv_freq", self.frequencies(), persistent=False)

    def frequencies(self, device=None) -> torch.Tensor:
        """Inverse frequencies base^(-2i/head_dim), i < head_dim/2, in float32."""
        exponents = torch.arange(0, self.head_dim, 2, dtype=torch.float32, device=device) / self.head_dim
        return 1.0 / (self.base ** exponents)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq = self.inv_freq.to(positions.device)
        if inv_freq.dtype != torch.float32:  # Module.to(bfloat16) casts buffers; angles need float32
            inv_freq = self.frequencies(positions.device)
        freqs = torch.outer(positions.float(), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x: Tensor[B, H, L, D] by the angles of (cos, sin): Tensor[L, D]; math in float32."""
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


class TimestepEmbedder(nn.Module):
    """t: FloatTensor[B] in [0, 1] -> FloatTensor[B, cond_dim] (sinusoidal features, then an MLP)."""

    def __init__(self, cond_dim: int, frequency_dim: int = 256) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.frequency_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        args = t.float()[:, None] * freqs[None]
        features = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return self.mlp(features.to(self.mlp[0].weight.dtype))  # float32 features, model dtype MLP


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation; x: [B, L, D], shift and scale: [B, 1, D]."""
    return x * (1 + scale) + shift
