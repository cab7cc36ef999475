"""Score-entropy discrete diffusion (SEDD) on enumerable toy worlds: closed forms against matrix
exponentials, the score-entropy bound against exact NLLs (by quadrature and by Monte Carlo), the
absorb / MDLM relation, convergence of both predictors, conditioning, forward calls and bad input."""

import itertools
import math

import numpy as np
import pytest
import torch

import edlm
from edlm.diffusion.sedd import (DenoiserScores, GeometricNoise, LogLinearNoise, dwdse, make_graph, score_entropy)
from edlm.errors import EdlmError
from edlm.likelihood.sedd import bound_noise
from edlm.toy import ExactDenoiser, ExactScoreModel, ToyDistribution, graph_rate_matrix

N = 4000  # samples per distribution check; the noise floor is ToyDistribution.expected_tv(N)
FLOOR = 1.75  # "at the noise floor": TV <= 1.75 E[TV] (about +4.5 standard deviations; tests/test_sampling_mdlm.py)
GRAPHS = ("absorb", "uniform")
SIGMAS = (1e-7, 0.03, 0.7, 4.0, 30.0)


@pytest.fixture(scope="module")
def toy():
    return ToyDistribution.random(3, 3, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", GRAPHS)
def test_closed_forms_equal_matrix_exponentials_of_the_rate_matrix(name):
    graph = make_graph(name, 4)
    rates = graph_rate_matrix(name, 4)
    n = graph.num_states
    states = torch.arange(n)
    assert torch.equal(graph.rate_matrix(), rates)
    off_diagonal = rates - torch.diag(torch.diag(rates))
    assert torch.equal(graph.rate_into(states), off_diagonal.T)  # row x: R[y, x] over y
    scores = torch.rand((n, n), generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.1
    for sigma in SIGMAS:
        p = torch.linalg.matrix_exp(sigma * rates)
        torch.testing.assert_close(graph.transition(states, sigma), p, rtol=1e-9, atol=1e-300)
        torch.testing.assert_close(graph.transition_into(states, sigma), p.T, rtol=1e-9, atol=1e-300)
        staggered = scores @ torch.linalg.matrix_exp(-sigma * rates)
        torch.testing.assert_close(graph.staggered(scores, sigma), staggered, rtol=1e-9,
                                   atol=1e-9 * staggered.abs().max())
        data = states[:graph.vocab_size]
        for x0, xt in itertools.product(data, states):
            if p[x0, xt] == 0:
                continue
            expected = p[x0].log() - p[x0, xt].log()
            torch.testing.assert_close(graph.log_ratio(xt, x0, sigma), expected, rtol=1e-9, atol=1e-9)
        if name == "uniform":
            kl = float((p[0] * (p[0] * n).log()).sum())
            assert graph.prior_kl(sigma) == pytest.approx(kl, rel=1e-6, abs=1e-13)  # the direct sum rounds off
    assert graph.prior_kl(math.inf) == 0.0


def test_noise_rates_are_derivatives_of_the_totals():
    t = torch.tensor([0.0, 0.1, 0.5, 0.9, 0.999], dtype=torch.float64)
    h = 1e-6
    for noise in (LogLinearNoise(), LogLinearNoise(eps=0.0), GeometricNoise(), GeometricNoise(1e-2, 3.0)):
        numeric = (noise.total(t + h) - noise.total(t - h)) / (2 * h)
        torch.testing.assert_close(noise.rate(t), numeric, rtol=1e-6, atol=0)
    assert float(LogLinearNoise().total(torch.zeros(1))) == 0.0
    assert float(LogLinearNoise(eps=1e-3).total(torch.ones(1))) == pytest.approx(-math.log(1e-3))
    assert float(GeometricNoise(1e-2, 3.0).total(torch.zeros(1))) == pytest.approx(1e-2)
    assert float(GeometricNoise(1e-2, 3.0).total(torch.ones(1))) == pytest.approx(3.0)


@pytest.mark.parametrize("name", GRAPHS)
def test_forward_draws_follow_the_transition_matrix(name):
    graph = make_graph(name, 3)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 3), 1)
    sigma = torch.full((20000,), 0.8)
    xt = graph.sample_transition(x0, sigma, g)
    freq = torch.bincount(xt.reshape(-1), minlength=graph.num_states).double() / xt.numel()
    expected = graph.transition(torch.tensor(1), 0.8)
    assert (freq - expected).abs().max() < 4 * math.sqrt(0.25 / xt.numel())


