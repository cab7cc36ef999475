"""Likelihood of sequences under a model: `edlm.nelbo` and whole-split BPC / PPL.

- A causal LM (anything with `token_logprobs`) gets its exact NLL, kind `"exact"`.
- A score model (it has `graph`) gets the score-entropy bound of `edlm.likelihood.sedd`, kind `"upper_bound"`;
  with an energy (absorbing graph only), the EDLM estimators over its denoiser (`ScoreDenoiser`).
- A denoiser gets the MDLM continuous-time NELBO, kind `"upper_bound"`:
  `NELBO(x0) = E_{t ~ U(0,1]} E_{xt ~ q(.|x0)} [ (1/t) sum_{i masked} -log mu^i(x0^i | xt) ]`
  with masking probability t (the log-linear schedule with alpha_1 = 0). The time integral does not
  depend on the schedule (substitute alpha for t), so this is the bound of every schedule with
  alpha_1 = 0. It is estimated by Monte Carlo with `num_t` antithetic times per sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from edlm.diffusion.process import forward_mask, masked_token_nll
from edlm.diffusion.schedules import LogLinearSchedule, antithetic_times
from edlm.diffusion.sedd.adapter import ScoreDenoiser
from edlm.diffusion.sedd.protocol import is_score_model
from edlm.errors import require
from edlm.likelihood.energy import energy_nelbo
from edlm.likelihood.result import NelboResult
from edlm.likelihood.sedd import sedd_nelbo
from edlm.util.device import module_device
from edlm.util.progress import progress_bar

@torch.no_grad()
def exact_ar_nll(lm, x0: torch.Tensor, batch_size: int | None = None, progress: bool = False) -> NelboResult:
    """Exact NLL (nats per sequence) of x0: Long[B, L] under a causal LM."""
    chunks = progress_bar(x0.split(batch_size or x0.shape[0]), enabled=progress, desc="nll", unit="batch")
    nats = torch.cat([-lm.token_logprobs(c).double().sum(dim=1) for c in chunks])
    return NelboResult(nats.cpu(), torch.zeros_like(nats).cpu(), "exact", x0.shape[1])


@torch.no_grad()
def mdlm_nelbo(denoiser, x0: torch.Tensor, num_t: int = 16, generator: torch.Generator | None = None,
               batch_size: int | None = None, progress: bool = False) -> NelboResult:
    """Monte Carlo MDLM NELBO of x0: Long[B, L] with `num_t` antithetic times per sequence."""
    require(num_t >= 1, f"num_t={num_t} must be at least 1.")
    b, length = x0.shape
    mask_id = denoiser.vocab_size
    schedule = LogLinearSchedule(eps=0.0)
    times = torch.stack([antithetic_times(num_t, generator) for _ in range(b)])  # [B, num_t]
    flat_x0 = x0.repeat_interleave(num_t, dim=0)
    flat_t = times.reshape(-1).to(x0.device)
    values = []
    step = batch_size or flat_x0.shape[0]
    chunks = progress_bar(list(zip(flat_x0.split(step), flat_t.split(step))), enabled=progress, desc="nll",
                          unit="batch")
    for x_chunk, t_chunk in chunks:
        xt = forward_mask(x_chunk, schedule.alpha(t_chunk), mask_id, generator)
        nll = masked_token_nll(denoiser(xt, t_chunk), x_chunk, xt, mask_id).double().sum(dim=1)
        values.append(nll / t_chunk.double())
    per_t = torch.cat(values).view(b, num_t).cpu()
    stderr = per_t.std(dim=1) / math.sqrt(num_t) if num_t > 1 else torch.full((b,), float("nan"), dtype=torch.float64)
    return NelboResult(per_t.mean(dim=1), stderr, "upper_bound", length, num_t)


def nelbo(model, x0: torch.Tensor, *, energy=None, num_t: int = 16, num_z: int = 16,
          generator: torch.Generator | None = None, batch_size: int | None = None,
          estimator: str = "marginal", num_positions: int = 1, progress: bool = False) -> NelboResult:
    """Negative log-likelihood numbers for x0: Long[B, L] (docs/contracts.md, edlm.nelbo).

    A causal LM (has `token_logprobs`) gives its exact NLL; a denoiser gives the MDLM NELBO upper
    bound. `energy`, `num_z`, `estimator` ("marginal" or "rao_blackwell", kind "estimate"; or
    "paper_eq13") and `num_positions` select the EDLM estimators of `edlm.likelihood.energy`; without
    an energy they are unused. progress:
    report the model calls done (`edlm.util.progress`).
    """
    require(x0.dim() == 2, f"x0 has shape {tuple(x0.shape)}; pass a LongTensor of shape [B, L].")
    vocab = model.vocab_size
    require(int(x0.min()) >= 0 and int(x0.max()) < vocab,
            f"x0 holds ids outside [0, {vocab}); pass data token ids of the model's vocabulary.")
    if is_score_model(model) and energy is not None:
        model = ScoreDenoiser(model)  # EDLM over the absorbing score model's denoiser (refuses the uniform graph)
    elif is_score_model(model):
        return sedd_nelbo(model, x0.to(module_device(model)), num_t=num_t, generator=generator, batch_size=batch_size,
                          progress=progress)
    if energy is not None:
        return energy_nelbo(model, x0, energy, num_t=num_t, num_z=num_z, generator=generator, batch_size=batch_size,
                            estimator=estimator, num_positions=num_positions, progress=progress)
    x0 = x0.to(module_device(model))
    if hasattr(model, "token_logprobs"):
        return exact_ar_nll(model, x0, batch_size, progress)
    return mdlm_nelbo(model, x0, num_t=num_t, generator=generator, batch_size=batch_size, progress=progress)


@dataclass
class SplitLikelihood:
    """Likelihood of a whole split. nats_per_token is the mean over every token of the split;
    bits_per_token = nats / ln 2 (BPC for a character tokenizer); ppl = exp(nats_per_token), the
    dataset-level perplexity. ppl_mean_of_sequences = the mean over sequences of exp(nats_s / L), the
    other order (exp, then mean), which SEDD's code reports (docs/pitfalls.md, item 10); it is never
    below ppl (Jensen) and only labelled as such."""

    nats_per_token: float
    stderr: float
    bits_per_token: float
    ppl: float
    kind: str
    num_sequences: int
    num_tokens: int
    num_t: int
    ppl_mean_of_sequences: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def summarize(results: list[NelboResult]) -> SplitLikelihood:
    """The `SplitLikelihood` of per-sequence results of equal kind (one `NelboResult` per chunk of a split)."""
    nats = torch.cat([r.nats for r in results])
    var = torch.cat([torch.nan_to_num(r.stderr) ** 2 for r in results])
    length = results[0].num_tokens
    tokens = nats.numel() * length
    per_token = float(nats.sum()) / tokens
    return SplitLikelihood(per_token, math.sqrt(float(var.sum())) / tokens, per_token / math.log(2),
                           math.exp(per_token), results[0].kind, nats.numel(), tokens, results[0].num_t,
                           float((nats / length).exp().mean()))


def split_likelihood(model, data: torch.Tensor, *, num_t: int = 16, batch_size: int = 32,
                     generator: torch.Generator | None = None, progress: bool = False) -> SplitLikelihood:
    """NLL per token over every sequence of `data`: Long[N, L], with the Monte Carlo standard error."""
    chunks = progress_bar(data.split(batch_size), enabled=progress, desc="nll", unit="batch")
    return summarize([nelbo(model, chunk, num_t=num_t, generator=generator, batch_size=batch_size * max(num_t, 1))
                      for chunk in chunks])
