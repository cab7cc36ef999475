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
from edlm.util.numerics import log_expm1


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


def training_score_entropy(graph: Graph, log_score: torch.Tensor, xt: torch.Tensor, x0: torch.Tensor,
                           sigma: torch.Tensor) -> torch.Tensor:
    """`score_entropy` for training: Float32[B, L], differentiable in log_score, without float64
    [B, L, N] temporaries (the per-row ratios are float64 scalars; every [.., N] tensor is float32).

    The graph's ratios take at most two values per position, so each sum over y is one reduction:
    - absorb: only absorbed positions (xt = m) have terms: r_y = 0 for data y != x0, and
      r_{x0} = 1 / (e^sigma - 1), so l = sum_{y < V, y != x0} s_y + r phi(log s_{x0} - log r),
      computed over the absorbed rows only (the first sum as a logsumexp without x0).
    - uniform: R[y, xt] = 1/N; with rho = (1 - e^-sigma) / (1 + (N - 1) e^-sigma), r_y = rho for every
      y != xt when xt = x0, else r_{x0} = 1 / rho and r_y = 1 for y not in {xt, x0}, so
      l = (1/N) [r_o sum_{y not in {xt, x0}} phi(log s_y - log r_o) + [xt != x0] r_{x0} phi(log s_{x0} - log r_{x0})].
    phi(u) = expm1(u) - u as in `score_entropy`. log_score: Float[B, L, N]; xt, x0: Long[B, L]; sigma: Float[B].
    """
    sigma = sigma.reshape(-1, 1).expand(xt.shape).double()  # [B, L]
    if graph.absorbing:
        return _absorbing_entropy(graph, log_score, xt, x0, sigma)
    return _uniform_entropy(graph, log_score, xt, x0, sigma)


def _phi(u: torch.Tensor) -> torch.Tensor:
    return torch.expm1(u) - u


def _absorbing_entropy(graph, log_score, xt, x0, sigma) -> torch.Tensor:
    rows = (xt == graph.mask_id).reshape(-1).nonzero().squeeze(1)
    out = torch.zeros(xt.numel(), dtype=torch.float32, device=xt.device)
    if rows.numel() == 0:
        return out.view(xt.shape) + 0.0 * log_score.sum()  # no term, but a gradient (of zeros) for backward
    ls = log_score.reshape(-1, log_score.shape[-1]).index_select(0, rows)[:, :graph.vocab_size].float()
    target = x0.reshape(-1).index_select(0, rows)[:, None]
    log_r = (-log_expm1(sigma.reshape(-1).index_select(0, rows))).float()
    others = ls.scatter(-1, target, float("-inf")).logsumexp(dim=-1).exp()
    u = ls.gather(-1, target).squeeze(-1) - log_r
    return out.index_copy(0, rows, others + log_r.exp() * _phi(u)).view(xt.shape)


def _uniform_entropy(graph, log_score, xt, x0, sigma) -> torch.Tensor:
    n = graph.num_states
    log_rho = torch.log(-torch.expm1(-sigma)) - torch.log1p((n - 1) * torch.exp(-sigma))  # [B, L], float64
    same = xt == x0
    log_other = torch.where(same, log_rho, 0.0).float()
    u = log_score.float() - log_other[..., None]
    u.scatter_(-1, xt[..., None], 0.0).scatter_(-1, x0[..., None], 0.0)  # phi(0) = 0: y = xt and y = x0 drop out
    main = log_other.exp() * _phi(u).sum(dim=-1)
    u0 = log_score.gather(-1, x0[..., None]).squeeze(-1).float() + log_rho.float()  # log s_x0 - log(1 / rho)
    extra = torch.where(same, 0.0, (-log_rho).exp().float() * _phi(u0))
    return (main + extra) / n
