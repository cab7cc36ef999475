"""Glauber diffusion's likelihood bound over a whole split (`edlm eval nll` on a Glauber-trained model).

The bound of `edlm.likelihood.glauber_bound` for every sequence of the split, with the permutations the
model was trained and is sampled with (`fixed_order(rounds, L)`), summarised as for every other model
(`edlm.likelihood.nelbo.summarize`): nats per token over all tokens, its standard error over the forward
chains, bits per token and both perplexity orders. Kind "upper_bound".
"""

from __future__ import annotations

import torch

from edlm.likelihood.glauber_bound import glauber_bound
from edlm.likelihood.nelbo import SplitLikelihood, summarize
from edlm.sampling.glauber_diffusion import fixed_order
from edlm.util.progress import progress_bar


def glauber_split_likelihood(model, data: torch.Tensor, *, rounds: int, frozen=None, lm=None, num_chains: int = 8,
                             batch_size: int = 32, generator: torch.Generator | None = None,
                             progress: bool = False) -> SplitLikelihood:
    """The Glauber diffusion bound of every sequence of `data`: Long[N, L], summarised per token (nats).

    model: the reverse model (a denoiser: the UL2-style model's infill mode); frozen: the forward chain's
    heat-bath model F (default `model`); lm: the causal model of x_T (default `model`, whose causal mode it
    is). rounds: N, so the chain has N L steps over `fixed_order(N, L)`. num_chains >= 2 forward chains per
    sequence; batch_size sequences per call (batch_size * num_chains rows). generator: the chains' uniforms.
    """
    perms = fixed_order(rounds, data.shape[1])
    frozen = model if frozen is None else frozen
    lm = model if lm is None else lm
    chunks = progress_bar(data.split(batch_size), enabled=progress, desc="glauber bound", unit="batch")
    return summarize([glauber_bound(model, frozen, lm, chunk, perms, num_chains=num_chains, generator=generator)
                      for chunk in chunks])
