"""The Rao-Blackwellised self-normalised importance-sampling estimate of the EDLM likelihood
(`estimator="rao_blackwell"`), checked against the exact corrected-kernel NELBO of enumerable toys."""

import itertools
import math

import pytest
import torch

import edlm
from edlm.energy import AREnergy
from edlm.likelihood.energy import choose_masked_positions, rao_blackwell_nll
from edlm.toy import ExactCausalLM, FactorisedDenoiser, ToyDistribution


def corrected_marginals(den, energy, xt: torch.Tensor) -> torch.Tensor:
    """Exact marginals Float64[L, V] of the corrected kernel mu(x | xt) exp(-E(x)) / Z at one xt: Long[L],
    by enumerating every sequence that agrees with xt (the toy models ignore t)."""
    vocab = den.vocab_size
    masked = xt == vocab
    every = torch.tensor(list(itertools.product(range(vocab), repeat=len(xt))))
    seqs = every[((every == xt) | masked).all(dim=1)]  # [M, L]
    logmu = torch.log_softmax(den(xt[None], torch.ones(1))[0].double(), dim=-1)  # [L, V]
    logp = torch.where(masked, logmu.gather(1, seqs.t()).t(), 0.0).sum(dim=1)  # [M]
    e = energy(seqs, xt.expand(len(seqs), -1), torch.full((len(seqs),), 0.5), logp).double()
    kernel = torch.softmax(logp - e, dim=0)
    onehot = torch.nn.functional.one_hot(seqs, vocab).double()  # [M, L, V]
    return (kernel[:, None, None] * onehot).sum(dim=0)


def exact_corrected_nelbo(den, energy, x0: torch.Tensor) -> float:
    """The continuous-time NELBO (nats) of x0: Long[L] under the corrected kernel with exact marginals:
    sum over masks m of B(|m|, L - |m| + 1) * sum_{i in m} -log p(x0^i | x0 masked by m), since
    t ~ U(0, 1], weight 1/t and P(m | t) = t^|m| (1 - t)^(L - |m|) integrate to that Beta function."""
    length = len(x0)
    total = 0.0
    for k in range(1, length + 1):
        weight = math.factorial(k - 1) * math.factorial(length - k) / math.factorial(length)
        for m in itertools.combinations(range(length), k):
            xt = x0.clone()
            xt[list(m)] = den.vocab_size
            marginals = corrected_marginals(den, energy, xt)
            total += weight * sum(-math.log(float(marginals[i, x0[i]])) for i in m)
    return total


@pytest.fixture(scope="module")
def world():
    toy = ToyDistribution.random(3, 4, torch.Generator().manual_seed(11))
    proposal = FactorisedDenoiser(toy, torch.randn(4, 3, generator=torch.Generator().manual_seed(12)))
    return toy, proposal, ExactCausalLM(toy)


def test_ar_energy_exact_corrected_nelbo_is_the_ar_nll(world):
    """The yardstick: with the AR energy the corrected kernel is p_AR restricted to agree with xt, so its
    exact per-token-marginal NELBO is the AR model's own exact NLL (any-order chain rule)."""
    toy, proposal, lm = world
    for x0 in toy.sample(3, torch.Generator().manual_seed(13)):
        assert exact_corrected_nelbo(proposal, AREnergy(lm), x0) == pytest.approx(float(toy.nll(x0[None])), abs=1e-6)


def test_marginal_estimate_converges_to_the_exact_marginal(world):
    """At one xt with three masked positions, the mean absolute error of -log p(x0^i | xt) over 200
    repeats shrinks like n^(-1/2) (a consistent ratio estimator): about sqrt(32) = 5.7 times from 16 to
    512 draws, ending within 0.06 nats of the exact value."""
    toy, proposal, lm = world
    x0 = toy.sequences[int(toy.probs.argmin())]  # an unlikely x0: the hardest case for the proposal
    xt = x0.clone()
    xt[[0, 2, 3]] = 3
    exact = -corrected_marginals(proposal, AREnergy(lm), xt)[[0, 2, 3], x0[[0, 2, 3]]].log()
    reps = 200
    logits = proposal(xt.expand(reps, -1), torch.ones(reps))
    positions = torch.tensor([0, 2, 3]).expand(reps, -1)
    errors = []
    for n, seed in ((2, 0), (16, 1), (512, 2)):
        nll = rao_blackwell_nll(logits, x0.expand(reps, -1), xt.expand(reps, -1), positions, AREnergy(lm),
                                torch.ones(reps), n, torch.Generator().manual_seed(seed))
        assert nll.shape == (reps, 3) and torch.isfinite(nll).all()
        errors.append(float((nll - exact).abs().mean()))
    assert errors[0] > errors[1] > errors[2], errors
    assert 0.5 * 32 ** 0.5 < errors[1] / errors[2] < 2 * 32 ** 0.5, errors
    assert errors[2] < 0.06, errors


