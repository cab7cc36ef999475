"""Categorical sampling in float64 with an explicit generator, shared by every sampler
(docs/pitfalls.md, item 4).

The exponential race: `token = argmax_v (logit_v - log E_v)` with `E_v ~ Exp(1)` i.i.d., which is
Gumbel-max with `G = -log E`. Logits, noise and their sum are float64: Gumbel noise made
from float32 uniforms, `-log(-log u)`, cannot exceed about 16.6, so tokens whose logits trail the
best by more than that are never drawn, and float32 sums round away small logit differences.

Memory: rows are processed in chunks of at most `CHUNK_BYTES` of float64 per buffer. A chunk holds
two float64 buffers (its logits and its noise), reused for every one of the k draws, so drawing k
candidates for B*L rows never materialises a `[B, k, L, V]` (nor a `[B, L, V]`) float64 tensor.
"""

from __future__ import annotations

import torch

from edlm.errors import require

CHUNK_BYTES = 32 * 2**20  # bytes of one float64 [rows, V] chunk buffer


def rows_per_chunk(vocab_size: int) -> int:
    """Rows of a float64 [rows, V] buffer that fit in CHUNK_BYTES (at least one)."""
    return max(1, CHUNK_BYTES // (8 * vocab_size))


def _noise_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    return generator.device if generator is not None else device


def draw_rows(logits: torch.Tensor, rows: torch.Tensor, k: int,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """k independent draws from the categorical softmax(logits[r]) for every selected row r.

    logits: Float[N, V] of any float dtype (-inf allowed, at least one finite entry per row).
    rows: Long[M] row indices into `logits`. Returns `(tokens, logp)`: tokens Long[k, M] and
    logp Float64[k, M], the log-probability log softmax(logits[r])[token] in nats of each draw.
    Random numbers are drawn on the generator's device (the logits' device without a generator),
    chunk by chunk and, inside a chunk, candidate by candidate.
    """
    vocab = logits.shape[-1]
    device = logits.device
    m = rows.numel()
    tokens = torch.empty((k, m), dtype=torch.long, device=device)
    logp = torch.empty((k, m), dtype=torch.float64, device=device)
    noise_device = _noise_device(generator, device)
    tiny = torch.finfo(torch.float64).tiny
    step = rows_per_chunk(vocab)
    for start in range(0, m, step):
        x = logits.index_select(0, rows[start:start + step]).double()  # [r, V]
        lse = torch.logsumexp(x, dim=-1)
        require(bool(torch.isfinite(lse).all()),
                "the model returned logits with NaN or +inf (or a row of only -inf); check the model and its inputs.")
        noise = torch.empty(x.shape, dtype=torch.float64, device=noise_device)
        for j in range(k):
            noise.exponential_(generator=generator)
            race = noise.to(device).clamp_min_(tiny).log_().neg_().add_(x)  # logit - log E
            choice = race.argmax(dim=-1)
            del race
            tokens[j, start:start + step] = choice
            logp[j, start:start + step] = x.gather(-1, choice[:, None]).squeeze(-1) - lse
    return tokens, logp


def sample_categorical(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One float64 draw from softmax(logits) along the last dim: Float[..., V] -> Long[...]."""
    flat = logits.reshape(-1, logits.shape[-1])
    rows = torch.arange(flat.shape[0], device=logits.device)
    return draw_rows(flat, rows, 1, generator)[0][0].view(logits.shape[:-1])


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering: Float[..., V] -> Float64[..., V] with -inf outside the smallest set of
    most probable tokens whose probability reaches `top_p` (the most probable token is always kept)."""
    logits = logits.double()
    if top_p >= 1.0:
        return logits
    probs, order = torch.softmax(logits, dim=-1).sort(dim=-1, descending=True)
    before = probs.cumsum(dim=-1) - probs  # mass of the tokens ranked above each token
    drop_sorted = before >= top_p
    drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def row_logprobs(logits: torch.Tensor, rows: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits[r])[token] in nats for each selected row: logits Float[N, V], rows Long[M],
    tokens Long[M] -> Float64[M], in chunks of `rows_per_chunk(V)` rows."""
    out = torch.empty(rows.numel(), dtype=torch.float64, device=logits.device)
    step = rows_per_chunk(logits.shape[-1])
    for start in range(0, rows.numel(), step):
        x = logits.index_select(0, rows[start:start + step]).double()
        out[start:start + step] = (x.gather(-1, tokens[start:start + step, None]).squeeze(-1)
                                   - torch.logsumexp(x, dim=-1))
    return out


def inverse_cdf(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Draws from softmax(logits[m]) by inverse CDF in float64: logits Float[M, V], u Float64[M] or
    [M, K] uniforms in [0, 1) (K draws per row) -> Long of u's shape, each the first v with
    `cdf_v >= (1 - u) * cdf_{V-1}` (tokens of probability 0 are never drawn). One uniform per draw, so
    callers can draw every uniform of a run up front. Rows are taken in chunks of bounded memory."""
    draws = u.reshape(u.shape[0], -1)
    out = torch.empty(draws.shape, dtype=torch.long, device=logits.device)
    step = rows_per_chunk(logits.shape[-1])
    for start in range(0, draws.shape[0], step):
        cdf = torch.softmax(logits[start:start + step].double(), dim=-1).cumsum(dim=-1)
        require(bool(torch.isfinite(cdf[:, -1]).all()),
                "the model returned logits with NaN or +inf (or a row of only -inf); check the model and its inputs.")
        target = (1.0 - draws[start:start + step].to(cdf.device, torch.float64)) * cdf[:, -1:]
        out[start:start + step] = torch.searchsorted(cdf, target, right=False).clamp_max_(logits.shape[-1] - 1)
    return out.view(u.shape)
