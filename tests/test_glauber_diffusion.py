"""Glauber diffusion (`edlm.glauber_diffusion`) on an enumerable toy (V = 3, L = 4: 81 sequences).

A data distribution and a *different* frozen model F (the exact conditionals of another random toy
distribution p_F) define the forward chain; `edlm.toy.glauber_marginals` gives its exact marginals
p_s = p_0 K_1 ... K_s, products of 81 x 81 heat-bath matrices (`edlm.toy.heat_bath_kernel`). The exact
reverse kernels R_s[x, y] = p_{s-1}(y_j | x_{-j}) (y = x off j = j_s) are built here by enumeration.

Tolerance (as tests/test_glauber.py): n i.i.d. draws from a law pi have an empirical TV to pi with mean
E_n(pi) (`ToyDistribution.expected_tv`, exact) and, by McDiarmid, exceed E_n(pi) + 3 / sqrt(n) with
probability below exp(-18). Every batch here is n independent chains, so the draws are i.i.d.
"""

from __future__ import annotations

import math

import pytest
import torch

import edlm
from edlm.errors import EdlmError
from edlm.toy import (ExactCausalLM, ExactDenoiser, ScheduledDenoiser, ToyDistribution, glauber_marginals,
                      heat_bath_kernel)
from edlm.util.device import cpu_threads

V, L, N = 3, 4, 20000
EPS = 3 / math.sqrt(N)
gd = edlm.glauber_diffusion


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with cpu_threads(1):
        yield


@pytest.fixture(scope="module")
def world():
    """(data, p_F, permutations of N = 2 rounds, exact marginals Float64[T + 1, 81])."""
    generator = torch.Generator().manual_seed(1)
    data = ToyDistribution.random(V, L, generator)
    frozen = ToyDistribution.random(V, L, generator)
    perms = gd.fixed_order(2, L)
    return data, frozen, perms, glauber_marginals(data, frozen, perms)


def tv(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p - q).abs().sum())


def reverse_kernel(dist_probs: torch.Tensor, seqs: torch.Tensor, sites: list[int]) -> torch.Tensor:
    """Float64[81, 81]: y_S drawn from the product over j in S of the marginals of `dist_probs` at j
    given x_{-S} (y = x off S). One site: the exact heat-bath step of `dist_probs`."""
    others = [i for i in range(L) if i not in sites]
    same_rest = (seqs[:, None, others] == seqs[None, :, others]).all(-1)  # [x, y]
    kernel = torch.ones((len(seqs), len(seqs)), dtype=torch.float64)
    for j in sites:
        # marginal of site j given x_{-S}: mass of z with z_{-S} = x_{-S} and z_j = y_j
        same_j = seqs[None, :, j] == seqs[:, None, j]  # [z, y]
        mass = (same_rest.double() * dist_probs[None]) @ same_j.double()  # [x, y]
        kernel = kernel * mass / (same_rest.double() * dist_probs[None]).sum(1, keepdim=True)
    return kernel * same_rest


def check_law(x: torch.Tensor, law: torch.Tensor, world_data: ToyDistribution) -> None:
    n = x.shape[0]
    assert world_data.tv(x, law) <= world_data.expected_tv(n, law) + 3 / math.sqrt(n)


# ---------------------------------------------------------------- forward
def test_heat_bath_kernel_keeps_the_other_sites_and_preserves_p_f(world):
    data, frozen, _, marginals = world
    for site in range(L):
        k = heat_bath_kernel(frozen, site)
        assert torch.allclose(k.sum(1), torch.ones(81, dtype=torch.float64))
        assert torch.allclose(frozen.probs @ k, frozen.probs, atol=1e-15)  # F's Gibbs step preserves p_F
    # p_s(x) = p_{s-1}(x_{-j}) F(x_j | x_{-j}): the site's old value is forgotten
    seqs, perms = data.sequences, world[2]
    j = int(perms[0, 0])
    others = [i for i in range(L) if i != j]
    rest = (seqs[:, None, others] == seqs[None, :, others]).all(-1).double()
    f_cond = frozen.probs / (rest @ frozen.probs)
    assert torch.allclose(marginals[1], (rest @ marginals[0]) * f_cond, atol=1e-15)