@pytest.mark.parametrize("name", GRAPHS)
def test_score_entropy_is_the_bregman_divergence_of_the_ratios(name):
    """0 at the exact conditional ratios, the textbook s - r log s + r (log r - 1) elsewhere."""
    graph = make_graph(name, 3)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(3, (64, 2), generator=g)
    sigma = torch.rand(64, generator=g, dtype=torch.float64) * 3 + 0.05
    xt = graph.sample_transition(x0, sigma, g)
    log_r = graph.log_ratio(xt, x0, sigma[:, None])
    assert score_entropy(graph, log_r, xt, x0, sigma).abs().max() < 1e-12
    log_s = torch.randn(log_r.shape, generator=g, dtype=torch.float64)
    s, r = log_s.exp(), log_r.exp()
    textbook = s - r * log_s + torch.where(r > 0, r * (log_r - 1), 0.0)
    expected = (graph.rate_into(xt) * textbook).sum(-1)
    torch.testing.assert_close(score_entropy(graph, log_s, xt, x0, sigma), expected, rtol=1e-10, atol=1e-12)


def exact_expected_bound(toy, model, sigma_max: float) -> torch.Tensor:
    """E[bound] with exact scores (docs/math.md, Score entropy): -log p(x0) - KL(P_max[x0] || p_max) + L prior."""
    graph = make_graph(model.graph, toy.vocab_size)
    nll = toy.nll(toy.sequences)
    if math.isinf(sigma_max):
        return nll
    states = torch.tensor(list(itertools.product(range(graph.num_states), repeat=toy.seq_len)))
    p = model.transitions(torch.tensor([sigma_max]))[0]
    given = p[toy.sequences[:, None, :], states[None]].prod(-1)  # [S, Z]: P_max(z | x0)
    kl = (given * (given.log() - model.marginal(sigma_max).log()[None])).sum(-1)
    return nll - kl + toy.seq_len * graph.prior_kl(sigma_max)


# A large eps and a small sigma_max leave the uniform graph's end terms visible (0.2 nats per token at eps = 0.5).
CASES = [("absorb", None), ("uniform", LogLinearNoise(eps=0.5)), ("uniform", GeometricNoise(1e-3, 3.0))]


@pytest.mark.parametrize("name,noise", CASES, ids=["absorb", "uniform-loglinear", "uniform-geometric"])
def test_bound_integral_equals_exact_nll_by_quadrature(toy, name, noise):
    """The time integral of E_xt[DWDSE] with exact scores, every xt enumerated, by Gauss-Legendre in t."""
    model = ExactScoreModel(toy, name, noise)
    graph, model_noise = make_graph(name, 3), noise or LogLinearNoise()
    integrate, sigma_max = bound_noise(graph, model_noise)
    states = torch.tensor(list(itertools.product(range(graph.num_states), repeat=toy.seq_len)))
    x0 = toy.sequences.repeat_interleave(len(states), dim=0)
    xt = states.repeat(len(toy.sequences), 1)
    nodes, weights = np.polynomial.legendre.leggauss(32)
    total = torch.zeros(len(toy.sequences), dtype=torch.float64)
    edges = (0.0, 1e-6, 1e-4, 1e-2, 1.0)  # panels refined towards t = 0, where the uniform integrand bends sharply
    for a, b in zip(edges[:-1], edges[1:]):
        for u, w in zip(nodes, weights):
            t = torch.tensor(a + (b - a) * 0.5 * (u + 1), dtype=torch.float64)
            sigma = integrate.total(t).float().expand(len(x0))
            prob = graph.transition(x0, sigma.double()[:, None]).gather(-1, xt[..., None]).squeeze(-1).prod(-1)
            entropy = score_entropy(graph, model(xt, sigma), xt, x0, sigma).sum(-1)
            per_x0 = (prob * entropy).view(len(toy.sequences), -1).sum(-1)
            total += 0.5 * (b - a) * w * float(integrate.rate(t)) * per_x0
    total += toy.seq_len * graph.prior_kl(sigma_max)
    expected = exact_expected_bound(toy, model, sigma_max)
    torch.testing.assert_close(total, expected, rtol=0, atol=1e-6)
    if name == "uniform":  # the end terms are visible: not -log p(x0) itself
        assert (expected - toy.nll(toy.sequences)).abs().max() > 1e-3


