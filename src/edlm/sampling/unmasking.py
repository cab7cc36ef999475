"""Which masked positions a reverse step reveals: MDLM's random order or an adaptive order by the
denoiser's confidence (MaskGIT / LLaDA "low-confidence remasking", Dream's margin and entropy).

Every rule reveals the same *number* of positions per sequence: the count of eligible masked
positions whose float64 uniform falls below the step's reveal probability (so the count follows the
schedule, Binomial(masked, p) per step, and the last step, p = 1, reveals all). "random" reveals
exactly those positions - MDLM's exact ancestral step. The adaptive rules reveal the `count`
eligible positions with the highest score instead:

    confidence: max_v p(v)              margin: p(top-1) - p(top-2)       entropy: sum_v p(v) log p(v)

with p = softmax(logits / temperature) in float64, plus `noise * G` (G ~ Gumbel(0, 1), float64,
from the sampler's generator) when `noise > 0`. Ties are broken by the same uniforms (lower first),
so no extra random numbers are drawn. Fixed (prefix / clamped) and ineligible positions are never
scored. Adaptive orders are heuristics: they do not sample the model's distribution.
"""

from __future__ import annotations

import torch

from edlm.sampling.categorical import rows_per_chunk

UNMASKING = ("random", "confidence", "margin", "entropy")


def _score_rows(logits: torch.Tensor, rule: str) -> torch.Tensor:
    """Float64[r, V] logits (temperature applied) -> Float64[r] scores, higher = revealed first."""
    logp = torch.log_softmax(logits, dim=-1)
    if rule == "confidence":
        return logp.max(dim=-1).values.exp()
    if rule == "margin":
        top = logp.topk(min(2, logp.shape[-1]), dim=-1).values.exp()
        return top[:, 0] - (top[:, 1] if top.shape[1] > 1 else 0.0)
    return (logp.exp() * logp).nan_to_num(0.0).sum(dim=-1)  # negative entropy (0 log 0 = 0)


def position_scores(logits: torch.Tensor, eligible: torch.Tensor, rule: str, noise: float,
                    generator: torch.Generator | None) -> torch.Tensor:
    """Scores Float64[B, L] of the eligible positions (-inf elsewhere) under an adaptive rule.

    logits: Float[B, L, V] (temperature already applied); eligible: Bool[B, L]. Rows are scored in
    chunks of `rows_per_chunk(V)`, so no float64 [B, L, V] tensor is materialised.
    """
    b, length, vocab = logits.shape
    scores = torch.full((b, length), float("-inf"), dtype=torch.float64, device=logits.device)
    rows = eligible.reshape(-1).nonzero().squeeze(1)
    flat = logits.reshape(-1, vocab)
    step = rows_per_chunk(vocab)
    for start in range(0, rows.numel(), step):
        chunk = rows[start:start + step]
        scores.view(-1)[chunk] = _score_rows(flat.index_select(0, chunk).double(), rule)
    if noise > 0:
        noise_device = generator.device if generator is not None else logits.device
        e = torch.empty((b, length), dtype=torch.float64, device=noise_device).exponential_(generator=generator)
        gumbel = -e.to(logits.device).clamp_min(torch.finfo(torch.float64).tiny).log()
        scores = torch.where(eligible, scores + noise * gumbel, scores)
    return scores


def top_count(scores: torch.Tensor, tiebreak: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Bool[B, L]: in each row the `count[b]` positions of highest score, ties to the lower tiebreak.

    scores: Float64[B, L] (-inf = never chosen); tiebreak: Float64[B, L] distinct uniforms;
    count: Long[B], at most the number of finite scores of the row.
    """
    by_tiebreak = tiebreak.argsort(dim=1)
    order = by_tiebreak.gather(1, scores.gather(1, by_tiebreak).argsort(dim=1, descending=True, stable=True))
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(scores.shape[1], device=scores.device)
                                            .expand_as(order).contiguous())
    return rank < count[:, None]
