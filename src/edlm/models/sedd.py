"""SEDD's score network on the shared backbone: the score-model protocol (docs/contracts.md, Score model).

    model(xt: Long[B, L], sigma: Float[B]) -> Float32[B, L, N]      # log concrete scores
    model.vocab_size == V;  model.graph in {"absorb", "uniform"};  model.noise

This is the DiT of SEDD (Lou et al. 2024, `model/transformer.py` in louaaron/Score-Entropy-Discrete-
Diffusion), the network MDLM's DiT was taken from: the backbone's blocks (adaLN, rotary, SDPA) with
its time embedding fed the total noise sigma itself (not a time t). With `model.time_conditioning`
false the embedding is fed 0, as for MDLM, and the network ignores sigma. Its output layer has one
row per state, N = V + 1 on the absorbing graph (id V is the absorbing state, the backbone's mask
input) and N = V on the uniform one; like SEDD's `DDitFinalLayer` it starts at zero. The outputs are
log scores with SEDD's conventions:

- `scale_by_sigma` (SEDD's default, absorbing graph only): the network's output h becomes
  `h - log(e^sigma - 1) - log(N - 1)`. The exact log scores at an absorbed position are
  `log p(x0^i = v | xt) - log(e^sigma - 1)` (docs/math.md, Score entropy), so h plays the part of
  the log-posterior (shifted by log(N - 1), SEDD's centring: a zero h gives the uniform posterior).
- the entry at y = xt is set to 0 (the ratio of a state to itself is 1).

So with `scale_by_sigma` and no time conditioning, the log scores at absorbed positions are
`g(xt) - log(e^sigma - 1)` with g free of sigma, and the model says `time_conditioned = False`,
which lets the SEDD sampler reuse an output while a sequence is unchanged.

`noise` (the edlm noise object of `edlm.diffusion.sedd.noise`) is attached by whoever builds the
model from a run config (`edlm.loading.pretrained.build_run_model`, the `sedd` objective, the hub
loader); a model built bare has None, which the score-model protocol reads as the log-linear noise
with eps 1e-3.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edlm.errors import require
from edlm.models.config import ModelConfig
from edlm.models.lms import BackboneModel
from edlm.util.numerics import log_expm1

GRAPHS = ("absorb", "uniform")  # the graph names `train.graph` takes (edlm.diffusion.sedd.graphs)
NOISES = ("loglinear", "geometric")  # the noise names `train.noise` takes (edlm.diffusion.sedd.noise)


class SEDDScoreModel(BackboneModel):
    """SEDD's score network (see the module doc). Parameters: those of the backbone, with
    `backbone.output.linear` of N rows (N = V + 1 on the absorbing graph, V on the uniform one); on
    the uniform graph embedding row V (the backbone's mask input) is never used."""

    def __init__(self, config: ModelConfig, graph: str = "absorb", scale_by_sigma: bool | None = None) -> None:
        require(not config.causal, "a SEDD score model is bidirectional; set model.causal=false.")
        require(graph in GRAPHS, f"graph={graph!r} is unknown; use one of {', '.join(GRAPHS)}.")
        scale_by_sigma = graph == "absorb" if scale_by_sigma is None else scale_by_sigma
        require(graph == "absorb" or not scale_by_sigma,
                "scale_by_sigma applies to the absorbing graph only (as in SEDD); drop it for the uniform graph.")
        super().__init__(config)
        self.graph = graph
        self.scale_by_sigma = scale_by_sigma
        self.noise = None
        self.num_states = config.vocab_size + (1 if graph == "absorb" else 0)
        self.backbone.output.linear = nn.Linear(config.d_model, self.num_states)
        nn.init.zeros_(self.backbone.output.linear.weight)
        nn.init.zeros_(self.backbone.output.linear.bias)

    @classmethod
    def from_train(cls, config: ModelConfig, train) -> "SEDDScoreModel":
        """The model a run trains: graph `train.graph` (a TrainConfig, or anything with `graph`)."""
        return cls(config, graph=train.graph)

    @property
    def time_conditioned(self) -> bool:
        """False when the log scores at absorbed positions are g(xt) - log(e^sigma - 1) with g free of
        sigma (module doc); the SEDD sampler then reuses outputs of unchanged sequences."""
        return not (self.graph == "absorb" and self.scale_by_sigma and not self.config.time_conditioning)

    def forward(self, xt: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """xt: Long[B, L] (absorbing id V); sigma: Float[B] total noise -> log scores Float32[B, L, N]."""
        sigma = torch.as_tensor(sigma, device=xt.device).reshape(-1).expand(xt.shape[0])
        out = self.backbone(xt, sigma.float()).float()
        if self.scale_by_sigma:
            shift = log_expm1(sigma.double()) + math.log(self.num_states - 1)
            out = out - shift.float()[:, None, None]
        return out.scatter_(-1, xt[..., None], 0.0)

    def extra_repr(self) -> str:
        c = self.config
        return (f"graph={self.graph}, vocab_size={c.vocab_size}, n_layers={c.n_layers}, d_model={c.d_model}, "
                f"scale_by_sigma={self.scale_by_sigma}, time_conditioning={c.time_conditioning}")