@pytest.mark.parametrize("name,noise", CASES, ids=["absorb", "uniform-loglinear", "uniform-geometric"])
def test_nelbo_of_exact_scores_equals_exact_nll_within_mc_error(toy, name, noise):
    model = ExactScoreModel(toy, name, noise)
    g = torch.Generator().manual_seed(0)
    rows = torch.randperm(len(toy.sequences), generator=g)[:6]
    result = edlm.nelbo(model, toy.sequences[rows], num_t=4000, generator=g)
    assert result.kind == "upper_bound" and result.num_tokens == 3 and result.num_t == 4000
    _, sigma_max = bound_noise(make_graph(name, 3), noise or LogLinearNoise())
    z = (result.nats - exact_expected_bound(toy, model, sigma_max)[rows]) / result.stderr
    assert z.abs().max() < 4.5, z  # six independent estimates, each within 4.5 standard errors


def test_denoiser_scores_are_the_exact_absorbing_scores(toy):
    """At absorbed positions e^-sigma / (1 - e^-sigma) p(x0^i = v | xt) is the exact concrete score."""
    g = torch.Generator().manual_seed(0)
    x0 = toy.sample(200, g)
    sigma = torch.rand(200, generator=g) * 5 + 1e-3
    xt = make_graph("absorb", 3).sample_transition(x0, sigma, g)
    derived = DenoiserScores(ExactDenoiser(toy))(xt, sigma)
    exact = ExactScoreModel(toy, "absorb")(xt, sigma)
    masked = xt == 3
    torch.testing.assert_close(derived[masked][:, :3], exact[masked][:, :3], rtol=1e-5, atol=1e-5)


