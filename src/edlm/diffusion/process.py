"""The masking forward process, SUBS parameterisation and the reverse step.

Mask id is V (one past the data vocabulary). Tensors: x0, xt Long[B, L]; t Float[B]; logits Float[B, L, V].
"""

from __future__ import annotations

import torch


def forward_mask(x0: torch.Tensor, alpha_t: torch.Tensor, mask_id: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """xt ~ q(xt | x0): each token is replaced by `mask_id` independently with probability 1 - alpha_t.

    alpha_t: Float[B] (or broadcastable to [B, 1]). Uniforms are drawn on the CPU generator's device.
    """
    u = torch.rand(x0.shape, generator=generator, device=x0.device if generator is None else generator.device)
    masked = u.to(x0.device) < (1 - alpha_t).reshape(-1, 1).to(x0.device)
    return torch.where(masked, torch.full_like(x0, mask_id), x0)


def subs_logprobs(logits: torch.Tensor, xt: torch.Tensor, mask_id: int) -> torch.Tensor:
    """SUBS: float32 log mu(x0 | xt) over the V data ids; unmasked positions are carried over.

    logits: Float[B, L, V] from any denoiser (no mask column). Returns Float[B, L, V]: log-softmax at
    masked positions; at unmasked positions 0 at xt and -inf elsewhere.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    unmasked = xt != mask_id
    if unmasked.any():
        carry = torch.full_like(logp, float("-inf"))
        carry.scatter_(-1, torch.where(unmasked, xt, 0)[..., None], 0.0)
        logp = torch.where(unmasked[..., None], carry, logp)
    return logp


def masked_token_nll(logits: torch.Tensor, x0: torch.Tensor, xt: torch.Tensor, mask_id: int) -> torch.Tensor:
    """-log mu^i(x0^i | xt) at masked positions, 0 elsewhere: Float[B, L] in float32 nats."""
    nll = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), x0, reduction="none")
    return torch.where(xt == mask_id, nll, torch.zeros_like(nll))


def unmask_step(xt: torch.Tensor, x0: torch.Tensor, alpha_t: torch.Tensor, alpha_s: torch.Tensor, mask_id: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Reverse step t -> s < t given a draw x0: each masked position takes x0 with probability
    (alpha_s - alpha_t) / (1 - alpha_t) and stays masked otherwise; unmasked positions never change.

    alpha_t, alpha_s: Float[B] (or scalars). Returns Long[B, L].
    """
    p = ((alpha_s - alpha_t) / (1 - alpha_t)).reshape(-1, 1).to(torch.float64)
    u = torch.rand(xt.shape, generator=generator, dtype=torch.float64,
                   device=xt.device if generator is None else generator.device).to(xt.device)
    reveal = (xt == mask_id) & (u < p.to(xt.device))
    return torch.where(reveal, x0, xt)