@pytest.mark.parametrize("steps", [1, 3, 5, 8])
def test_forward_law_matches_the_heat_bath_products(world, steps):
    data, frozen, perms, marginals = world
    x0 = data.sample(N, torch.Generator().manual_seed(10 + steps))
    xs = gd.forward(ExactDenoiser(frozen), x0, perms, generator=torch.Generator().manual_seed(steps), steps=steps)
    check_law(xs, marginals[steps], data)
    assert tv(marginals[steps], data.probs) > 10 * EPS  # the chain moved away from the data: the test can fail


def test_forward_changes_only_the_steps_sites_and_defaults_to_all_steps(world):
    data, frozen, perms, _ = world
    x0 = data.sample(2000, torch.Generator().manual_seed(0))
    first = gd.forward(ExactDenoiser(frozen), x0, perms, generator=torch.Generator().manual_seed(0), steps=1)
    changed = (first != x0).any(0)
    assert changed.tolist() == [i == int(perms[0, 0]) for i in range(L)]
    frozen_model = ExactDenoiser(frozen)
    a = gd.forward(frozen_model, x0, perms, generator=torch.Generator().manual_seed(3))
    b = gd.forward(ExactDenoiser(frozen), x0, perms, generator=torch.Generator().manual_seed(3), steps=perms.numel())
    assert torch.equal(a, b) and frozen_model.calls == perms.numel()  # one batched call per step
    assert torch.equal(gd.forward(frozen_model, x0, perms, steps=0), x0)