def test_absorbing_bound_of_a_denoiser_is_its_mdlm_bound(toy):
    """Same generator, same times and masks: the score-entropy bound of DenoiserScores is edlm.nelbo of
    the denoiser itself, whatever the score model's noise (the absorbing bound spans sigma in [0, inf))."""
    x0 = toy.sequences[::3]
    mdlm = edlm.nelbo(ExactDenoiser(toy), x0, num_t=64, generator=torch.Generator().manual_seed(5))
    for noise in (None, GeometricNoise()):
        sedd = edlm.nelbo(DenoiserScores(ExactDenoiser(toy), noise), x0, num_t=64,
                          generator=torch.Generator().manual_seed(5))
        torch.testing.assert_close(sedd.nats, mdlm.nats, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(sedd.stderr, mdlm.stderr, rtol=1e-4, atol=1e-6)


class Flat:
    """A denoiser that predicts the uniform distribution everywhere."""

    vocab_size = 3

    def __call__(self, xt, t):
        return torch.zeros(*xt.shape, 3)


def test_dwdse_of_flat_scores_on_absorb_is_log_v_per_absorbed_token_over_t(toy):
    """Uniform absorbed scores pay log V per absorbed token, with weight sigma'(t) / (e^sigma - 1) = 1 / t."""
    graph = make_graph("absorb", 3)
    integrate, _ = bound_noise(graph, LogLinearNoise())
    t = torch.tensor([0.25, 0.5, 1.0 - 2.0 ** -24])
    x0 = toy.sequences[:3]
    values = dwdse(DenoiserScores(Flat()), graph, integrate, x0, t, torch.Generator().manual_seed(0))
    xt = graph.sample_transition(x0, integrate.total(t).float(), torch.Generator().manual_seed(0))
    expected = (xt == 3).sum(1) * math.log(3) / t.double()
    torch.testing.assert_close(values, expected, rtol=1e-5, atol=1e-6)


def product_of_marginals(toy):
    marginals = ExactDenoiser(toy)(torch.full((1, toy.seq_len), toy.vocab_size), torch.ones(1)).double().exp()[0]
    return marginals[torch.arange(toy.seq_len), toy.sequences].prod(dim=1)


SAMPLER_CASES = [("absorb", None, "analytic"), ("absorb", GeometricNoise(1e-3, 8.0), "euler"),
                 ("uniform", None, "analytic"), ("uniform", None, "euler"), ("uniform", GeometricNoise(), "analytic")]


@pytest.mark.parametrize("name,noise,predictor", SAMPLER_CASES,
                         ids=["absorb-analytic", "absorb-geometric-euler", "uniform-analytic", "uniform-euler",
                              "uniform-geometric-analytic"])
def test_samples_converge_to_the_data_as_steps_grow(toy, name, noise, predictor):
    model = ExactScoreModel(toy, name, noise)
    g = torch.Generator().manual_seed(1)
    tvs = {steps: toy.tv(edlm.sample(model, N, 3, steps, predictor=predictor, generator=g)) for steps in (2, 128)}
    assert tvs[2] > 2 * FLOOR * toy.expected_tv(N), tvs  # few steps: visibly off
    assert tvs[128] <= FLOOR * toy.expected_tv(N), (tvs, toy.expected_tv(N))


def test_one_absorbing_step_samples_the_product_of_marginals(toy):
    """One predictor step with exact scores reveals every position given nothing (probability ~1 - 1e-5),
    the denoising step the rest: each position from its marginal."""
    product = product_of_marginals(toy)
    x = edlm.sample(ExactScoreModel(toy, "absorb"), N, 3, 1, generator=torch.Generator().manual_seed(2))
    assert toy.tv(x, product) <= FLOOR * toy.expected_tv(N, product)


def test_euler_is_analytic_on_absorb_with_log_linear_noise(toy):
    """Both reveal an absorbed position with probability (t - s) / t given exact scores (MDLM's step)."""
    model = ExactScoreModel(toy, "absorb")
    runs = [edlm.sample(model, 500, 3, 7, predictor=p, generator=torch.Generator().manual_seed(3))
            for p in ("analytic", "euler")]
    assert torch.equal(*runs)


def test_prefix_and_clamp_condition_exactly_on_absorb(toy):
    model = ExactScoreModel(toy, "absorb")
    x = edlm.sample(model, N, 3, 64, prefix=[1], clamp=[-1, -1, 2], generator=torch.Generator().manual_seed(4))
    assert bool((x[:, 0] == 1).all() and (x[:, 2] == 2).all())
    keep = (toy.sequences[:, 0] == 1) & (toy.sequences[:, 2] == 2)
    target = torch.where(keep, toy.probs, 0.0)
    target = target / target.sum()
    assert toy.tv(x, target) <= FLOOR * toy.expected_tv(N, target)


class Timid(DenoiserScores):
    """Absorbed scores e^-3 times too small: the reverse process reveals too slowly."""

    def __call__(self, xt, sigma):
        return super().__call__(xt, sigma) - 3.0 * (xt == self.vocab_size)[..., None]


def test_denoising_step_reveals_every_position_even_for_inexact_scores():
    x, stats = edlm.sample(Timid(Flat()), 200, 4, 3, generator=torch.Generator().manual_seed(0), return_stats=True)
    assert int(x.max()) < 3 and bool((stats.revealed.sum(dim=1) == 4).all())
    assert int(stats.revealed[:, -1].sum()) > 200  # many positions were left for the denoising step


def test_uniform_graph_keeps_fixed_positions(toy):
    x = edlm.sample(ExactScoreModel(toy, "uniform"), 64, 3, 8, clamp=[[-1, 0, -1]] * 64,
                    generator=torch.Generator().manual_seed(4))
    assert bool((x[:, 1] == 0).all())


class Forgetful(ExactScoreModel):
    """The exact absorbing scores, declared sigma-dependent: the sampler may not reuse outputs."""

    def __init__(self, toy) -> None:
        super().__init__(toy, "absorb")
        self.time_conditioned = True


def test_reuse_on_absorb_saves_calls_and_changes_no_sample(toy):
    num, steps = 300, 50
    reused, stats = edlm.sample(ExactScoreModel(toy, "absorb"), num, 3, steps,
                                generator=torch.Generator().manual_seed(6), return_stats=True)
    fresh, fresh_stats = edlm.sample(Forgetful(toy), num, 3, steps, generator=torch.Generator().manual_seed(6),
                                     return_stats=True)
    assert torch.equal(reused, fresh)
    # Reuse: one evaluation per distinct xt with an absorbed position (at most 3 per sequence); without it every
    # sequence is evaluated at each step until its last absorbed position is revealed.
    assert stats.count("denoiser")[1] <= num * 3 < fresh_stats.count("denoiser")[1]
    assert fresh_stats.count("denoiser")[1] < num * (steps + 1)  # finished sequences are never evaluated
    assert stats.times.shape == (steps + 1,) and stats.revealed.shape == (num, steps + 1)
    assert bool((stats.revealed.sum(dim=1) == 3).all())  # each position revealed exactly once


def test_uniform_graph_evaluates_every_sequence_at_every_step(toy):
    _, stats = edlm.sample(ExactScoreModel(toy, "uniform"), 40, 3, 5, predictor="euler",
                           generator=torch.Generator().manual_seed(0), return_stats=True)
    assert stats.calls == [("denoiser", 40)] * 6


def test_batch_size_splits_into_chunks(toy):
    model = ExactScoreModel(toy, "uniform")
    whole = edlm.sample(model, 50, 3, 4, generator=torch.Generator().manual_seed(0))
    same = edlm.sample(model, 50, 3, 4, batch_size=50, generator=torch.Generator().manual_seed(0))
    x, stats = edlm.sample(model, 50, 3, 4, batch_size=16, generator=torch.Generator().manual_seed(0),
                           return_stats=True)
    assert torch.equal(whole, same) and x.shape == (50, 3)
    assert [rows for _, rows in stats.calls] == [16] * 5 + [16] * 5 + [16] * 5 + [2] * 5


def test_bad_input_raises_edlm_error(toy):
    model = ExactScoreModel(toy, "absorb")
    with pytest.raises(EdlmError, match="predictor"):
        edlm.sample(model, 4, 3, 2, predictor="heun")
    with pytest.raises(EdlmError, match="k, window apply to masked diffusion denoisers only"):
        edlm.sample(model, 4, 3, 2, k=2, window=0.5)
    with pytest.raises(EdlmError, match="predictor= applies to score models only"):
        edlm.sample(ExactDenoiser(toy), 4, 3, 2, predictor="euler")
    with pytest.raises(EdlmError, match="steps=0"):
        edlm.sample(model, 4, 3, 0)
    with pytest.raises(EdlmError, match="graph is 'uniform'; only an absorbing score model"):
        edlm.nelbo(ExactScoreModel(toy, "uniform"), toy.sequences[:2], energy=object())
    with pytest.raises(EdlmError, match="num_t=0"):
        edlm.nelbo(model, toy.sequences[:2], num_t=0)
    bad_graph = ExactScoreModel(toy, "absorb")
    bad_graph.graph = "masked"
    with pytest.raises(EdlmError, match="graph='masked' is unknown"):
        edlm.sample(bad_graph, 4, 3, 2)
    wrong_shape = DenoiserScores(Flat())
    wrong_shape.graph = "uniform"  # returns V + 1 = 4 columns where uniform has 3
    with pytest.raises(EdlmError, match="returned shape"):
        edlm.nelbo(wrong_shape, toy.sequences[:2], num_t=2)
    with pytest.raises(EdlmError, match="eps=1.0"):
        LogLinearNoise(eps=1.0)
    with pytest.raises(EdlmError, match="sigma_min"):
        GeometricNoise(1.0, 0.5)
    with pytest.raises(EdlmError, match="graph='absorbing' is unknown"):
        make_graph("absorbing", 3)


def test_a_network_runs_through_sampler_and_bound():
    """An edlm MaskedDiffusionLM wrapped as an absorbing score model: shapes, kinds and progress on a real module."""
    from edlm.models import MaskedDiffusionLM, ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=11, n_layers=1, d_model=16, n_heads=2, cond_dim=16, max_seq_len=8)
    model = DenoiserScores(MaskedDiffusionLM(cfg).eval())
    x = edlm.sample(model, 5, 8, 4, predictor="euler", prefix=[3, 4], batch_size=2, progress=True,
                    generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, 8) and int(x.max()) < 11 and bool((x[:, :2] == torch.tensor([3, 4])).all())
    result = edlm.nelbo(model, x, num_t=3, batch_size=4, progress=True, generator=torch.Generator().manual_seed(0))
    assert result.kind == "upper_bound" and bool(torch.isfinite(result.nats).all() and (result.nats > 0).all())
