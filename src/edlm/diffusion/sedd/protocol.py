"""The score-model protocol (docs/contracts.md, Score model): recognising one, its graph and noise, calling it.

    score_model(xt: Long[B, L], sigma: Float[B]) -> Float[B, L, N]     # log concrete scores
    score_model.vocab_size == V;  score_model.graph in {"absorb", "uniform"};  optional score_model.noise

Entry [b, i, y] is log p_sigma(xt with position i set to y) / p_sigma(xt), sigma the total noise
sigma_bar(t); N = V + 1 for absorb (id V absorbing), N = V for uniform. The entry at y = xt^i is
ignored (the ratio is 1). Without `noise` the model is taken to use the log-linear noise with eps 1e-3.
"""

from __future__ import annotations

import torch

from edlm.diffusion.sedd.graphs import GRAPHS, Graph, make_graph
from edlm.diffusion.sedd.noise import LogLinearNoise
from edlm.errors import require


def is_score_model(model) -> bool:
    """True for a score model (it names its graph); denoisers and causal LMs have no `graph`."""
    return hasattr(model, "graph")


def score_model_parts(model) -> tuple[Graph, object]:
    """(graph, noise) of a score model, checked: `graph` is a graph name, `noise` has total and rate."""
    name = model.graph
    require(name in GRAPHS, f"the score model's graph={name!r} is unknown; use one of {sorted(GRAPHS)}.")
    require(hasattr(model, "vocab_size"), f"{type(model).__name__} has no vocab_size; a score model needs one.")
    noise = getattr(model, "noise", None) or LogLinearNoise()
    require(hasattr(noise, "total") and hasattr(noise, "rate"),
            f"the score model's noise {noise!r} has no total / rate; use an edlm.diffusion.sedd noise.")
    return make_graph(name, int(model.vocab_size)), noise


def log_scores(model, graph: Graph, xt: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """model(xt, sigma) with its shape checked: xt Long[B, L], sigma Float32[B] -> Float[B, L, N]."""
    out = model(xt, sigma)
    expected = (*xt.shape, graph.num_states)
    require(tuple(out.shape) == expected,
            f"the score model returned shape {tuple(out.shape)} for input {tuple(xt.shape)}; return log scores of "
            f"shape {expected} (N = {graph.num_states} states of the {graph.name} graph).")
    return out
