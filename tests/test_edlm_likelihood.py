"""Likelihood with an energy: the paper's eq. 12-13, the per-token-marginal estimate, Theorem 1's log Z."""

import math

import pytest
import torch

import edlm
from edlm.energy import AREnergy
from edlm.likelihood.energy import log_z_high, log_z_low
from edlm.sampling import draw_candidates
from edlm.toy import ExactCausalLM, ExactDenoiser, FactorisedDenoiser, ToyDistribution

LOG2 = math.log(2)


@pytest.fixture(scope="module")
def bits():
    """Two perfectly correlated fair bits: 00 and 11 with probability 1/2 each; NLL = log 2."""
    return ToyDistribution(2, 2, torch.tensor([0.5, 0.0, 0.0, 0.5]))


def test_correlated_bits_paper_eq13_is_half_log2_and_never_a_bound(bits):
    x0 = torch.tensor([[0, 0], [1, 1]])
    den, energy = ExactDenoiser(bits), AREnergy(ExactCausalLM(bits))
    g = torch.Generator().manual_seed(0)
    paper = edlm.nelbo(den, x0, energy=energy, num_t=2000, num_z=64, generator=g, estimator="paper_eq13",
                       batch_size=1000)
    assert paper.kind == "paper_eq13"
    # E_t[(1/t) t^2 log 2] = 0.5 log 2; the high log Z estimator adds a small positive bias (~0.004 nats)
    assert torch.all((paper.nats - 0.5 * LOG2).abs() < 4 * paper.stderr + 0.01), paper.nats / LOG2
    assert torch.all(paper.nats < 0.75 * LOG2)  # clearly below the true NLL log 2
    marginal = edlm.nelbo(den, x0, energy=energy, num_t=2000, num_z=64, generator=g, batch_size=1000)
    assert marginal.kind == "estimate"  # the default estimator; never labelled a bound either
    assert torch.all((marginal.nats - LOG2).abs() < 4 * marginal.stderr + 0.01), marginal.nats / LOG2


def test_carry_over_paper_eq13_is_the_ar_nll():
    toy = ToyDistribution.random(3, 4, torch.Generator().manual_seed(0))
    lm = ExactCausalLM(toy)
    x0 = toy.sample(3, torch.Generator().manual_seed(1))
    result = edlm.nelbo(FactorisedDenoiser(toy), x0, energy=AREnergy(lm, carry_over=True), num_t=4000, num_z=2,
                        estimator="paper_eq13", generator=torch.Generator().manual_seed(2), batch_size=4000)
    exact = edlm.nelbo(lm, x0).nats
    assert result.kind == "paper_eq13"
    assert torch.all((result.nats - exact).abs() < 4 * result.stderr), (result.nats, exact, result.stderr)


def test_marginal_estimate_matches_the_exact_nll():
    """Exact AR energy: the corrected kernel is the true posterior, whose per-token-marginal NELBO is
    the exact NLL; the estimate is conservative, so it may sit slightly above."""
    toy = ToyDistribution.random(3, 3, torch.Generator().manual_seed(3))
    x0 = toy.sample(2, torch.Generator().manual_seed(4))
    result = edlm.nelbo(FactorisedDenoiser(toy), x0, energy=AREnergy(ExactCausalLM(toy)), num_t=1500, num_z=32,
                        generator=torch.Generator().manual_seed(5), batch_size=1500)
    exact = toy.nll(x0)
    assert result.kind == "estimate"
    assert torch.all((result.nats - exact).abs() < 4 * result.stderr + 0.02), (result.nats, exact, result.stderr)


def test_theorem1_estimators_bracket_log_z_lognormal():
    """a ~ N(0, 1): Z = E[exp(a)] = e^{1/2}. Over many repeats the low estimator averages below
    log Z = 0.5 and the high one above (biases ~ -/+ (e - 1) / (2n) = 0.0086 at n = 100)."""
    a = torch.randn(20000, 100, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    low, high = log_z_low(a), log_z_high(a)
    se = max(float(low.std()), float(high.std())) / math.sqrt(a.shape[0])
    assert float(low.mean()) < 0.5 - 3 * se
    assert float(high.mean()) > 0.5 + 3 * se
    assert float(high.mean() - low.mean()) < 0.05


def test_theorem1_estimators_bracket_exact_log_z_on_a_toy():
    """Proposal draws at one partially masked xt; exact log Z = log p_AR(visible tokens)."""
    toy = ToyDistribution.random(3, 4, torch.Generator().manual_seed(6))
    proposal = FactorisedDenoiser(toy, torch.zeros(4, 3))
    energy = AREnergy(ExactCausalLM(toy))
    x0 = toy.sequences[int(toy.probs.argmax())]
    xt = torch.where(torch.tensor([True, False, True, True]), 3, x0)
    reps, n = 2000, 16
    logits = proposal(xt.expand(reps, -1), torch.ones(reps))
    cand, logp = draw_candidates(logits, xt.expand(reps, -1), 3, n, torch.Generator().manual_seed(7))
    e = energy(cand.view(-1, 4), xt.expand(reps * n, -1), torch.ones(reps * n), logp.view(-1)).view(reps, n)
    exact = math.log(float(toy.probs[toy.sequences[:, 1] == x0[1]].sum()))
    low, high = log_z_low(-e), log_z_high(-e)
    se = max(float(low.std()), float(high.std())) / math.sqrt(reps)
    assert float(low.mean()) < exact < float(high.mean())
    assert float(high.mean()) - exact < 10 * se + 0.05 and exact - float(low.mean()) < 10 * se + 0.05


def test_log_z_high_is_stable_with_one_dominant_draw():
    a = torch.tensor([[0.0, -800.0, -801.0, -799.5], [1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    n = a.shape[1]
    loo = torch.stack([torch.logsumexp(a[:, [i for i in range(n) if i != j]], 1) for j in range(n)], 1)
    brute = (2 * n - 1) * log_z_low(a) - 2 * (n - 1) * (loo - math.log(n - 1)).mean(1)
    assert torch.allclose(log_z_high(a), brute, rtol=1e-12, atol=1e-9)
    assert torch.isinf(log_z_high(torch.tensor([[0.0, float("-inf"), float("-inf")]]))).all()


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_z=1), "num_z=1"),
    (dict(estimator="joint"), "estimator='joint'"),
    (dict(num_t=0), "num_t=0"),
])
def test_bad_arguments_raise(bits, kwargs, match):
    x0 = torch.tensor([[0, 0]])
    with pytest.raises(edlm.EdlmError, match=match):
        edlm.nelbo(ExactDenoiser(bits), x0, energy=AREnergy(ExactCausalLM(bits)), **kwargs)


def test_model_and_energy_must_fit(bits):
    x0 = torch.tensor([[0, 0]])
    with pytest.raises(edlm.EdlmError, match="is a causal LM"):
        edlm.nelbo(ExactCausalLM(bits), x0, energy=AREnergy(ExactCausalLM(bits)))
    other = ToyDistribution.random(3, 2, torch.Generator().manual_seed(0))
    with pytest.raises(edlm.EdlmError, match="vocab_size=3 but the denoiser has vocab_size=2"):
        edlm.nelbo(ExactDenoiser(bits), x0, energy=AREnergy(ExactCausalLM(other)))
