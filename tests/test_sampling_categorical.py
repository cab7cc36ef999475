"""Float64 categorical sampling: frequencies on a long-tailed distribution, chunking, top-p."""

import math

import torch

from edlm.sampling import categorical
from edlm.sampling.categorical import draw_rows, sample_categorical, top_p_filter


def test_long_tail_frequencies_within_sampling_error():
    # Zipf over 5000 tokens: the tail [1000, 5000) holds ~13% of the mass in probabilities of 1e-5..1e-4.
    g = torch.Generator().manual_seed(0)
    vocab, n = 5000, 20000
    logp = -1.1 * torch.arange(1, vocab + 1, dtype=torch.float64).log()
    logp -= logp.logsumexp(0)
    draws = sample_categorical(logp.float().expand(n, vocab), g)
    counts = torch.bincount(draws, minlength=vocab).double()
    for lo, hi in [(0, 1), (1, 10), (10, 100), (100, 1000), (1000, 3000), (3000, 5000)]:
        p = float(logp[lo:hi].exp().sum())
        z = (float(counts[lo:hi].sum()) - n * p) / math.sqrt(n * p * (1 - p))
        assert abs(z) < 4.5, (lo, hi, p, z)


def test_draw_rows_chunks_and_logp(monkeypatch):
    """Chunked draws (3 rows per chunk) return the right rows and float64 log-probabilities."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(10, 7, generator=g)
    logits[4, 2] = float("-inf")
    monkeypatch.setattr(categorical, "CHUNK_BYTES", 3 * 7 * 8)
    rows = torch.tensor([9, 4, 0, 4, 2])
    tokens, logp = draw_rows(logits, rows, 5, g)
    assert tokens.shape == (5, 5) and logp.dtype == torch.float64
    expected = torch.log_softmax(logits.double(), -1)[rows[None].expand(5, -1), tokens]
    assert torch.allclose(logp, expected)
    assert not bool((tokens[:, [1, 3]] == 2).any())  # -inf logits are never drawn


def test_same_generator_same_draws():
    logits = torch.randn(4, 11)
    a = sample_categorical(logits, torch.Generator().manual_seed(3))
    b = sample_categorical(logits, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (4,)


def test_top_p_keeps_the_nucleus():
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    kept = torch.isfinite(top_p_filter(logits, 0.7))
    assert kept.tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.5)).tolist() == [[True, False, False, False]]
    assert torch.isfinite(top_p_filter(logits, 1.0)).all()


def test_logit_differences_below_float32_resolution_are_kept():
    """docs/pitfalls.md, item 4: float64 logits 1e8 and 1e8 + 1 (equal once rounded to float32) must
    give token 1 with probability sigmoid(1) = 0.731, not 1/2."""
    n = 20000
    logits = torch.tensor([1e8, 1e8 + 1], dtype=torch.float64).expand(n, 2)
    draws = sample_categorical(logits, torch.Generator().manual_seed(0))
    p = 1 / (1 + math.exp(-1))
    assert abs(float(draws.double().mean()) - p) < 4.5 * math.sqrt(p * (1 - p) / n)
