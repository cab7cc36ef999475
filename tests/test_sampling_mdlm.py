"""The MDLM ancestral sampler behind `edlm.sample`: exact-marginal convergence, conditioning, forward
passes, chunking and argument errors."""

import pytest
import torch

import edlm
from edlm.energy import AREnergy
from edlm.models import MaskedDiffusionLM, ModelConfig
from edlm.toy import ExactCausalLM, ExactDenoiser, ToyDistribution

N = 4000  # samples per distribution check; the noise floor is ToyDistribution.expected_tv(N)
# The TV of N exact draws has a standard deviation of ~16% of its mean at these sizes (simulated),
# so "at the noise floor" is tested as TV <= 1.75 * E[TV] (about +4.5 standard deviations).
FLOOR = 1.75


@pytest.fixture(scope="module")
def toy():
    return ToyDistribution.random(3, 3, torch.Generator().manual_seed(0))


def product_of_marginals(toy):
    """Float64[V**L]: the distribution that samples every position independently from its marginal."""
    marginals = ExactDenoiser(toy)(torch.full((1, toy.seq_len), toy.vocab_size), torch.ones(1)).double().exp()[0]
    return marginals[torch.arange(toy.seq_len), toy.sequences].prod(dim=1)  # [N]


def test_exact_marginals_converge_as_steps_grow(toy):
    g = torch.Generator().manual_seed(1)
    tvs = {steps: toy.tv(edlm.sample(ExactDenoiser(toy), N, 3, steps, generator=g)) for steps in (1, 2, 256)}
    # One step samples the product of the marginals (far from the joint); many steps reveal one token
    # at a time from the exact conditionals.
    assert 0.5 * float((product_of_marginals(toy) - toy.probs).abs().sum()) > 0.15
    assert tvs[1] > tvs[2] > tvs[256]
    assert tvs[256] <= FLOOR * toy.expected_tv(N), (tvs, toy.expected_tv(N))


def test_one_step_is_the_product_of_marginals(toy):
    g = torch.Generator().manual_seed(2)
    product = product_of_marginals(toy)
    x = edlm.sample(ExactDenoiser(toy), N, 3, 1, generator=g)
    assert toy.tv(x, product) <= FLOOR * toy.expected_tv(N, product)


def test_window_zero_or_k_one_is_mdlm_sample_for_sample(toy):
    energy = AREnergy(ExactCausalLM(toy))
    plain = edlm.sample(ExactDenoiser(toy), 64, 3, 5, generator=torch.Generator().manual_seed(7))
    for k, window in [(4, 0.0), (1, 1.0), (1, 0.5)]:
        lm = energy.lm
        lm.calls = 0
        x = edlm.sample(ExactDenoiser(toy), 64, 3, 5, energy=energy, k=k, window=window,
                        generator=torch.Generator().manual_seed(7))
        assert torch.equal(x, plain) and lm.calls == 0


def test_forward_passes_only_for_sequences_that_change(toy):
    """The no-change cache: each denoiser row is a distinct xt; never more rows than masked states."""
    seen = []

    class Recording(ExactDenoiser):
        def __call__(self, xt, t):
            seen.append(xt.clone())
            return super().__call__(xt, t)

    num, length, steps = 50, 3, 100
    x, stats = edlm.sample(Recording(toy), num, length, steps, generator=torch.Generator().manual_seed(3),
                           return_stats=True)
    calls, rows = stats.count("denoiser")
    assert rows == sum(s.shape[0] for s in seen) and calls == len(seen)
    # Every evaluation must be followed by a reveal, so a sequence is evaluated at most `length` times
    # (evaluating every sequence at every step would take steps * num rows).
    assert rows <= num * length < steps * num
    assert not bool((x == 3).any())


def small_denoiser(vocab=11, seq_len=16):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=vocab, n_layers=1, d_model=16, n_heads=2, cond_dim=16, max_seq_len=seq_len)
    return MaskedDiffusionLM(cfg).eval()


def test_prefix_and_clamp_kept_per_sequence():
    den = small_denoiser()
    clamp = torch.full((6, 16), -1)
    clamp[torch.arange(6), torch.arange(6) + 5] = torch.arange(6)  # a different clamp in every row
    prefix = torch.tensor([3, 1, 4])
    x = edlm.sample(den, 6, 16, 8, prefix=prefix, clamp=clamp, generator=torch.Generator().manual_seed(0),
                    batch_size=4)
    assert x.shape == (6, 16) and int(x.max()) < 11 and int(x.min()) >= 0
    assert bool((x[:, :3] == prefix).all())
    assert x[torch.arange(6), torch.arange(6) + 5].tolist() == list(range(6))


def test_fully_fixed_sequence_needs_no_forward_pass():
    den = small_denoiser()
    prefix = torch.arange(16) % 11
    x, stats = edlm.sample(den, 2, 16, 4, prefix=prefix, return_stats=True)
    assert bool((x == prefix).all()) and stats.count("denoiser") == (0, 0)


def test_batch_size_chunks_the_calls(toy):
    x, stats = edlm.sample(ExactDenoiser(toy), 10, 3, 4, batch_size=3, generator=torch.Generator().manual_seed(0),
                           return_stats=True)
    assert x.shape == (10, 3) and max(r for _, r in stats.calls) <= 3
    assert stats.ess.shape == (10, 4) and bool(stats.ess.isnan().all())
    assert torch.allclose(stats.times, torch.tensor([1.0, 0.75, 0.5, 0.25], dtype=torch.float64))


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=0), "steps=0"),
    (dict(k=0), "k=0"),
    (dict(window=-0.1), "window=-0.1"),
    (dict(window=1.5), "window=1.5"),
    (dict(tau=0.0), "tau=0.0"),
    (dict(prefix=[1] * 17), "more than seq_len=16"),
    (dict(prefix=[11]), "outside"),
    (dict(clamp=[-1] * 15), "clamp has length 15"),
    (dict(prefix=[1], clamp=[2] + [-1] * 15), "different tokens"),
    (dict(k=4, window=0.5), "needs an energy"),
    (dict(batch_size=0), "batch_size=0"),
])
def test_bad_arguments_raise(kwargs, match):
    args = dict(steps=4)
    args.update(kwargs)
    with pytest.raises(edlm.EdlmError, match=match):
        edlm.sample(small_denoiser(), 2, 16, args.pop("steps"), **args)


def test_vocab_mismatch_raises():
    toy3 = ToyDistribution.random(3, 2, torch.Generator().manual_seed(0))
    with pytest.raises(edlm.EdlmError, match="vocab_size=3 but the denoiser has vocab_size=11"):
        edlm.sample(small_denoiser(), 2, 16, 4, energy=AREnergy(ExactCausalLM(toy3)), k=2, window=1.0)


def test_wrong_denoiser_output_raises():
    den = small_denoiser()

    class Truncated:
        vocab_size = 11

        def __call__(self, xt, t):
            return den(xt, t)[..., :5]

    with pytest.raises(edlm.EdlmError, match="V = vocab_size = 11"):
        edlm.sample(Truncated(), 2, 16, 2)
