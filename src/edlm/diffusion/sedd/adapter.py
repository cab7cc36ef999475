"""A masked diffusion denoiser as an absorbing score model (docs/math.md, SEDD and MDLM).

On the absorbing graph the concrete score of a masked position factorises exactly:
p_sigma(xt with i := v) / p_sigma(xt) = e^-sigma / (1 - e^-sigma) * p(x0^i = v | xt) for every data
id v, where p(x0^i | xt) is the posterior marginal a denoiser estimates. So any denoiser gives the log
scores `log p(x0^i = v | xt) - log(e^sigma - 1)` at masked positions; with an exact denoiser they are
the exact scores, and the score-entropy bound of the result is MDLM's bound.
"""

from __future__ import annotations

import torch

from edlm.diffusion.sedd.graphs import log_expm1


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
