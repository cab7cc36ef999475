"""Importance-sampled denoising (EDLM Algorithm 1) against exact answers on an enumerable toy.

With the exact AR model as the energy, the corrected kernel is the true posterior p(x0 | xt), so the
sampler's output distribution must approach the toy distribution as k grows, whatever the proposal.
"""

import pytest
import torch

import edlm
from edlm.energy import AREnergy
from edlm.toy import ExactCausalLM, FactorisedDenoiser, ToyDistribution

N = 4000  # sequences in one batch per distribution check
FLOOR = 1.75  # TV <= 1.75 * E[TV of N exact draws] (~ +4.5 sd; see test_sampling_mdlm.py)


@pytest.fixture(scope="module")
def toy():
    return ToyDistribution.random(3, 3, torch.Generator().manual_seed(0))


def test_tv_decreases_in_k_to_the_noise_floor(toy):
    g = torch.Generator().manual_seed(1)
    energy = AREnergy(ExactCausalLM(toy))
    proposal = FactorisedDenoiser(toy)  # unconditional marginals: ignores xt entirely
    tvs = {}
    for k in (1, 4, 16, 128):
        x = edlm.sample(proposal, N, 3, 1, energy=energy, k=k, window=1.0, generator=g,
                        batch_size=N if k < 128 else 1000)  # bounds the toy LM's enumeration memory
        tvs[k] = toy.tv(x)
    floor = toy.expected_tv(N)
    assert tvs[1] > tvs[4] > tvs[16] > tvs[128], tvs
    assert tvs[1] > 5 * floor
    assert tvs[128] <= FLOOR * floor, (tvs, floor)


def test_multi_step_window_reaches_the_target(toy):
    """With steps > 1 every step's kernel is the exact posterior, so the output is exact as k grows."""
    g = torch.Generator().manual_seed(2)
    x = edlm.sample(FactorisedDenoiser(toy), N, 3, 3, energy=AREnergy(ExactCausalLM(toy)), k=64, window=1.0,
                    generator=g)
    assert toy.tv(x) <= FLOOR * toy.expected_tv(N)


def test_batch_layout_keeps_each_sequence_its_own_candidates(toy):
    """Two interleaved groups with different prefixes in one batch: each group must follow its own
    conditional p(x | x_0 = a); candidates mixed across sequences (docs/pitfalls.md, item 3) would break prefixes."""
    g = torch.Generator().manual_seed(3)
    prefix = (torch.arange(N) % 2 * 2)[:, None]  # rows alternate prefix 0 and prefix 2
    x = edlm.sample(FactorisedDenoiser(toy), N, 3, 1, energy=AREnergy(ExactCausalLM(toy)), k=64, window=1.0,
                    prefix=prefix, generator=g)
    assert torch.equal(x[:, :1], prefix)
    for a in (0, 2):
        group = x[prefix[:, 0] == a]
        conditional = torch.where(toy.sequences[:, 0] == a, toy.probs, torch.zeros_like(toy.probs))
        conditional /= conditional.sum()
        assert toy.tv(group, conditional) <= FLOOR * toy.expected_tv(len(group), conditional)


def test_one_energy_call_per_step_with_batch_major_inputs(toy):
    proposal = FactorisedDenoiser(toy)
    seen = []

    def energy(x0, xt, t, proposal_logp):
        seen.append((x0.clone(), xt.clone(), t.clone(), proposal_logp.clone()))
        return torch.zeros(x0.shape[0], dtype=torch.float64)

    b, k = 5, 3
    clamp = torch.full((b, 3), -1)
    clamp[:, 1] = torch.arange(b) % 3  # sequence b has token b % 3 at position 1
    x, stats = edlm.sample(proposal, b, 3, 2, energy=energy, k=k, window=1.0, clamp=clamp,
                           generator=torch.Generator().manual_seed(0), return_stats=True)
    assert len(seen) == stats.count("energy")[0] >= 1
    x0, xt, t, logp = seen[0]
    rows = stats.calls[1][1]
    assert x0.shape == (rows, 3) and logp.dtype == torch.float64 and t.shape == (rows,)
    assert torch.equal(xt.view(-1, k, 3)[:, 0], xt.view(-1, k, 3)[:, -1])  # k copies of one xt per sequence
    assert torch.equal(x0[:, 1], xt[:, 1])  # candidates keep the clamp of their own sequence
    masked = xt == 3
    log_mu = proposal.logits.double().log_softmax(-1)[torch.arange(3), x0]  # [rows, L]
    assert torch.allclose(logp, torch.where(masked, log_mu, torch.zeros_like(log_mu)).sum(1))
    assert torch.equal(x[:, 1], clamp[:, 1])


