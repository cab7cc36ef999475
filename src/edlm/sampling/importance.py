"""Importance-sampled denoising (EDLM Algorithm 1): draw k candidates x0 from the denoiser, weight
them by softmax(-E / tau), resample one per sequence.

Layout is batch-major throughout (docs/pitfalls.md, item 3): candidates Long[B, k, L] are flattened to
[B*k, L], so row `b*k + j` is candidate j of sequence b, and the energies Float64[B*k] are viewed back
as [B, k].
"""

from __future__ import annotations

import torch

from edlm.errors import require
from edlm.sampling.categorical import draw_rows, sample_categorical


def draw_candidates(logits: torch.Tensor, xt: torch.Tensor, mask_id: int, k: int,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """k candidates per sequence from the factorised proposal mu(x0 | xt) (SUBS: unmasked carried over).

    logits: Float[B, L, V]; xt: Long[B, L]. Returns candidates Long[B, k, L] and
    proposal_logp Float64[B, k] = sum over masked i of log mu^i(x0^i | xt) in nats.
    """
    b, length, vocab = logits.shape
    masked = xt == mask_id
    rows = masked.reshape(-1).nonzero().squeeze(1)  # masked (b, i) in row-major order
    tokens, logp = draw_rows(logits.reshape(-1, vocab), rows, k, generator)  # [k, M]
    candidates = xt[:, None, :].repeat(1, k, 1)  # [B, k, L]
    candidates.transpose(0, 1)[:, masked] = tokens  # write through the [k, B, L] view
    proposal_logp = torch.zeros((b, k), dtype=torch.float64, device=xt.device)
    proposal_logp.index_add_(0, rows // length, logp.t())
    return candidates, proposal_logp


def importance_resample(logits: torch.Tensor, xt: torch.Tensor, t: float, energy, k: int, tau: float,
                        mask_id: int, generator: torch.Generator | None = None,
                        on_draw=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One importance-sampled draw of x0 per sequence.

    logits: Float[B, L, V] denoiser output at xt: Long[B, L]; t: the diffusion time of this step.
    All B*k candidates are scored in one energy call. Returns x0 Long[B, L] and the effective sample
    size Float64[B] of the weights, `1 / sum_j w_j^2` with `w = softmax(-E / tau)`, in [1, k]
    (docs/pitfalls.md, item 8).
    on_draw: None, or a callable given (candidates Long[B, k, L], energies Float64[B, k],
    log_weights Float64[B, k], ess Float64[B], choice Long[B]) after the draw (`edlm.sampling.trace`).
    """
    b, length, _ = logits.shape
    candidates, proposal_logp = draw_candidates(logits, xt, mask_id, k, generator)
    times = torch.full((b * k,), t, dtype=torch.float32, device=xt.device)
    energies = energy(candidates.reshape(b * k, length), xt.repeat_interleave(k, dim=0), times,
                      proposal_logp.reshape(b * k))
    require(tuple(energies.shape) == (b * k,),
            f"the energy returned shape {tuple(energies.shape)} for {b * k} candidates; return one value per sequence.")
    energies = energies.to(device=xt.device, dtype=torch.float64).view(b, k)
    finite_or_inf = ~energies.isnan() & (energies > float("-inf"))
    require(bool(finite_or_inf.all()) and bool((energies < float("inf")).any(dim=1).all()),
            "the energy returned NaN or -inf, or +inf for every candidate of a sequence; check the energy model.")
    log_w = torch.log_softmax(-energies / tau, dim=1)  # docs/pitfalls.md, item 1: lower energy -> larger weight
    ess = 1.0 / torch.exp(2.0 * log_w).sum(dim=1)
    choice = sample_categorical(log_w, generator)  # [B]
    if on_draw is not None:
        on_draw(candidates, energies, log_w, ess, choice)
    return candidates[torch.arange(b, device=xt.device), choice], ess
