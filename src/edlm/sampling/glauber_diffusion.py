"""Glauber diffusion: the heat-bath forward chain of a frozen model and its learned reverse
(`edlm.glauber_diffusion`; the derivations are in docs/glauber.md, Glauber diffusion).

State x in V^L; N rounds with fixed permutations pi_1..pi_N of the L positions (`permutations: Long[N, L]`);
T = N L steps. Forward step s = (n - 1) L + i (1-based) resamples site j_s = pi_n[i] from the heat-bath
conditional of a frozen denoiser F, `x_s[j] ~ F(. | x_{s-1, -j})`: F is called on x_{s-1} with site j
set to the mask id V, at t = 1, and its logits at j are the conditional. Every other site is kept.

The exact reverse of step s keeps x_{-j} and draws x_j from p_{s-1}(. | x_{-j}), the conditional of
the chain's marginal one step *earlier* (docs/pitfalls.md, item 11); `reverse` asks a model for it:
`model(x, t)` with site j_s masked and t = s / T, and draws site j_s from the logits there.

Draws are float64 inverse-CDF draws (`edlm.sampling.categorical.inverse_cdf`), one uniform per drawn
token. The forward chain takes its uniforms up front (`forward_steps`), so a training objective can
draw them for its global batch; `forward` draws them from `generator` as Float64[B, steps]. The reverse
draws Float64[B, g] per group of g sites, groups in reverse step order. Every model call is batched
over the B sequences: one call per step (per group of `block` steps in the reverse).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from edlm.errors import require
from edlm.sampling.categorical import inverse_cdf
from edlm.util.device import module_device, uniform

ORDER_SEED = 0  # seed of `fixed_order`, shared by training (train.objective=glauber) and sampling


def fixed_order(rounds: int, seq_len: int, seed: int = ORDER_SEED) -> torch.Tensor:
    """Long[rounds, seq_len]: the permutations pi_1..pi_N that edlm trains and samples with, each the
    argsort of seq_len float64 uniforms of a CPU generator seeded with `seed`, drawn round after round
    (so the first n rows do not depend on `rounds`)."""
    require(rounds >= 1 and seq_len >= 1, f"rounds={rounds} and seq_len={seq_len} must both be at least 1.")
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([torch.rand(seq_len, generator=generator, dtype=torch.float64).argsort()
                        for _ in range(rounds)])


def check_permutations(permutations, seq_len: int) -> torch.Tensor:
    """`permutations` as Long[N, L] after checking that every row is a permutation of 0..L-1."""
    perms = torch.as_tensor(permutations)
    require(not perms.is_floating_point() and perms.dim() == 2 and perms.shape[0] >= 1 and perms.shape[1] == seq_len,
            f"permutations has shape {tuple(perms.shape)} and dtype {perms.dtype}; pass Long[N, L] with N >= 1 "
            f"rounds and L = {seq_len} positions.")
    perms = perms.long().cpu()
    require(bool((perms.sort(dim=1).values == torch.arange(seq_len)).all()),
            "a row of permutations is not a permutation of 0..L-1; pass each position exactly once per round.")
    return perms


def step_site(permutations: torch.Tensor, s: int) -> int:
    """j_s, the site that step s (1-based) updates: pi_n[i] with s = (n - 1) L + i."""
    length = permutations.shape[1]
    return int(permutations[(s - 1) // length, (s - 1) % length])


def check_tokens(x, vocab: int, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    require(not x.is_floating_point() and x.dim() == 2, f"{name} has shape {tuple(x.shape)} and dtype {x.dtype}; "
            "pass token ids Long[B, L].")
    require(bool(((x >= 0) & (x < vocab)).all()), f"{name} holds ids outside [0, {vocab}); pass data token ids.")
    return x.long()


def infill_logits(model, xin: torch.Tensor, t: torch.Tensor, sites) -> torch.Tensor:
    """One call `model(xin, t)`; Float[B, g, V] logits at `sites` (a list of g column indices)."""
    logits = model(xin, t)
    require(tuple(logits.shape) == (*xin.shape, model.vocab_size),
            f"the model returned shape {tuple(logits.shape)} for input {tuple(xin.shape)}; return logits "
            f"[B, L, V] with V = vocab_size = {model.vocab_size}.")
    return logits[:, sites]


@dataclass
class ForwardStep:
    """One forward step s of a batch of B chains: site j_s, the masked input Long[B, L] (x_{s-1} with site
    j_s set to V, which is also x_s with it masked), F's log-conditional Float64[B, V] at that site, and
    the site's values before (x_{s-1, j}) and after (x_{s, j}) the step, Long[B] each."""

    s: int
    site: int
    masked: torch.Tensor
    log_f: torch.Tensor
    before: torch.Tensor
    after: torch.Tensor


