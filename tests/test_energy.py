"""AR energies: values, carry-over, float64, the partition functions they imply, compatibility checks."""

import pytest
import torch

import edlm
from edlm.energy import AREnergy, Energy, check_compatible
from edlm.toy import ExactCausalLM, FactorisedDenoiser, ToyDistribution


@pytest.fixture(scope="module")
def toy():
    return ToyDistribution.random(3, 4, torch.Generator().manual_seed(0))


def test_values_and_carry_over(toy):
    lm = ExactCausalLM(toy)
    x0 = toy.sample(6, torch.Generator().manual_seed(1))
    xt = torch.where(torch.rand(6, 4, generator=torch.Generator().manual_seed(2)) < 0.5, 3, x0)
    proposal_logp = torch.randn(6, dtype=torch.float64)
    t = torch.full((6,), 0.5)
    token_logp = lm.token_logprobs(x0).double()
    full = AREnergy(lm)(x0, xt, t, proposal_logp)
    co = AREnergy(lm, carry_over=True)(x0, xt, t, proposal_logp)
    assert full.dtype == torch.float64 and co.dtype == torch.float64
    assert torch.allclose(full, -token_logp.sum(1) + proposal_logp)
    assert torch.allclose(co, -(token_logp * (xt == 3)).sum(1) + proposal_logp)
    assert isinstance(AREnergy(lm), Energy)


@pytest.mark.parametrize("carry_over", [False, True])
def test_partition_function_by_enumeration(toy, carry_over):
    """Z(xt) = sum_x mu(x|xt) exp(-E) is p_AR(visible tokens) without carry-over and exactly 1 with it."""
    lm = ExactCausalLM(toy)
    energy = AREnergy(lm, carry_over=carry_over)
    proposal = FactorisedDenoiser(toy, torch.randn(4, 3, generator=torch.Generator().manual_seed(3)))
    log_mu = proposal.logits.double().log_softmax(-1)  # [L, V]
    x0 = toy.sample(1, torch.Generator().manual_seed(4))[0]
    for pattern in ([1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 1, 1]):
        masked = torch.tensor(pattern, dtype=torch.bool)
        xt = torch.where(masked, 3, x0)
        consistent = ((toy.sequences == xt) | masked).all(1)
        x = toy.sequences[consistent]
        logp = (log_mu[torch.arange(4), x] * masked).sum(1)
        e = energy(x, xt.expand(len(x), -1), torch.full((len(x),), 0.5), logp)
        z = float(torch.exp(logp - e).sum())
        visible = float(toy.probs[consistent].sum())
        assert z == pytest.approx(1.0 if carry_over else visible, rel=1e-6)  # float32 token log-probs
    assert energy.unit_partition is carry_over


def test_compatibility_checks(toy):
    lm = ExactCausalLM(toy)
    other = ExactCausalLM(ToyDistribution.random(5, 2, torch.Generator().manual_seed(0)))
    check_compatible(FactorisedDenoiser(toy), AREnergy(lm))
    with pytest.raises(edlm.EdlmError, match="vocab_size=5 but the denoiser has vocab_size=3"):
        check_compatible(FactorisedDenoiser(toy), AREnergy(other))

    class OddMask:
        vocab_size = 3
        mask_id = 0

    with pytest.raises(edlm.EdlmError, match="mask id 0"):
        check_compatible(FactorisedDenoiser(toy), OddMask())
    with pytest.raises(edlm.EdlmError, match="is not a causal LM"):
        AREnergy(FactorisedDenoiser(toy))
