"""`edlm.glauber_diffusion`: Glauber diffusion, a diffusion model whose forward process is the heat-bath
(Glauber) chain of a frozen model (contract: docs/contracts.md; derivations: docs/glauber.md, Glauber diffusion).

- `forward(frozen, x0, permutations, generator=None, steps=None) -> Long[B, L]`: the forward chain.
- `reverse(model, init, permutations, generator=None, block=1, clamp=None) -> Long[B, L]`: the learned reverse.
- `bound(model, frozen, lm, x0, permutations, num_chains=8, generator=None) -> NelboResult`: the
  likelihood bound along forward chains, kind "upper_bound".
- `fixed_order(rounds, seq_len)`: the permutations edlm's training (`train.objective=glauber`) and
  `edlm sample --sampler glauber-diffusion` use.
"""

from edlm.likelihood.glauber_bound import glauber_bound as bound
from edlm.sampling.glauber_diffusion import fixed_order, forward, reverse

__all__ = ["bound", "fixed_order", "forward", "reverse"]
