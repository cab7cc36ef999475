"""Training objectives: the MDLM continuous-time NELBO and next-token cross-entropy.

Losses are computed in float32 even when the model runs under bf16 autocast.
"""

from __future__ import annotations

import torch

from edlm.diffusion.process import forward_mask, masked_token_nll
from edlm.diffusion.schedules import antithetic_times


def mdlm_loss(denoiser, x0: torch.Tensor, schedule, mask_id: int, generator: torch.Generator | None = None,
              t_min: float = 1e-3) -> torch.Tensor:
    """Mean over the batch of the per-token MDLM NELBO (nats): scalar float32.

    x0: Long[B, L]. Times are antithetic across the batch (one stratum per sequence), in (t_min, 1].
    The estimate is `weight(t) * sum_{masked} -log mu / L`, averaged over sequences.
    """
    b, length = x0.shape
    t = antithetic_times(b, generator, device=x0.device, t_min=t_min)
    xt = forward_mask(x0, schedule.alpha(t), mask_id, generator)
    nll = masked_token_nll(denoiser(xt, t), x0, xt, mask_id)
    return (schedule.loss_weight(t).float() * nll.sum(dim=1)).mean() / length


def ar_loss(lm, x: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy in nats (float32): -mean log p(x_i | x_<i)."""
    return -lm.token_logprobs(x).mean()
