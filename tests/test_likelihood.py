"""Known answers for the MDLM objective and `edlm.nelbo` on enumerable toy distributions."""

import math

import pytest
import torch

import edlm
from edlm.diffusion import CosineSchedule, LogLinearSchedule, antithetic_times, forward_mask, mdlm_loss, subs_logprobs, unmask_step
from edlm.errors import EdlmError
from edlm.likelihood.nelbo import split_likelihood
from edlm.toy import ExactCausalLM, ExactDenoiser, ToyDistribution


@pytest.fixture
def toy():
    return ToyDistribution.random(3, 4, torch.Generator().manual_seed(1), temperature=1.5)


def test_nelbo_of_exact_posterior_equals_exact_nll(toy):
    g = torch.Generator().manual_seed(0)
    x0 = toy.sample(6, g)
    result = edlm.nelbo(ExactDenoiser(toy), x0, num_t=4000, generator=g)
    assert result.kind == "upper_bound" and result.num_tokens == 4
    z = (result.nats - toy.nll(x0)) / result.stderr
    assert z.abs().max() < 4.5, z  # six independent estimates, each within 4.5 standard errors


def test_nelbo_of_uniform_denoiser_is_log_v_per_token(toy):
    """A uniform denoiser pays log V for every token, whatever the data: E_t[(1/t) Bin(L, t)] = L."""

    class Uniform:
        vocab_size = 3

        def __call__(self, xt, t):
            return torch.zeros(*xt.shape, 3)

    x0 = toy.sequences
    result = edlm.nelbo(Uniform(), x0, num_t=64, generator=torch.Generator().manual_seed(0))
    stderr_of_mean = float(result.stderr.pow(2).sum().sqrt()) / 81
    assert abs(float(result.nats.mean()) - 4 * math.log(3)) < 4 * stderr_of_mean


def test_ar_nll_is_exact(toy):
    x0 = toy.sequences[:20]
    result = edlm.nelbo(ExactCausalLM(toy), x0)
    assert result.kind == "exact"
    torch.testing.assert_close(result.nats, toy.nll(x0), atol=1e-5, rtol=0)


def test_antithetic_times_cover_every_stratum():
    t = antithetic_times(8, torch.Generator().manual_seed(3))
    strata = torch.floor((1 - t.double()) * 8).long().sort().values
    assert strata.tolist() == list(range(8)) and float(t.min()) > 0 and float(t.max()) <= 1


@pytest.mark.parametrize("schedule", [LogLinearSchedule(eps=0.0), CosineSchedule(eps=0.0)])
def test_loss_weight_is_minus_alpha_prime_over_one_minus_alpha(schedule):
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64, requires_grad=True)
    alpha = schedule.alpha(t)
    (grad,) = torch.autograd.grad(alpha.sum(), t)
    torch.testing.assert_close(schedule.loss_weight(t.detach()), -grad / (1 - alpha.detach()))


def test_mdlm_loss_matches_nll_for_exact_denoiser(toy):
    """The training loss is the same estimator: averaged over many batches it equals the per-token NLL."""
    g = torch.Generator().manual_seed(5)
    x0 = toy.sample(256, g)
    losses = torch.stack([mdlm_loss(ExactDenoiser(toy), x0, LogLinearSchedule(eps=0.0), 3, g, t_min=0.0)
                          for _ in range(40)])
    exact = float(toy.nll(x0).mean()) / 4
    assert abs(float(losses.mean()) - exact) < 4 * float(losses.std()) / math.sqrt(40) + 1e-3


def test_forward_mask_rate_and_reverse_step_keep_unmasked():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 5, (400, 50), generator=g)
    xt = forward_mask(x0, torch.full((400,), 0.3), 5, g)
    rate = float((xt == 5).double().mean())
    assert abs(rate - 0.7) < 4 * math.sqrt(0.21 / x0.numel())
    xs = unmask_step(xt, torch.zeros_like(x0), torch.tensor(0.3), torch.tensor(0.65), 5, g)
    assert torch.equal(xs[xt != 5], xt[xt != 5])
    revealed = float(((xt == 5) & (xs != 5)).sum() / (xt == 5).sum())
    assert abs(revealed - 0.5) < 0.02


def test_subs_carries_over_unmasked_tokens():
    logits = torch.randn(1, 3, 4)
    xt = torch.tensor([[2, 4, 0]])
    logp = subs_logprobs(logits, xt, 4)
    assert logp[0, 0, 2] == 0 and torch.isinf(logp[0, 0, [0, 1, 3]]).all()
    torch.testing.assert_close(logp[0, 1], torch.log_softmax(logits[0, 1], -1))


def test_split_likelihood_reports_bits_and_ppl(toy):
    result = split_likelihood(ExactCausalLM(toy), toy.sequences[:32], batch_size=8)
    exact = float(toy.nll(toy.sequences[:32]).sum()) / (32 * 4)
    assert result.kind == "exact" and abs(result.nats_per_token - exact) < 1e-5
    assert abs(result.bits_per_token - exact / math.log(2)) < 1e-5 and abs(result.ppl - math.exp(exact)) < 1e-4


def test_nelbo_refuses_ids_outside_vocab(toy):
    with pytest.raises(EdlmError, match="outside"):
        edlm.nelbo(ExactDenoiser(toy), torch.tensor([[0, 1, 3, 0]]))
