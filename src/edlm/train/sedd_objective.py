"""Score-entropy training (SEDD): `edlm train RECIPE train.objective=sedd train.graph=absorb train.noise=loglinear`.

The model is a `SEDDScoreModel` (`edlm.models.sedd`) with the run's graph and noise. One optimizer
step, for the global batch x0 (G rows):

- `prepare` (all randomness, from the step's generator): stratified times t in (t_min, 1]
  (`train.t_min`, as for MDLM; SEDD draws t ~ U(1e-3, 1)), the total noise sigma = sigma_bar(t) of
  `train.noise` rounded to float32 (the model's input), and xt ~ P_sigma[x0, .] of `train.graph`.
- `loss`: the diffusion-weighted denoising score entropy `sigma'(t) sum_i l(xt^i, x0^i)` per
  sequence (`edlm.diffusion.sedd.training_score_entropy`: float32 over [B, L, N], float64 only in
  the per-row ratios), averaged over the rows and divided by L: nats per token. Its expectation over
  t is the score-entropy bound on [sigma_bar(t_min), sigma_bar(1)] (docs/math.md, Score entropy),
  the part of `edlm.nelbo`'s bound that training covers.
"""

from __future__ import annotations

import torch
from torch import nn

from edlm.diffusion import antithetic_times
from edlm.diffusion.sedd import make_graph, make_noise, training_score_entropy
from edlm.train.objectives import init_weights_from, register_objective


@register_objective("sedd")
class SEDDObjective:
    """Score entropy with `train.graph` and `train.noise` (see the module doc)."""

    metric = "score_entropy"

    def __init__(self, cfg, model: nn.Module, device: torch.device) -> None:
        tc = cfg.train
        self.graph = make_graph(tc.graph, cfg.model.vocab_size)
        self.noise = make_noise(tc.noise, tc.eps)
        self.t_min = tc.t_min
        if tc.init_from:
            init_weights_from(model, tc.init_from)

    def prepare(self, x0: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """x0: Long[G, L] -> {"t": Float[G], "xt": Long[G, L]}."""
        t = antithetic_times(x0.shape[0], generator, device=x0.device, t_min=self.t_min)
        return {"t": t, "xt": self.graph.sample_transition(x0, self.noise.total(t).float(), generator)}

    def loss(self, model, x0: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        t, xt = batch["t"], batch["xt"]
        sigma = self.noise.total(t).float()
        entropy = training_score_entropy(self.graph, model(xt, sigma), xt, x0, sigma)
        return (self.noise.rate(t).float() * entropy.sum(dim=1)).mean() / x0.shape[1]
