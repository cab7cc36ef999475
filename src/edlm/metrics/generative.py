"""Generative metrics of a set of samples: oracle perplexity and diversity.

- Generative perplexity under an oracle causal LM (anything with `token_logprobs`: an edlm `CausalLM`,
  an `HFCausalLM`, ...). Each sample is prepared by the EOS and retokenisation rules of
  `edlm.metrics.samples`; the oracle scores its content tokens and, when the sample was ended by an EOS
  and `count_eos` is true, the oracle's EOS after them (so a model is charged for ending a document).
  Position 0 is conditioned on the oracle's BOS. Two numbers, since papers differ:
  `ppl = exp(sum of token NLLs / number of scored tokens)` over all samples, and
  `ppl_mean_of_samples = mean over samples of exp(NLL_s / n_s)`.
  Samples longer than the oracle's context are scored in windows of its context length moved by half
  a context: every token is scored once, with at least half a context before it.
  `bits_per_char = sum of token NLLs / ln 2 / number of characters of the samples' content text`
  (the EOS, when scored, adds NLL but no characters) is comparable across tokenizers; for a character
  tokenizer without EOS it equals bits per token.
- Diversity, per sample, on its content tokens (EOS excluded) in the samples' own tokenizer when
  every sample has ids, else in the oracle's: unigram entropy `H = -sum_w p_w log p_w` with
  `p_w = count_w / n` (nats, and bits = nats / ln 2), fraction of unique unigrams
  `|distinct tokens| / n`, and repetition rate: the fraction of tokens that already appeared among the
  `window` (100) tokens before them in the same sample (the first token never counts as a repeat).
  Each is averaged over samples with at least one token (the entropy's std across samples too).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field

import torch

from edlm.errors import require
from edlm.metrics.samples import Prepared, Sample, prepare


def unigram_entropy(tokens: list[int]) -> float:
    """Entropy in nats of the empirical unigram distribution of `tokens` (0 for an empty list)."""
    n = len(tokens)
    return -sum(c / n * math.log(c / n) for c in Counter(tokens).values()) if n else 0.0


def unique_fraction(tokens: list[int]) -> float:
    """Number of distinct tokens / number of tokens."""
    return len(set(tokens)) / len(tokens) if tokens else float("nan")


def repetition_rate(tokens: list[int], window: int = 100) -> float:
    """Fraction of tokens x_i equal to some x_j with i - window <= j < i."""
    require(window >= 1, f"window={window} must be at least 1.")
    last: dict[int, int] = {}
    repeats = 0
    for i, tok in enumerate(tokens):
        if tok in last and last[tok] >= i - window:
            repeats += 1
        last[tok] = i
    return repeats / len(tokens) if tokens else float("nan")


def context_length(lm) -> int | None:
    """The most tokens `lm.token_logprobs` accepts at once, or None when it does not say."""
    limit = getattr(lm, "max_length", None)
    config = getattr(lm, "config", None)
    return limit or getattr(config, "max_seq_len", None)


def _windows(n: int, context: int | None) -> list[tuple[int, int, int]]:
    """(begin, score_from, end) windows over n tokens: positions [score_from, end) are scored from
    the model reading tokens [begin, end)."""
    if context is None or n <= context:
        return [(0, 0, n)]
    stride = max(1, context // 2)
    spans, start = [(0, 0, context)], context
    while start < n:
        end = min(start + stride, n)
        spans.append((end - context, start, end))
        start = end
    return spans


@torch.no_grad()
def sequence_nll(lm, sequences: list[list[int]], batch_size: int = 8, progress: bool = False) -> list[float]:
    """Total NLL in nats of each token sequence under the causal LM `lm` (0 for an empty sequence).
    Batches are right-padded: a causal model's log-probabilities do not depend on later positions."""
    from edlm.util.progress import progress_bar

    context = context_length(lm)
    rows = [(s, b, f, e) for s, seq in enumerate(sequences) if seq for b, f, e in _windows(len(seq), context)]
    rows.sort(key=lambda r: r[3] - r[1])
    totals = [0.0] * len(sequences)
    for i in progress_bar(range(0, len(rows), batch_size), enabled=progress, desc="oracle", unit="batch"):
        chunk = rows[i:i + batch_size]
        width = max(e - b for _, b, _, e in chunk)
        x = torch.zeros(len(chunk), width, dtype=torch.long)
        keep = torch.zeros(len(chunk), width, dtype=torch.bool)
        for r, (s, b, f, e) in enumerate(chunk):
            x[r, : e - b] = torch.tensor(sequences[s][b:e])
            keep[r, f - b: e - b] = True
        logp = lm.token_logprobs(x).double().cpu()
        nll = -(logp * keep).sum(dim=1)
        for r, (s, *_rest) in enumerate(chunk):
            totals[s] += float(nll[r])
    return totals


def bits_per_token(lm, sequences: list[list[int]], batch_size: int = 8) -> list[float]:
    """NLL of each non-empty token sequence under the causal LM `lm`, in bits per token (= bits per
    character for a character tokenizer)."""
    return [nats / len(seq) / math.log(2) for nats, seq in zip(sequence_nll(lm, sequences, batch_size), sequences)]