@pytest.mark.parametrize("carry_over", [False, True], ids=["ar", "coar"])
def test_nelbo_matches_the_exact_corrected_kernel_nelbo(world, carry_over):
    """edlm.nelbo(estimator="rao_blackwell") against the enumerated exact NELBO, for the AR energy (whose
    exact value is the AR NLL) and the carry-over AR energy (a different kernel with Z = 1)."""
    toy, proposal, lm = world
    energy = AREnergy(lm, carry_over=carry_over)
    x0 = toy.sample(2, torch.Generator().manual_seed(14))
    result = edlm.nelbo(proposal, x0, energy=energy, num_t=1500, num_z=64, estimator="rao_blackwell",
                        num_positions=2, generator=torch.Generator().manual_seed(15), batch_size=1500)
    exact = torch.tensor([exact_corrected_nelbo(proposal, energy, x) for x in x0], dtype=torch.float64)
    assert result.kind == "estimate"
    assert torch.all((result.nats - exact).abs() < 4 * result.stderr + 0.01), (result.nats, exact, result.stderr)


def test_the_energy_sees_each_scored_sequence_with_its_own_proposal_logp(world):
    """Every sequence handed to the energy (a draw with position i set to each v) comes with the proposal
    log-probability of that very sequence, sum over masked j of log mu^j(x^j | xt)."""
    toy, proposal, lm = world
    seen = []

    def recording_energy(x, xt, t, logp):
        seen.append((x, xt, logp))
        return AREnergy(lm)(x, xt, t, logp)

    x0 = toy.sample(3, torch.Generator().manual_seed(18))
    xt = torch.where(torch.tensor([[True, False, True, True]] * 3), 3, x0)
    logits = proposal(xt, torch.ones(3))
    rao_blackwell_nll(logits, x0, xt, torch.tensor([[0, 2], [3, 0], [2, 3]]), recording_energy, torch.ones(3), 5,
                      torch.Generator().manual_seed(19))
    x, xts, logp = (torch.cat(parts) for parts in zip(*seen))
    assert len(x) == 3 * 2 * 5 * 3  # C * k * n * V
    logmu = torch.log_softmax(logits.double(), dim=-1).repeat_interleave(2 * 5 * 3, dim=0)
    expected = torch.where(xts == 3, logmu.gather(2, x[..., None]).squeeze(2), 0.0).sum(dim=1)
    assert torch.allclose(logp, expected, atol=1e-9)
    assert ((x == xts) | (xts == 3)).all()


def test_choose_masked_positions_is_uniform_without_replacement():
    masked = torch.tensor([[True, False, True, True, False]] * 30000 + [[False, True, False, False, False]])
    positions, valid = choose_masked_positions(masked, 2, torch.Generator().manual_seed(0))
    assert valid[:-1].all() and valid[-1].tolist() == [True, False] and positions[-1, 0] == 1
    assert (positions[:-1, 0] != positions[:-1, 1]).all() and masked[:-1].gather(1, positions[:-1]).all()
    counts = torch.bincount(positions[:-1].reshape(-1), minlength=5).double() / 60000
    # each of the 3 masked positions is picked with probability 2/3 per row: frequency 1/3 of the slots
    assert torch.allclose(counts[[0, 2, 3]], torch.full((3,), 1 / 3, dtype=torch.float64), atol=4 * (2 / 9 / 60000) ** 0.5)


def test_bad_num_positions_is_refused(world):
    toy, proposal, lm = world
    with pytest.raises(edlm.EdlmError, match="num_positions=0"):
        edlm.nelbo(proposal, toy.sample(1, torch.Generator().manual_seed(0)), energy=AREnergy(lm),
                   estimator="rao_blackwell", num_positions=0)
