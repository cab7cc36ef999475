"""The score-entropy bound of a score model: `edlm.nelbo(score_model, x0)`, kind "upper_bound".

    -log p_theta(x0) <= int_0^{sigma_max} E_{xt ~ P_sigma[x0, .]} [ sum_i l_sigma(xt^i, x0^i) ] dsigma
                        + L * KL(P_{sigma_max}[x0^i, .] || pi)

with l the denoising score entropy (`edlm.diffusion.sedd.loss`) and pi the graph's limit (all
absorbed, or uniform). The integrand depends on sigma only, so the bound depends on the noise only
through the range [0, sigma_max], never on its shape (as MDLM's bound does not depend on its
schedule). The range is:

- absorb: [0, inf). At any finite sigma_max a token is still unabsorbed with probability
  e^-sigma_max while the sampler starts from all-absorbed, so the prior term is infinite; only the
  whole range gives a finite bound (prior term 0). As `edlm.nelbo` does for denoisers (alpha_1 = 0),
  the model is then also evaluated past its training noise, at sigma up to ~16.6.
- uniform: [0, sigma_bar(1)] of the model's noise, plus the prior term in closed form (about
  (N - 1) e^(-2 sigma_max) / 2 per token: 1.3e-5 nats for N = 27 and eps = 1e-3). The range starts
  at 0 even when the noise starts above it (geometric: sigma_min), so that the bound is on clean
  tokens; the model is then evaluated below sigma_min too.

Both are estimated with t ~ U(0, 1] under the log-linear change of variables
sigma = -log(1 - (1 - e^-sigma_max) t), weight sigma'(t), `num_t` antithetic times per sequence (on
the absorbing graph the same times and masks as `edlm.nelbo` draws for a denoiser under the same
generator). Times are capped at the largest float32 below 1 so that sigma stays finite. With the exact scores of the data the
expectation is `-log p(x0) - KL(P_{sigma_max}[x0] || p_{sigma_max}) + L * prior`, which is exactly
-log p(x0) for absorb (docs/math.md, Score entropy).
"""

from __future__ import annotations

import math

import torch

from edlm.diffusion.schedules import antithetic_times
from edlm.diffusion.sedd.adapter import T_MAX
from edlm.diffusion.sedd.loss import dwdse
from edlm.diffusion.sedd.noise import LogLinearNoise
from edlm.diffusion.sedd.protocol import score_model_parts
from edlm.errors import require
from edlm.likelihood.result import NelboResult
from edlm.util.progress import progress_bar


def bound_noise(graph, noise) -> tuple[LogLinearNoise, float]:
    """(the log-linear noise that spans the bound's range [0, sigma_max], sigma_max) for a score model's graph
    and noise: sigma_max = inf on the absorbing graph, the noise's sigma_bar(1) on the uniform one."""
    sigma_max = math.inf if graph.absorbing else float(noise.total(torch.ones(1)))
    require(sigma_max > 0, f"the score model's noise reaches total noise {sigma_max} at t = 1; it must be positive.")
    return LogLinearNoise(eps=math.exp(-sigma_max)), sigma_max


@torch.no_grad()
def sedd_nelbo(score_model, x0: torch.Tensor, num_t: int = 16, generator: torch.Generator | None = None,
               batch_size: int | None = None, progress: bool = False) -> NelboResult:
    """Monte Carlo score-entropy bound of x0: Long[B, L] (nats per sequence) with `num_t` antithetic times."""
    require(num_t >= 1, f"num_t={num_t} must be at least 1.")
    graph, noise = score_model_parts(score_model)
    integrate, sigma_max = bound_noise(graph, noise)
    b, length = x0.shape
    times = torch.stack([antithetic_times(num_t, generator) for _ in range(b)])  # [B, num_t]
    flat_x0 = x0.repeat_interleave(num_t, dim=0)
    flat_t = times.reshape(-1).clamp(max=T_MAX).to(x0.device)
    step = batch_size or flat_x0.shape[0]
    chunks = progress_bar(list(zip(flat_x0.split(step), flat_t.split(step))), enabled=progress, desc="nll",
                          unit="batch")
    per_t = torch.cat([dwdse(score_model, graph, integrate, x, t, generator) for x, t in chunks])
    per_t = per_t.view(b, num_t).cpu()
    stderr = per_t.std(dim=1) / math.sqrt(num_t) if num_t > 1 else torch.full((b,), float("nan"), dtype=torch.float64)
    return NelboResult(per_t.mean(dim=1) + length * graph.prior_kl(sigma_max), stderr, "upper_bound", length, num_t)
