"""The denoising score entropy and its diffusion-weighted time integrand (DWDSE), per sequence.

For one position with noisy state xt, clean token x0, total noise sigma and model scores
`s_y = exp(log_score_y)`:

    l(xt, x0) = sum_{y != xt} R[y, xt] * (s_y - r_y log s_y + r_y (log r_y - 1)),   r_y = P[x0, y] / P[x0, xt]

R the graph's rate matrix, P = P_sigma. Each term is a Bregman divergence, >= 0 and 0 iff s_y = r_y;
it is computed as `r_y phi(log s_y - log r_y)` with `phi(u) = expm1(u) - u` (no cancellation between
large terms when r_y is large, e.g. r = 1 + N / (e^sigma - 1) for small sigma on the uniform graph),
and as `s_y` where r_y = 0. Float64 throughout.

The DWDSE of a sequence at time t is `sigma'(t) * sum_i l(xt^i, x0^i)` with xt ~ P_{sigma_bar(t)}[x0, .];
its integral over t in [0, 1] is the score-entropy bound (docs/math.md, Score entropy).
"""

from __future__ import annotations

import torch

from edlm.diffusion.sedd.graphs import Graph
from edlm.diffusion.sedd.protocol import log_scores


def score_entropy(graph: Graph, log_score: torch.Tensor, xt: torch.Tensor, x0: torch.Tensor,
                  sigma: torch.Tensor) -> torch.Tensor:
    """Denoising score entropy l(xt^i, x0^i) per position: Float64[B, L].

    log_score: Float[B, L, N] model log scores at xt; xt, x0: Long[B, L]; sigma: Float[B] total noise.
    Entries of log_score that no term reads (y = xt, and every entry where nothing enters xt) are ignored.
    """
    weight = graph.rate_into(xt)  # [B, L, N]
    used = weight > 0
    log_r = graph.log_ratio(xt, x0, sigma.reshape(-1, 1))
    ls = torch.where(used, log_score.double(), 0.0)
    zero_r = torch.isneginf(log_r)
    log_r_safe = torch.where(zero_r, 0.0, log_r)
    bregman = torch.where(zero_r, ls.exp(), log_r_safe.exp() * (torch.expm1(ls - log_r_safe) - (ls - log_r_safe)))
    return torch.where(used, weight * bregman, 0.0).sum(dim=-1)


def dwdse(score_model, graph: Graph, noise, x0: torch.Tensor, t: torch.Tensor,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """sigma'(t) * sum_i l(xt^i, x0^i) per sequence: Float64[B], nats.

    x0: Long[B, L]; t: Float[B] in [0, 1) (sigma_bar(t) finite). Draws xt ~ P_sigma[x0, .] from
    `generator`; the model, the draw and the ratios all use sigma rounded to float32 (the model's input).
    """
    sigma = noise.total(t).float()
    xt = graph.sample_transition(x0, sigma, generator)
    entropy = score_entropy(graph, log_scores(score_model, graph, xt, sigma), xt, x0, sigma)
    return noise.rate(t).to(entropy.device) * entropy.sum(dim=1)
