"""Log-likelihood of a continuation given a context, for diffusion and causal models.

Each request is a pair (context, continuation) of token-id lists; the model reads
`prefix + context + continuation` (prefix: e.g. `[EOS]` for models trained on EOS-wrapped rows).

- Causal LM (`token_logprobs`, callable for logits): the exact `sum_i log p(c_i | prefix, context, c_<i)`.
  Greedy: every continuation token is the argmax of its next-token distribution.
- Denoiser (`model(xt, t)`): a Monte Carlo estimate of the MDLM evidence lower bound of
  `log p(continuation | context)`. The context (and prefix) is clamped, never masked. The bound is
  `E_t E_{M ~ Bernoulli(t)^n} [(1/t) sum_{i in M} log mu^i(c_i | xt)]` over the n continuation
  tokens; integrating t out given |M| = k gives the same value as
  `E_{k ~ U{1..n}} E_{|M| = k} [(n/k) sum_{i in M} log mu^i(c_i | xt)]` (as in LLaDA), which has no
  empty masks and bounded weights, so far less variance. Each of `num_mc` antithetic times t sets
  `k = ceil(t n)` (uniform on 1..n), k continuation positions are masked uniformly at random, and the
  model is called at time t. With `seq_len`, the sequence is right-padded with mask tokens that stay
  masked and are never scored, so the model sees its training length and the bound is on the
  continuation as the start of a longer text. With exact posterior marginals the bound is tight: its
  expectation is the exact `log p(continuation | context)`.
  Greedy: with the whole continuation masked (t = 1), every continuation token is the per-position
  argmax of `mu^i(. | context)` (one-step greedy decoding from a fully masked continuation).
- Absorbing score model (SEDD, it has `graph`): the same estimator of its score-entropy bound. Through
  `ScoreDenoiser` (logits `log m^i = log s^i + log(e^sigma - 1)` at `sigma = -log(1 - t)`), the bound's
  integrand at a masked position is `(1/t) (M^i - 1 - log m^i(c_i))` with `M^i = sum_v m^i(v)`
  (docs/math.md, Score entropy): `-log mu^i(c_i)` with the normalisation left to the model. So
  each masked token adds `log m^i(c_i) + 1 - M^i` in place of `log mu^i(c_i)`; for scores that sum to
  the posterior (`M^i = 1`) both are the same. Greedy: the argmax of `m^i`. The uniform graph is refused.
- The k-form equals the bound in expectation when the model's output (`m^i`, `mu^i`) does not depend on t
  (`time_conditioned = False`). A time-conditioned model is called at the t that set k, while the bound
  weighs each k's masks at every t by `t^k (1 - t)^(n - k)`: for such a model the estimate is not the
  bound in expectation, and differs from it as much as the model's output varies with t at fixed xt.

Randomness: each request's times and masks come from a generator seeded with `seed` and a checksum
of the request's tokens, so results do not depend on request order or batching.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import torch

from edlm.diffusion.schedules import antithetic_times
from edlm.diffusion.sedd.adapter import ScoreDenoiser
from edlm.diffusion.sedd.protocol import is_score_model, score_model_parts
from edlm.errors import require
from edlm.util.device import module_device


@dataclass
class ConditionalScore:
    """logprob: log p(continuation | context) in nats (exact, or the Monte Carlo ELBO, a lower bound in
    expectation); stderr: its Monte Carlo standard error (0 when exact); greedy: see the module docstring."""

    logprob: float
    stderr: float
    greedy: bool


def _check_length(n: int, limit: int | None, what: str) -> None:
    require(limit is None or n <= limit, f"a request needs {n} positions ({what}) but the model reads at most "
            f"{limit}; shorten the continuation or use a model with a longer context.")


def truncate(prefix: list[int], context: list[int], continuation: list[int], limit: int | None) -> list[int]:
    """The context cut from the left so that prefix + context + continuation fits in `limit` positions."""
    _check_length(len(prefix) + len(continuation), limit, "prefix and continuation")
    if limit is None:
        return context
    room = limit - len(prefix) - len(continuation)
    return context[len(context) - room:] if room < len(context) else context


@torch.no_grad()
def causal_scores(lm, pairs: list[tuple[list[int], list[int]]], *, prefix: list[int] = (), max_len: int | None = None,
                  batch_size: int = 16) -> list[ConditionalScore]:
    """Exact conditional log-likelihoods and greedy checks under a causal LM (module docstring)."""
    prefix = list(prefix)
    seqs = []
    for context, continuation in pairs:
        context = truncate(prefix, list(context), list(continuation), max_len)
        seqs.append((prefix + context, list(continuation)))
    order = sorted(range(len(seqs)), key=lambda i: -sum(map(len, seqs[i])))
    out: list[ConditionalScore | None] = [None] * len(seqs)
    device = module_device(lm)
    for start in range(0, len(order), batch_size):
        idx = [i for i in order[start:start + batch_size] if seqs[i][1]]
        for i in order[start:start + batch_size]:
            if not seqs[i][1]:
                out[i] = ConditionalScore(0.0, 0.0, True)
        if not idx:
            continue
        width = max(sum(map(len, seqs[i])) for i in idx)
        x = torch.zeros(len(idx), width, dtype=torch.long)
        for r, i in enumerate(idx):
            row = seqs[i][0] + seqs[i][1]
            x[r, : len(row)] = torch.tensor(row)
        logits = lm(x.to(device))  # [B, L, V]: logits of x_j given x_<j
        for r, i in enumerate(idx):
            begin, cont = len(seqs[i][0]), torch.tensor(seqs[i][1])
            logp = torch.log_softmax(logits[r, begin: begin + len(cont)].double(), dim=-1).cpu()
            out[i] = ConditionalScore(float(logp.gather(-1, cont[:, None]).sum()), 0.0,
                                      bool((logp.argmax(-1) == cont).all()))
    return out


def _generator(seed: int, context: list[int], continuation: list[int]) -> torch.Generator:
    key = zlib.crc32(repr((context, continuation)).encode())
    return torch.Generator().manual_seed((seed * 1_000_003 + key) % (2 ** 63))


@dataclass
class _Block:
    """The denoiser inputs of one request: xt Long[R, W] at times t Float[R] (R = num_mc + 1; the
    last row is the greedy row with the whole continuation masked). Positions [begin, begin + n) hold
    the continuation `target` Long[n]; masked Bool[R, n] marks the masked ones; weight Float64[R] = n / k."""

    request: int
    xt: torch.Tensor
    t: torch.Tensor
    weight: torch.Tensor
    begin: int
    target: torch.Tensor
    masked: torch.Tensor


@torch.no_grad()
def diffusion_scores(denoiser, pairs: list[tuple[list[int], list[int]]], *, num_mc: int = 32,
                     prefix: list[int] = (), seq_len: int | None = None, batch_size: int = 64,
                     seed: int = 0) -> list[ConditionalScore]:
    """Monte Carlo ELBO of each continuation given its context, and the greedy check (module docstring).

    denoiser: a denoiser, or an absorbing score model (its score-entropy bound). batch_size counts
    model rows: each request takes num_mc + 1 rows (one per time, one greedy).
    """
    require(num_mc >= 1, f"num_mc={num_mc} must be at least 1.")
    normalized = not is_score_model(denoiser)
    if not normalized:
        require(score_model_parts(denoiser)[0].absorbing, "the continuation bound of a score model is implemented "
                "for the absorbing graph only; pass a SEDD model with graph 'absorb'.")
        denoiser = ScoreDenoiser(denoiser)
    mask_id, prefix = denoiser.vocab_size, list(prefix)
    results: list[ConditionalScore | None] = [None] * len(pairs)
    per_chunk = max(1, batch_size // (num_mc + 1))
    for start in range(0, len(pairs), per_chunk):
        blocks = []
        for request in range(start, min(start + per_chunk, len(pairs))):
            context, continuation = list(pairs[request][0]), list(pairs[request][1])
            if not continuation:
                results[request] = ConditionalScore(0.0, 0.0, True)
                continue
            context = truncate(prefix, context, continuation, seq_len)
            gen = _generator(seed, context, continuation)
            blocks.append(_make_block(request, prefix + context, continuation, num_mc, seq_len, mask_id, gen))
        for block, (token_logp, argmax_ok) in zip(blocks, _block_outputs(denoiser, blocks, batch_size, normalized)):
            values = (torch.where(block.masked, token_logp, 0.0).sum(-1) * block.weight)[:num_mc]
            stderr = float(values.std() / math.sqrt(num_mc)) if num_mc > 1 else float("nan")
            results[block.request] = ConditionalScore(float(values.mean()), stderr, bool(argmax_ok[-1].all()))
    return results


def _make_block(request: int, head: list[int], continuation: list[int], num_mc: int, seq_len: int | None,
                mask_id: int, gen: torch.Generator) -> _Block:
    """num_mc rows with k = ceil(t n) continuation tokens masked at antithetic times t, plus the greedy row."""
    n, begin = len(continuation), len(head)
    times = antithetic_times(num_mc, gen).double()
    counts = (times * n).ceil().clamp(1, n)  # k, uniform on 1..n
    ranks = torch.rand(num_mc, n, generator=gen, dtype=torch.float64).argsort(-1).argsort(-1)
    masked = torch.cat([ranks < counts[:, None], torch.ones(1, n, dtype=torch.bool)])  # k positions at random
    target = torch.tensor(continuation, dtype=torch.long)
    xt = torch.full((num_mc + 1, seq_len if seq_len is not None else begin + n), mask_id, dtype=torch.long)
    xt[:, :begin] = torch.tensor(head, dtype=torch.long)
    xt[:, begin:begin + n] = torch.where(masked, mask_id, target)
    weight = torch.cat([n / counts, torch.ones(1, dtype=torch.float64)])
    return _Block(request, xt, torch.cat([times, torch.ones(1, dtype=torch.float64)]), weight, begin, target, masked)


def token_terms(logits: torch.Tensor, normalized: bool) -> torch.Tensor:
    """Float64 per-token terms of the bound for every candidate id: logits Float[..., V] -> Float64[..., V],
    `log_softmax(logits)` (normalized), else `logits + 1 - sum(exp(logits))` (a score model's, module docstring)."""
    logits = logits.double()
    return torch.log_softmax(logits, -1) if normalized else logits + 1 - logits.exp().sum(-1, keepdim=True)


def _block_outputs(denoiser, blocks: list[_Block], batch_size: int,
                   normalized: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per block: (float64 token terms (`token_terms`) of the targets [R, n], argmax == target [R, n]). Rows of
    equal length run through the denoiser together, batch_size rows at a time."""
    device = module_device(denoiser)
    outputs: list = [None] * len(blocks)
    by_width: dict[int, list[int]] = {}
    for i, block in enumerate(blocks):
        by_width.setdefault(block.xt.shape[1], []).append(i)
    for members in by_width.values():
        xt = torch.cat([blocks[i].xt for i in members])
        t = torch.cat([blocks[i].t for i in members]).float()
        owner = torch.cat([torch.full((blocks[i].xt.shape[0],), i) for i in members])
        parts: dict[int, list] = {i: [] for i in members}
        for x, s, who in zip(xt.split(batch_size), t.split(batch_size), owner.split(batch_size)):
            out = denoiser(x.to(device), s.to(device))
            for i in who.unique().tolist():
                block = blocks[i]
                span = out[who.to(out.device) == i, block.begin: block.begin + block.target.numel()]
                logp = token_terms(span, normalized).cpu()
                parts[i].append((logp.gather(-1, block.target.expand(logp.shape[0], -1)[..., None]).squeeze(-1),
                                 logp.argmax(-1) == block.target))
        for i in members:
            outputs[i] = (torch.cat([p[0] for p in parts[i]]), torch.cat([p[1] for p in parts[i]]))
    return outputs
