"""EDLM with an absorbing SEDD score model as the proposal: `ScoreDenoiser` turns the scores of masked
positions into the factorised denoiser p(x0^i | xt) = (e^sigma - 1) s_i, exactly for exact scores, so the
EDLM sampler and likelihood estimators run on a score model (`edlm.sample` / `edlm.nelbo` with energy=)."""

import pytest
import torch

import edlm
from edlm.diffusion.sedd import DenoiserScores, ScoreDenoiser
from edlm.energy import AREnergy
from edlm.errors import EdlmError
from edlm.toy import ExactCausalLM, ExactDenoiser, ExactScoreModel, FactorisedDenoiser, ToyDistribution

N = 4000
FLOOR = 1.75  # TV <= 1.75 E[TV of N exact draws] (tests/test_sampling_mdlm.py)


@pytest.fixture(scope="module")
def toy():
    return ToyDistribution.random(3, 3, torch.Generator().manual_seed(0))


def masked_inputs(toy, n=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = toy.sample(n, gen)
    return torch.where(torch.rand(x.shape, generator=gen) < 0.6, toy.vocab_size, x)


def test_exact_scores_give_the_exact_denoiser(toy):
    xt = masked_inputs(toy)
    masked = xt == toy.vocab_size
    denoiser = ScoreDenoiser(ExactScoreModel(toy, "absorb"))
    assert (denoiser.vocab_size, denoiser.mask_id, denoiser.time_conditioned) == (3, 3, False)
    exact = ExactDenoiser(toy)(xt, torch.ones(64)).double()
    for t in (1e-3, 0.3, 0.9, 1.0):
        logits = denoiser(xt, torch.full((64,), t))
        assert logits.shape == (64, 3, 3)
        # the logits are the log-marginals themselves (normalised), not only up to a constant
        torch.testing.assert_close(logits.double()[masked], exact[masked], rtol=0, atol=1e-5)


def test_score_denoiser_inverts_denoiser_scores(toy):
    proposal = FactorisedDenoiser(toy)
    wrapped = ScoreDenoiser(DenoiserScores(proposal))
    xt = masked_inputs(toy, seed=1)
    masked = xt == toy.vocab_size
    expected = torch.log_softmax(proposal(xt, torch.ones(64)).double(), -1)
    torch.testing.assert_close(wrapped(xt, torch.full((64,), 0.5)).double()[masked], expected[masked],
                               rtol=0, atol=1e-5)


def test_edlm_on_a_score_proposal_reaches_the_data(toy):
    """A poor factorised proposal, seen as an absorbing score model, corrected by the exact AR energy:
    every step's kernel is the exact posterior as k grows, so the output is the toy distribution."""
    energy = AREnergy(ExactCausalLM(toy))
    proposal = DenoiserScores(FactorisedDenoiser(toy))  # a score model (graph "absorb")
    plain = edlm.sample(ScoreDenoiser(proposal), N, 3, 3, generator=torch.Generator().manual_seed(2))
    x, stats = edlm.sample(proposal, N, 3, 3, energy=energy, k=64, window=1.0, return_stats=True,
                           generator=torch.Generator().manual_seed(2))
    floor = toy.expected_tv(N)
    assert toy.tv(plain) > 5 * floor  # without the energy the proposal is far off
    assert toy.tv(x) <= FLOOR * floor and stats.count("energy")[0] >= 1
    exact = edlm.sample(ExactScoreModel(toy, "absorb"), N, 3, 3, energy=energy, k=4, window=1.0,
                        generator=torch.Generator().manual_seed(3))
    assert toy.tv(exact) <= FLOOR * floor


def test_edlm_likelihood_on_a_score_model_is_the_denoisers(toy):
    """The same estimator and random numbers on the wrapped exact score model and on the exact denoiser."""
    energy = AREnergy(ExactCausalLM(toy))
    x0 = toy.sequences[:6]
    for estimator in ("marginal", "rao_blackwell"):
        on_scores = edlm.nelbo(ExactScoreModel(toy, "absorb"), x0, energy=energy, num_t=4, num_z=4,
                               estimator=estimator, generator=torch.Generator().manual_seed(0))
        on_denoiser = edlm.nelbo(ExactDenoiser(toy), x0, energy=energy, num_t=4, num_z=4, estimator=estimator,
                                 generator=torch.Generator().manual_seed(0))
        assert on_scores.kind == on_denoiser.kind == "estimate"
        torch.testing.assert_close(on_scores.nats, on_denoiser.nats, rtol=1e-5, atol=1e-5)


def test_score_model_options_are_checked(toy):
    model = ExactScoreModel(toy, "absorb")
    energy = AREnergy(ExactCausalLM(toy))
    with pytest.raises(EdlmError, match="predictor= selects a SEDD sampler"):
        edlm.sample(model, 4, 3, 2, energy=energy, k=2, window=1.0, predictor="euler")
    with pytest.raises(EdlmError, match="graph is 'uniform'; only an absorbing score model"):
        edlm.sample(ExactScoreModel(toy, "uniform"), 4, 3, 2, energy=energy, k=2, window=1.0)
    assert edlm.sample(model, 4, 3, 2, energy=None, generator=torch.Generator().manual_seed(0)).shape == (4, 3)