def bits_per_char(lm, sequences: list[list[int]], texts: list[str], batch_size: int = 8) -> list[float]:
    """NLL of each token sequence under the causal LM `lm` in bits per character of its text
    (nats / len(text) / ln 2; `sequences[i]` encodes `texts[i]` in lm's tokenizer), comparable across
    tokenizers. An empty text gives NaN."""
    nlls = sequence_nll(lm, sequences, batch_size)
    return [nats / len(text) / math.log(2) if text else float("nan") for nats, text in zip(nlls, texts)]


@dataclass
class GenerativeReport:
    """Generative metrics of a sample set (see the module docstring for every definition)."""

    oracle: str
    num_samples: int
    num_scored_tokens: int
    nll_per_token: float
    ppl: float
    num_chars: int | None
    bits_per_char: float | None
    ppl_mean_of_samples: float
    entropy_nats: float
    entropy_nats_std: float
    entropy_bits: float
    unique_fraction: float
    repetition_rate: float
    repetition_window: int
    count_eos: bool
    retokenized: bool
    diversity_tokens: str
    num_ended_by_eos: int
    num_empty: int
    per_sample: list[dict] = field(default_factory=list)

    def to_dict(self, per_sample: bool = True) -> dict:
        out = asdict(self)
        if not per_sample:
            out.pop("per_sample")
        return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def generative_metrics(samples: list[Sample], oracle, *, oracle_tokenizer=None, sample_tokenizer=None,
                       count_eos: bool = True, window: int = 100, batch_size: int = 8,
                       progress: bool = False) -> GenerativeReport:
    """Generative perplexity of `samples` under `oracle` and their diversity.

    oracle_tokenizer: the oracle's tokenizer (defaults to `oracle.tokenizer` when it has one).
    sample_tokenizer: the tokenizer that produced the samples' ids (None: the oracle's).
    """
    require(bool(samples), "there are no samples to evaluate; pass a non-empty sample file.")
    oracle_tokenizer = oracle_tokenizer or getattr(oracle, "tokenizer", None)
    prepared: list[Prepared] = [prepare(s, sample_tokenizer, oracle_tokenizer) for s in samples]
    oracle_eos = getattr(oracle, "eos_id", None)
    if oracle_eos is None and oracle_tokenizer is not None:
        oracle_eos = oracle_tokenizer.eos_id
    scored = [p.target_tokens + ([oracle_eos] if p.ended and count_eos and oracle_eos is not None else [])
              for p in prepared]
    vocab = oracle.vocab_size
    bad = [t for seq in scored for t in seq if not 0 <= t < vocab]
    require(not bad, f"samples hold token id {bad[0] if bad else 0} outside the oracle's vocabulary [0, {vocab}); "
            "give the samples' tokenizer (--tokenizer) so they are retokenised.")
    nlls = sequence_nll(oracle, scored, batch_size, progress)
    counts = [len(seq) for seq in scored]
    total_tokens = sum(counts)
    require(total_tokens > 0, "no sample has any token to score; check the samples and the EOS rule.")
    nll_per_token = sum(nlls) / total_tokens
    per_ppl = [math.exp(nll / n) for nll, n in zip(nlls, counts) if n]

    use_sample_side = all(p.sample_tokens is not None for p in prepared)
    diversity = [p.sample_tokens if use_sample_side else p.target_tokens for p in prepared]
    entropies = [unigram_entropy(d) if d else float("nan") for d in diversity]
    uniques = [unique_fraction(d) for d in diversity]
    reps = [repetition_rate(d, window) for d in diversity]
    entropy_mean, entropy_std = _mean_std(entropies)
    per_sample = [dict(nll=nll, scored_tokens=n, content_tokens=len(d), chars=None if p.text is None else len(p.text),
                       ended=p.ended, entropy_nats=h, unique_fraction=u, repetition_rate=r)
                  for nll, n, d, p, h, u, r in zip(nlls, counts, diversity, prepared, entropies, uniques, reps)]
    chars = None if any(p.text is None for p in prepared) else sum(len(p.text) for p in prepared)
    return GenerativeReport(
        oracle=getattr(oracle, "name", type(oracle).__name__), num_samples=len(samples),
        num_scored_tokens=total_tokens, nll_per_token=nll_per_token, ppl=math.exp(nll_per_token), num_chars=chars,
        bits_per_char=sum(nlls) / math.log(2) / chars if chars else None,
        ppl_mean_of_samples=sum(per_ppl) / len(per_ppl), entropy_nats=entropy_mean, entropy_nats_std=entropy_std,
        entropy_bits=entropy_mean / math.log(2), unique_fraction=_mean_std(uniques)[0],
        repetition_rate=_mean_std(reps)[0], repetition_window=window, count_eos=count_eos,
        retokenized=any(p.retokenized for p in prepared),
        diversity_tokens="samples" if use_sample_side else "oracle",
        num_ended_by_eos=sum(p.ended for p in prepared), num_empty=sum(1 for d in diversity if not d),
        per_sample=per_sample)
