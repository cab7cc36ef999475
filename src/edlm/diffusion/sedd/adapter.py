"""Masked diffusion denoisers and absorbing score models, each as the other (docs/math.md, SEDD and MDLM).

On the absorbing graph the concrete score of a masked position factorises exactly:
p_sigma(xt with i := v) / p_sigma(xt) = e^-sigma / (1 - e^-sigma) * p(x0^i = v | xt) for every data
id v, where p(x0^i | xt) is the posterior marginal a denoiser estimates. So

- `DenoiserScores(denoiser)`: any denoiser gives the log scores `log p(x0^i = v | xt) - log(e^sigma - 1)`
  at masked positions; with an exact denoiser they are the exact scores, and the score-entropy bound of
  the result is MDLM's bound.
- `ScoreDenoiser(score_model)`: any absorbing score model gives the denoiser logits
  `log s_v + log(e^sigma - 1)` (= log p(x0^i = v | xt) for exact scores) at masked positions, with the
  masking probability t = 1 - e^-sigma; so the MDLM / EDLM sampler and the EDLM likelihood estimators
  take a SEDD model as their proposal.

The two are inverse to each other at masked positions (up to the denoiser's normalisation).
"""

from __future__ import annotations

import torch

from edlm.diffusion.sedd.protocol import log_scores, score_model_parts
from edlm.errors import require
from edlm.util.numerics import log_expm1

T_MAX = 1.0 - 2.0 ** -24  # the largest float32 below 1: sigma = -log(1 - t) stays finite (about 16.6) at t = 1


class DenoiserScores:
    """Score-model protocol over a denoiser (docs/contracts.md): graph "absorb", N = V + 1.

    The denoiser is called at time `t = 1 - e^-sigma` (its masking probability, the convention of
    `edlm.nelbo` for denoisers). Log scores at visible positions and in the absorbing column are 0: an
    absorbing process never moves a visible token, so no loss term or sampler step reads them.
    `time_conditioned` is the denoiser's: a denoiser that ignores t gives scores whose only
    sigma-dependence is the factor 1 / (e^sigma - 1), which lets the SEDD sampler reuse its outputs.
    """

    graph = "absorb"

    def __init__(self, denoiser, noise=None) -> None:
        self.denoiser = denoiser
        self.vocab_size = denoiser.vocab_size
        self.time_conditioned = getattr(denoiser, "time_conditioned", True)
        if noise is not None:
            self.noise = noise

    def parameters(self):
        """The denoiser's parameters (none for a plain callable), so edlm finds its device."""
        return iter(()) if not hasattr(self.denoiser, "parameters") else self.denoiser.parameters()

    def __call__(self, xt: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """xt: Long[B, L] (absorbing id V), sigma: Float[B] -> log scores Float32[B, L, V + 1]."""
        sigma = sigma.double()
        logp = torch.log_softmax(self.denoiser(xt, (-torch.expm1(-sigma)).float()).double(), dim=-1)
        scores = logp - log_expm1(sigma)[:, None, None]
        masked = (xt == self.vocab_size)[..., None]
        out = torch.zeros((*xt.shape, self.vocab_size + 1), dtype=torch.float64, device=xt.device)
        out[..., :self.vocab_size] = torch.where(masked, scores, 0.0)
        return out.float()


class ScoreDenoiser:
    """Denoiser protocol over an absorbing score model (docs/contracts.md): `denoiser(xt, t)` -> logits
    Float32[B, L, V], mask id V.

    t is the masking probability; the score model is called at the total noise
    `sigma = -log(1 - t)` (t capped at T_MAX, so t = 1 gives sigma ~ 16.6, where a token is still
    visible with probability 6e-8), rounded to float32, and the logits are its log scores over the V
    data ids plus `log(e^sigma - 1)` of that same sigma. Logits at visible positions are those of the
    score model's visible rows (SUBS ignores them). `time_conditioned` is the score model's: False
    means the logits do not depend on t.
    """

    def __init__(self, score_model) -> None:
        graph, _ = score_model_parts(score_model)
        require(graph.absorbing, f"the score model's graph is {graph.name!r}; only an absorbing score model "
                "gives a masked diffusion denoiser (energy= and the EDLM estimators need graph 'absorb').")
        self.score_model = score_model
        self.score_graph = graph  # not `graph`: that would make the denoiser look like a score model
        self.vocab_size = graph.vocab_size
        self.mask_id = graph.mask_id
        self.time_conditioned = getattr(score_model, "time_conditioned", True)

    def parameters(self):
        """The score model's parameters (none for a plain callable), so edlm finds its device."""
        return iter(()) if not hasattr(self.score_model, "parameters") else self.score_model.parameters()

    def __call__(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """xt: Long[B, L] (mask id V); t: Float[B] in (0, 1] -> logits Float32[B, L, V]."""
        t = torch.as_tensor(t, device=xt.device).reshape(-1).expand(xt.shape[0])
        sigma = (-torch.log1p(-t.double().clamp(max=T_MAX))).float()
        scores = log_scores(self.score_model, self.score_graph, xt, sigma)[..., :self.vocab_size]
        return (scores.double() + log_expm1(sigma.double())[:, None, None]).float()