# ---------------------------------------------------------------- reverse
def exact_reverse_law(start: torch.Tensor, data, marginals, perms, block: int = 1) -> torch.Tensor:
    """The law after the reverse chain from `start` (Float64[81]) with the exact p_{s-1} model."""
    total = perms.numel()
    law = start
    for n in range(perms.shape[0], 0, -1):
        for top in range(L, 0, -block):
            steps = [(n - 1) * L + i for i in range(top, max(top - block, 0), -1)]
            sites = [int(perms[(s - 1) // L, (s - 1) % L]) for s in steps]
            law = law @ reverse_kernel(marginals[steps[0] - 1], data.sequences, sites)
    assert total == perms.numel()
    return law


def test_exact_reverse_from_p_T_reproduces_the_data(world):
    data, frozen, perms, marginals = world
    p_t = ToyDistribution(V, L, marginals[-1])
    assert torch.allclose(exact_reverse_law(marginals[-1], data, marginals, perms), data.probs, atol=1e-12)
    model = ScheduledDenoiser(marginals, V, L)
    x = gd.reverse(model, p_t.sample(N, torch.Generator().manual_seed(4)), perms,
                   generator=torch.Generator().manual_seed(5))
    check_law(x, data.probs, data)
    assert model.calls == perms.numel()
    assert tv(marginals[-1], data.probs) > 10 * EPS


def test_reverse_from_the_frozen_models_distribution_is_no_farther_than_tv_p_t_f(world):
    data, frozen, perms, marginals = world
    law = exact_reverse_law(frozen.probs, data, marginals, perms)
    assert tv(law, data.probs) <= tv(marginals[-1], frozen.probs) + 1e-12  # data processing
    x = gd.reverse(ScheduledDenoiser(marginals, V, L), frozen.sample(N, torch.Generator().manual_seed(6)), perms,
                   generator=torch.Generator().manual_seed(7))
    check_law(x, law, data)
    assert data.tv(x) <= tv(marginals[-1], frozen.probs) + data.expected_tv(N, law) + EPS


def test_block_reverse_draws_the_per_site_marginals_outside_the_block(world):
    data, frozen, perms, marginals = world
    model = ScheduledDenoiser(marginals, V, L)
    start = ToyDistribution(V, L, marginals[-1])
    x = gd.reverse(model, start.sample(N, torch.Generator().manual_seed(8)), perms, block=3,
                   generator=torch.Generator().manual_seed(9))
    law = exact_reverse_law(marginals[-1], data, marginals, perms, block=3)
    check_law(x, law, data)
    assert model.calls == 2 * perms.shape[0]  # groups of 3 and 1 per round of 4
    assert tv(law, data.probs) > 5 * EPS  # blocks are not the exact reverse


def test_clamped_sites_are_never_masked_or_updated(world):
    data, frozen, perms, marginals = world
    init = data.sample(500, torch.Generator().manual_seed(0))
    clamp = torch.tensor([True, False, True, False])
    seen = []

    def model(xt, t):
        seen.append(xt.clone())
        return torch.zeros((*xt.shape, V))

    model.vocab_size = V
    x = gd.reverse(model, init, perms, clamp=clamp, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x[:, clamp], init[:, clamp]) and not torch.equal(x, init)
    assert len(seen) == 4 and all(bool((xt[:, clamp] < V).all()) for xt in seen)  # clamped steps make no call
    rows = torch.zeros(500, L, dtype=torch.bool)
    rows[:250] = True
    y = gd.reverse(model, init, perms, clamp=rows, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y[:250], init[:250]) and not torch.equal(y[250:], init[250:])


def test_reverse_calls_the_model_with_the_masked_site_and_t_s_over_T(world):
    _, _, perms, _ = world
    calls = []

    def model(xt, t):
        calls.append(((xt == V).nonzero()[:, 1].unique().tolist(), t.tolist()))
        return torch.zeros((*xt.shape, V))

    model.vocab_size = V
    gd.reverse(model, torch.zeros(2, L, dtype=torch.long), perms)
    total = perms.numel()
    expected = [([int(perms[(s - 1) // L, (s - 1) % L])], [s / total] * 2) for s in range(total, 0, -1)]
    assert [(sites, [pytest.approx(v) for v in ts]) for sites, ts in calls] == expected


# ---------------------------------------------------------------- the bound
def test_bound_with_exact_conditionals_and_p_t_is_minus_log_p_on_every_chain(world):
    data, frozen, perms, marginals = world
    x0 = data.sequences[::7]
    result = gd.bound(ScheduledDenoiser(marginals, V, L), ExactDenoiser(frozen),
                      ExactCausalLM(ToyDistribution(V, L, marginals[-1])), x0, perms, num_chains=4,
                      generator=torch.Generator().manual_seed(0))
    assert result.kind == "upper_bound" and result.num_tokens == L
    assert torch.allclose(result.nats, data.nll(x0), atol=2e-6, rtol=0)  # float32 logits of F
    assert float(result.stderr.max()) < 1e-6  # zero variance: every path gives -log p(x0)


def test_bound_of_the_frozen_models_own_gibbs_reverse_is_minus_log_p_f(world):
    """Reverse = F's own conditionals and causal model = p_F: the generative model is p_F itself (the Gibbs
    chain is reversible), and again every chain gives exactly -log p_F(x0)."""
    data, frozen, perms, _ = world
    x0 = data.sequences[::9]
    result = gd.bound(ExactDenoiser(frozen), ExactDenoiser(frozen), ExactCausalLM(frozen), x0, perms, num_chains=3,
                      generator=torch.Generator().manual_seed(1))
    assert torch.allclose(result.nats, frozen.nll(x0), atol=2e-6, rtol=0)


def test_bound_of_an_inexact_model_matches_its_exact_expectation_and_bounds_its_nll(world):
    data, frozen, perms, marginals = world
    other = ToyDistribution.random(V, L, torch.Generator().manual_seed(99))
    wrong = glauber_marginals(other, frozen, perms)  # the reverse of another data distribution's chain
    model, lm_dist = ScheduledDenoiser(wrong, V, L), ToyDistribution.random(V, L, torch.Generator().manual_seed(98))
    x0 = data.sequences[[5, 40, 77]]
    chains = 4000
    result = gd.bound(model, ExactDenoiser(frozen), ExactCausalLM(lm_dist), x0, perms, num_chains=chains,
                      generator=torch.Generator().manual_seed(2))
    # exact expectation by enumeration over (x_{s-1}, x_s) pairs, and the model's exact NLL
    total, seqs = perms.numel(), data.sequences
    expected, model_law = [], lm_dist.probs
    kernels = []
    for s in range(1, total + 1):
        site = int(perms[(s - 1) // L, (s - 1) % L])
        kernels.append((heat_bath_kernel(frozen, site), reverse_kernel(wrong[s - 1], seqs, [site])))
    for s in range(total, 0, -1):
        model_law = model_law @ kernels[s - 1][1]
    for row in data.index(x0).tolist():
        law = torch.zeros(81, dtype=torch.float64)
        law[row] = 1.0
        value = 0.0
        for k_fwd, k_rev in kernels:
            pair = law[:, None] * k_fwd  # P(x_{s-1} = a, x_s = b)
            log_ratio = torch.where(pair > 0, k_fwd.log() - k_rev.T.log(), torch.zeros_like(pair))
            value += float((pair * log_ratio).sum())
            law = law @ k_fwd
        expected.append(value - float((law * lm_dist.probs.log()).sum()))
    expected = torch.tensor(expected, dtype=torch.float64)
    assert ((result.nats - expected).abs() <= 4 * result.stderr).all(), (result.nats, expected, result.stderr)
    assert (expected >= -model_law[data.index(x0)].log() - 1e-12).all()  # an upper bound on the model's NLL
    assert float(result.stderr.min()) > 0


# ---------------------------------------------------------------- errors
def test_bad_input_raises_edlm_error(world):
    data, frozen, perms, marginals = world
    f = ExactDenoiser(frozen)
    x = data.sequences[:2]
    cases = [
        (lambda: gd.forward(f, x, perms[:, :3]), "permutations has shape"),
        (lambda: gd.forward(f, x, torch.tensor([[0, 0, 1, 2]])), "not a permutation"),
        (lambda: gd.forward(f, x, perms, steps=9), "steps=9"),
        (lambda: gd.forward(f, x + 3, perms), "x0 holds ids outside"),
        (lambda: gd.forward(f, x.float(), perms), "x0 has shape"),
        (lambda: gd.forward(object(), x, perms), "is not a denoiser"),
        (lambda: gd.reverse(f, x, perms, block=0), "block=0"),
        (lambda: gd.reverse(f, x, perms, clamp=torch.ones(3, dtype=torch.bool)), "clamp has shape"),
        (lambda: gd.reverse(lambda xt, t: torch.zeros(2, L, 2), x, perms), "is not a denoiser"),
        (lambda: gd.bound(f, f, ExactCausalLM(frozen), x, perms, num_chains=1), "num_chains=1"),
        (lambda: gd.bound(f, f, f, x, perms), "is not a causal LM"),
        (lambda: gd.fixed_order(0, 4), "rounds=0"),
    ]
    for call, message in cases:
        with pytest.raises(EdlmError, match=message):
            call()

    class Wrong(ExactDenoiser):
        def __call__(self, xt, t):
            return super().__call__(xt, t)[..., :2]

    with pytest.raises(EdlmError, match="returned shape"):
        gd.reverse(Wrong(frozen), x, perms)


def test_fixed_order_is_fixed_and_nested():
    a, b = gd.fixed_order(3, 16), gd.fixed_order(1, 16)
    assert torch.equal(a[:1], b) and torch.equal(a, gd.fixed_order(3, 16))
    assert all(sorted(row.tolist()) == list(range(16)) for row in a)