def test_weights_are_softmax_of_minus_energy(toy):
    """docs/pitfalls.md, item 1: low energy = more probable. Candidates with token 1 at position 0 get E=0, others E=+10."""
    def energy(x0, xt, t, proposal_logp):
        return torch.where(x0[:, 0] == 1, 0.0, 10.0).double()

    uniform = FactorisedDenoiser(toy, torch.zeros(3, 3))
    x = edlm.sample(uniform, 500, 3, 1, energy=energy, k=16, window=1.0, generator=torch.Generator().manual_seed(4))
    assert float((x[:, 0] == 1).double().mean()) > 0.97  # P(no candidate with token 1) = (2/3)**16
    # a huge temperature flattens the weights back to the proposal
    x = edlm.sample(uniform, 3000, 3, 1, energy=energy, k=16, window=1.0, tau=1e9,
                    generator=torch.Generator().manual_seed(4))
    assert abs(float((x[:, 0] == 1).double().mean()) - 1 / 3) < 0.04


def test_ess_recorded_inside_the_window_only(toy):
    k, steps = 8, 4
    x, stats = edlm.sample(FactorisedDenoiser(toy), 200, 3, steps, energy=AREnergy(ExactCausalLM(toy)), k=k,
                           window=0.5, generator=torch.Generator().manual_seed(5), return_stats=True)
    assert stats.ess.shape == (200, steps)
    inside = stats.times >= 0.5  # t = 1, 0.75, 0.5 are inside; 0.25 is not
    assert inside.tolist() == [True, True, True, False]
    assert bool(stats.ess[:, ~inside].isnan().all())
    ran = stats.ess[:, inside]
    ran = ran[~ran.isnan()]
    assert ran.numel() > 100 and bool((ran >= 1 - 1e-9).all()) and bool((ran <= k + 1e-9).all())
    assert stats.count("energy")[1] == k * int((~stats.ess[:, inside].isnan()).sum())


@pytest.mark.parametrize("value", [float("nan"), float("-inf"), float("inf")])
def test_broken_energies_raise(toy, value):
    def energy(x0, xt, t, proposal_logp):
        return torch.full((x0.shape[0],), value, dtype=torch.float64)

    with pytest.raises(edlm.EdlmError, match="check the energy model"):
        edlm.sample(FactorisedDenoiser(toy), 4, 3, 1, energy=energy, k=2, window=1.0)


def test_ess_is_computed_from_the_normalised_weights():
    """docs/pitfalls.md, item 8. Energies 0, ln 2, ln 4, ln 4 for candidates 0..3 of every sequence give
    weights 1/2, 1/4, 1/8, 1/8 and ESS = 1 / sum w^2 = 32/11; at tau = 2, ESS = (2 + 2**-0.5)**2 / 2."""
    from edlm.sampling import importance_resample

    b, k, length, vocab = 3, 4, 5, 6
    energies = torch.tensor([1.0, 2.0, 4.0, 4.0], dtype=torch.float64).log()

    def energy(x0, xt, t, proposal_logp):
        return energies.repeat(x0.shape[0] // k)  # row b*k + j is candidate j of sequence b

    logits, xt = torch.zeros(b, length, vocab), torch.full((b, length), vocab)
    for tau, expected in ((1.0, 32 / 11), (2.0, (2 + 2 ** -0.5) ** 2 / 2)):
        x0, ess = importance_resample(logits, xt, 1.0, energy, k, tau, vocab, torch.Generator().manual_seed(0))
        assert x0.shape == (b, length) and ess.dtype == torch.float64
        assert torch.allclose(ess, torch.full((b,), expected, dtype=torch.float64), rtol=1e-12)