def forward_steps(frozen, x0: torch.Tensor, permutations: torch.Tensor,
                  uniforms: torch.Tensor) -> Iterator[ForwardStep]:
    """The forward chain from x0 Long[B, L], one `ForwardStep` per step s = 1..S with S = uniforms.shape[1]
    (uniforms: Float64[B, S], column s - 1 draws step s). Arguments are checked by the callers."""
    b, length = x0.shape
    vocab = frozen.vocab_size
    x = x0.clone()
    ones = torch.ones(b, device=x.device)
    for s in range(1, uniforms.shape[1] + 1):
        site = step_site(permutations, s)
        masked = x.clone()
        masked[:, site] = vocab
        with torch.no_grad():
            logits = infill_logits(frozen, masked, ones, [site])[:, 0]
        log_f = torch.log_softmax(logits.double(), dim=-1)
        after = inverse_cdf(logits, uniforms[:, s - 1]).to(x.device)
        before = x[:, site].clone()
        x[:, site] = after
        yield ForwardStep(s, site, masked, log_f, before, after)


@torch.no_grad()
def forward(frozen, x0, permutations, generator: torch.Generator | None = None,
            steps: int | None = None) -> torch.Tensor:
    """x_S of the forward chain from x0: Long[B, L] -> Long[B, L] (module doc).

    frozen: a denoiser (`frozen(x Long[B, L], t Float[B]) -> Float[B, L, V]`, mask id V = vocab_size)
        whose logits at the one masked site are the heat-bath conditional; called at t = 1.
    permutations: Long[N, L], one permutation of the positions per round.
    steps: S in [0, N L] (default N L); generator: source of the Float64[B, S] uniforms (None: torch's global RNG).
    """
    require(callable(frozen) and hasattr(frozen, "vocab_size"),
            f"{type(frozen).__name__} is not a denoiser; pass a callable frozen(x, t) with vocab_size.")
    device = module_device(frozen)
    x0 = check_tokens(x0, frozen.vocab_size, "x0").to(device)
    perms = check_permutations(permutations, x0.shape[1])
    total = perms.numel()
    steps = total if steps is None else steps
    require(isinstance(steps, int) and 0 <= steps <= total,
            f"steps={steps} must be an integer in [0, N L] = [0, {total}].")
    x = x0.clone()
    for step in forward_steps(frozen, x0, perms, uniform((x0.shape[0], steps), generator, device)):
        x[:, step.site] = step.after
    return x


def _clamp_mask(clamp, shape) -> torch.Tensor:
    """Bool[B, L] of the never-updated positions from clamp: None, Bool[L] or Bool[B, L]."""
    if clamp is None:
        return torch.zeros(shape, dtype=torch.bool)
    clamp = torch.as_tensor(clamp)
    require(clamp.dtype == torch.bool and clamp.shape in (shape[1:], shape),
            f"clamp has shape {tuple(clamp.shape)} and dtype {clamp.dtype}; pass Bool[L] or Bool[B, L] "
            f"with L = {shape[1]} (True = never updated).")
    return clamp.cpu().expand(shape)


@torch.no_grad()
def reverse(model, init, permutations, generator: torch.Generator | None = None, block: int = 1,
            clamp=None) -> torch.Tensor:
    """The learned reverse chain from init: Long[B, L] -> Long[B, L] (module doc; Algorithm 2 of the
    Glauber-dynamics paper after its causal initialisation).

    model: a denoiser whose logits at a masked site at time t = s / T are the reverse conditional of step s.
    permutations: Long[N, L], the forward chain's. Steps run s = T..1, cut within each round into
    groups of `block` consecutive steps: per group the sites of its steps are masked together (clamped
    ones excepted), the model is called once at t = s_max / T (s_max the group's first, largest step),
    and each site is drawn from the logits there. block = 1 is the exact reverse step (given an exact
    model); block = m > 1 costs T / m calls and draws a group's sites from the per-site marginals given
    everything outside the group (m = 1 again when a round's length leaves a shorter last group).
    clamp: Bool[L] or Bool[B, L], positions never masked and never updated (a prompt, a puzzle's givens);
    they keep init's values. Groups whose sites are all clamped make no call.
    generator: source of the Float64[B, g] uniforms of each group (None: torch's global RNG).
    Returns the sequences on the model's device.
    """
    require(callable(model) and hasattr(model, "vocab_size"),
            f"{type(model).__name__} is not a denoiser; pass a callable model(x, t) with vocab_size.")
    require(isinstance(block, int) and block >= 1, f"block={block} must be an integer >= 1 (1 = one site per call).")
    device = module_device(model)
    x = check_tokens(init, model.vocab_size, "init").to(device).clone()
    perms = check_permutations(permutations, x.shape[1])
    rounds, length = perms.shape
    total = rounds * length
    free = ~_clamp_mask(clamp, tuple(x.shape)).to(device)
    for n in range(rounds, 0, -1):
        for top in range(length, 0, -block):
            steps = [(n - 1) * length + i for i in range(top, max(top - block, 0), -1)]
            sites = [step_site(perms, s) for s in steps]
            update = free[:, sites]  # Bool[B, g]
            if not bool(update.any()):
                continue
            xin = x.clone()
            xin[:, sites] = torch.where(update, torch.full_like(update, model.vocab_size, dtype=torch.long),
                                        x[:, sites])
            t = torch.full((x.shape[0],), steps[0] / total, device=device)
            logits = infill_logits(model, xin, t, sites)  # [B, g, V]
            u = uniform((x.shape[0], len(sites)), generator, device)
            drawn = inverse_cdf(logits.reshape(-1, logits.shape[-1]), u.reshape(-1)).view(u.shape).to(device)
            x[:, sites] = torch.where(update, drawn, x[:, sites])
    return x
