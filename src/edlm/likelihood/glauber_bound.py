"""The likelihood bound of a Glauber diffusion model (`edlm.glauber_diffusion.bound`), kind "upper_bound".

The generative model is a causal model p_causal for x_T followed by the learned reverse steps s = T..1,
each keeping x_{-j} and drawing x_{s-1, j} ~ q_theta(. | x_{s, -j}, s) (j = j_s). The forward chain q
(`edlm.sampling.glauber_diffusion`) is the variational posterior, so by Jensen

    -log p_theta(x0) <= E_q[ -log p_causal(x_T) - sum_s ( log q_theta(x_{s-1,j} | x_{s,-j}, s)
                                                       - log F(x_{s,j} | x_{s-1,-j}) ) ].

The gap is KL(q(x_{1:T} | x0) || p_theta(x_{1:T} | x0)). With the exact reverse conditionals
q_theta = p_{s-1}(. | x_{-j}) and p_causal = p_T, p_theta(x_{0:T}) = q(x_{0:T}) for every path, so
the integrand equals -log p_data(x0) on *every* chain: the bound is tight with zero variance
(docs/glauber.md, Glauber diffusion). Estimated with `num_chains` independent chains per sequence;
per step one frozen call (the chain) and one model call on the same masked input, batched over
all B * num_chains chains; everything is accumulated in float64.
"""

from __future__ import annotations

import math

import torch

from edlm.errors import require
from edlm.likelihood.result import NelboResult
from edlm.sampling.glauber_diffusion import check_tokens, check_permutations, forward_steps, infill_logits
from edlm.util.device import module_device, uniform


@torch.no_grad()
def glauber_bound(model, frozen, lm, x0, permutations, num_chains: int = 8,
                  generator: torch.Generator | None = None) -> NelboResult:
    """Monte Carlo upper bound on -log p(x0) in nats per sequence (module doc).

    model: the reverse model (a denoiser, called at t = s / T with site j_s masked); frozen: the forward
    chain's heat-bath denoiser (called at t = 1); lm: the causal LM of x_T (`token_logprobs`); all three
    with one vocabulary. x0: Long[B, L]; permutations: Long[N, L]. num_chains >= 2 chains per sequence
    give `nats` (their mean) and `stderr` (their standard deviation / sqrt(num_chains)).
    generator: source of the chains' Float64[B * num_chains, T] uniforms, row b * num_chains + c.
    """
    for name, obj in (("model", model), ("frozen", frozen)):
        require(callable(obj) and hasattr(obj, "vocab_size"),
                f"{name} ({type(obj).__name__}) is not a denoiser; pass a callable {name}(x, t) with vocab_size.")
    require(hasattr(lm, "token_logprobs") and hasattr(lm, "vocab_size"),
            f"lm ({type(lm).__name__}) is not a causal LM; pass an object with token_logprobs(x) and vocab_size.")
    require(model.vocab_size == frozen.vocab_size == lm.vocab_size,
            f"model, frozen and lm have vocab_size {model.vocab_size}, {frozen.vocab_size} and {lm.vocab_size}; "
            "use one vocabulary for all three.")
    require(isinstance(num_chains, int) and num_chains >= 2,
            f"num_chains={num_chains} must be an integer >= 2 (the standard error needs two chains).")
    device = module_device(frozen)
    x0 = check_tokens(x0, frozen.vocab_size, "x0").to(device)
    b, length = x0.shape
    perms = check_permutations(permutations, length)
    total = perms.numel()
    chains = x0.repeat_interleave(num_chains, dim=0)
    x = chains.clone()
    log_f = torch.zeros(chains.shape[0], dtype=torch.float64, device=device)
    log_q = torch.zeros_like(log_f)
    for step in forward_steps(frozen, chains, perms, uniform((chains.shape[0], total), generator, device)):
        t = torch.full((chains.shape[0],), step.s / total, device=device)
        log_qs = torch.log_softmax(infill_logits(model, step.masked, t, [step.site])[:, 0].double(), dim=-1)
        log_q += log_qs.gather(1, step.before.to(log_qs.device)[:, None]).squeeze(1).to(device)
        log_f += step.log_f.gather(1, step.after[:, None]).squeeze(1)
        x[:, step.site] = step.after
    log_causal = lm.token_logprobs(x).double().sum(1).to(device)
    values = (log_f - log_q - log_causal).view(b, num_chains)
    return NelboResult(values.mean(1).cpu(), (values.std(1) / math.sqrt(num_chains)).cpu(), "upper_bound", length)
