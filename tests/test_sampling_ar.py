"""The autoregressive sampler with a KV cache: exact distribution on a toy, cache == recomputation."""

import pytest
import torch

import edlm
from edlm.models import CausalLM, ModelConfig
from edlm.sampling import ar_sample, sample_categorical, top_p_filter
from edlm.toy import ExactCausalLM, ToyDistribution

N = 4000
FLOOR = 1.75  # TV <= 1.75 * E[TV of N exact draws] (~ +4.5 sd; see test_sampling_mdlm.py)


@pytest.fixture(scope="module")
def toy():
    return ToyDistribution.random(3, 3, torch.Generator().manual_seed(0))


def test_matches_the_exact_distribution(toy):
    x = ar_sample(ExactCausalLM(toy), N, 3, generator=torch.Generator().manual_seed(1))
    assert toy.tv(x) <= FLOOR * toy.expected_tv(N)


def test_prefix_gives_the_conditional(toy):
    x = ar_sample(ExactCausalLM(toy), N, 3, prefix=[2], generator=torch.Generator().manual_seed(2), batch_size=999)
    conditional = torch.where(toy.sequences[:, 0] == 2, toy.probs, torch.zeros_like(toy.probs))
    conditional /= conditional.sum()
    assert bool((x[:, 0] == 2).all())
    assert toy.tv(x, conditional) <= FLOOR * toy.expected_tv(N, conditional)


def test_temperature_and_top_p(toy):
    lm = ExactCausalLM(toy)
    first = lm.next_logits(torch.full((1, 1), lm.bos_id), lm.new_cache(1, 3))[0].double()  # log p(x_0)
    g = torch.Generator().manual_seed(3)
    x = ar_sample(lm, N, 1, temperature=0.5, generator=g)
    target = torch.softmax(first / 0.5, 0)
    freq = torch.bincount(x[:, 0], minlength=3).double() / N
    assert float((freq - target).abs().max()) < 4 * float((target * (1 - target) / N).sqrt().max())
    nucleus = torch.isfinite(top_p_filter(first, 0.3))
    x = ar_sample(lm, 500, 3, top_p=0.3, generator=g)
    assert bool(nucleus[x[:, 0]].all())


def test_kv_cache_equals_full_recomputation():
    torch.manual_seed(0)
    lm = CausalLM(ModelConfig(vocab_size=13, n_layers=2, d_model=32, n_heads=2, cond_dim=32, max_seq_len=20,
                              causal=True)).eval()
    prefix = torch.tensor([[4, 1], [7, 7], [0, 12]])
    x = ar_sample(lm, 3, 20, prefix=prefix, temperature=0.8, top_p=0.9, generator=torch.Generator().manual_seed(5))
    # reference: recompute the whole prefix at every position, same draws from the same generator
    g = torch.Generator().manual_seed(5)
    ref = prefix.clone()
    with torch.no_grad():
        for i in range(2, 20):
            padded = torch.cat([ref, torch.zeros(3, 1, dtype=torch.long)], 1)
            logits = lm(padded)[:, i]
            ref = torch.cat([ref, sample_categorical(top_p_filter(logits.double() / 0.8, 0.9), g)[:, None]], 1)
    assert torch.equal(x, ref)


@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=0.0), "temperature=0.0"),
    (dict(top_p=0.0), "top_p=0.0"),
    (dict(prefix=[0] * 4), "more than seq_len=3"),
])
def test_bad_arguments_raise(toy, kwargs, match):
    with pytest.raises(edlm.EdlmError, match=match):
        ar_sample(ExactCausalLM(toy), 2, 3, **kwargs)


def test_needs_the_decoding_protocol(toy):
    class NoCache:
        vocab_size = 3

    with pytest.raises(edlm.EdlmError, match="has no bos_id"):
        ar_sample(NoCache(), 2, 3)
