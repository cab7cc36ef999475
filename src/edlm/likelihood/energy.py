"""Likelihood numbers for a denoiser corrected by an energy (EDLM), behind `edlm.nelbo(..., energy=...)`.

The corrected kernel is `p(x0 | xt) = mu(x0 | xt) exp(-E(x0, xt, t)) / Z(xt)` with the partition
function `Z(xt) = E_{x ~ mu(.|xt)}[exp(-E(x, xt, t))]`, estimated from `num_z` proposal draws by
Theorem 1 of the EDLM paper (`log_z_low`, `log_z_high`). Times t ~ U(0, 1] (antithetic, `num_t` per
sequence) and xt masks each token with probability t, as in `edlm.likelihood.nelbo.mdlm_nelbo`.

Three estimators (`estimator=`):
- "marginal" (kind "estimate", the default): the continuous-time NELBO needs, per masked position,
  the corrected kernel's *marginal* (docs/pitfalls.md, item 7). For each (t, xt) one masked position i is drawn
  uniformly and `-log p(x0^i | xt) = -log mu^i(x0^i) - log Z_i + log Z` is estimated, where `Z_i` is
  the partition function with position i clamped to x0^i; `log Z_i` takes the low estimator and
  `log Z` the high one (the conservative side of each), and the term is
  `(number of masked positions) * that / t`. The Z and Z_i draws share their random numbers
  (position i is overwritten by x0^i). It is a Monte Carlo estimate with biased log Z's: not a bound.
- "rao_blackwell" (kind "estimate"): the same per-token-marginal NELBO, but the marginal
  `p(x^i = v | xt)` comes from self-normalised importance sampling over `num_z` proposal draws
  z_j, Rao-Blackwellised at i: every draw is scored with each of the V values at i,
  `w_j(v) = mu^i(v) exp(-E(z_j with z_j^i = v))`, and `p(x^i = v | xt) ~ sum_j w_j(v) / sum_j,v' w_j(v')`.
  The ratio is consistent as num_z grows (no log Z is needed: Z cancels) and always a distribution
  over v, so one bad draw cannot send the term to infinity. `num_positions` masked positions per
  (t, xt) share the draws; each costs num_z * V energy evaluations, so it is for small
  vocabularies (text8: V = 27). With the AR energy and exact marginals its expectation is the AR
  model's exact NLL (docs/math.md, Likelihood under an energy: eq. 12-13 and the per-token marginal).
- "paper_eq13" (kind "paper_eq13"): the paper's eq. 12-13, for reproduction only. It puts the
  *joint* `-log p(x0_masked | xt) = -log mu(x0 | xt) + E(x0, xt, t) + log Z(xt)` (log Z: high
  estimator) in place of the sum of marginals. For a correlated kernel this can fall below the true
  NLL (two perfectly correlated fair bits: 0.5 log 2 instead of log 2), so it is never a bound.
  With the carry-over AR energy `Z = 1` exactly (`energy.unit_partition`), no log Z is estimated,
  and the term is `(1/t) sum_{i masked} -log p_AR(x0^i | x0^{<i})`, whose expectation over xt is
  exactly the AR model's own NLL: "paper_eq13" with carry-over just reproduces the AR NLL.
"""

from __future__ import annotations

import math

import torch

from edlm.diffusion.process import forward_mask
from edlm.diffusion.schedules import LogLinearSchedule, antithetic_times
from edlm.energy.base import check_compatible
from edlm.errors import require
from edlm.likelihood.result import NelboResult
from edlm.sampling.categorical import rows_per_chunk
from edlm.util.device import module_device, uniform
from edlm.util.progress import progress_bar
from edlm.sampling.importance import draw_candidates

ESTIMATORS = {"marginal": "estimate", "rao_blackwell": "estimate", "paper_eq13": "paper_eq13"}
ENERGY_CALL_ROWS = 1024  # sequences per energy call when an estimator scores more than that at once


def log_z_low(neg_energy: torch.Tensor) -> torch.Tensor:
    """Theorem 1's low estimator `log Z_n = logmeanexp(a_1..a_n)` over the last dim, with
    `a_j = -E(x_j)` for proposal draws x_j: Float[..., n] -> Float64[...]. Biased low (Jensen)."""
    a = neg_energy.double()
    return torch.logsumexp(a, dim=-1) - math.log(a.shape[-1])


def log_z_high(neg_energy: torch.Tensor) -> torch.Tensor:
    """Theorem 1's high estimator `(2n-1) log Z_n - 2(n-1) log Z_{n-1}`: Float[..., n] -> Float64[...].

    `log Z_{n-1}` is the leave-one-out average `mean_j logmeanexp(a_{-j})`, computed stably from
    prefix and suffix `logcumsumexp`. Its bias is about +c/n where the low estimator's is -c/n, so it
    is the conservative (upper) side for a NELBO that adds log Z. Needs n >= 2; +inf where a
    leave-one-out set has no finite term.
    """
    a = neg_energy.double()
    n = a.shape[-1]
    require(n >= 2, f"the high log Z estimator needs n >= 2 proposal draws, got n={n}; raise num_z.")
    pad = torch.full_like(a[..., :1], float("-inf"))
    before = torch.cat([pad, torch.logcumsumexp(a, dim=-1)[..., :-1]], dim=-1)  # lse of a_<j
    after = torch.cat([torch.logcumsumexp(a.flip(-1), dim=-1).flip(-1)[..., 1:], pad], dim=-1)  # lse of a_>j
    loo = torch.logaddexp(before, after) - math.log(n - 1)  # [..., n]
    high = (2 * n - 1) * log_z_low(a) - 2 * (n - 1) * loo.mean(dim=-1)
    return torch.where(torch.isfinite(loo).all(dim=-1), high, torch.full_like(high, float("inf")))


def _row_logsumexp(logits: torch.Tensor) -> torch.Tensor:
    """logsumexp over the vocabulary in float64, chunk by chunk: Float[B, L, V] -> Float64[B, L]."""
    flat = logits.reshape(-1, logits.shape[-1])
    lse = [torch.logsumexp(chunk.double(), dim=-1) for chunk in flat.split(rows_per_chunk(logits.shape[-1]))]
    return torch.cat(lse).view(logits.shape[:-1])


def _energy_terms(logits, x0, xt, t, energy, num_z, estimator, generator, num_positions) -> torch.Tensor:
    """The NELBO term of each (t, xt) row, Float64[C], for x0, xt Long[C, L], t Float[C], logits Float[C, L, V]."""
    c, length = x0.shape
    mask_id = logits.shape[-1]
    masked = xt == mask_id
    n_masked = masked.sum(dim=1)
    if estimator == "rao_blackwell":
        positions, valid = choose_masked_positions(masked, min(num_positions, length), generator)
        nll = rao_blackwell_nll(logits, x0, xt, positions, energy, t, num_z, generator)
        mean = torch.where(valid, nll, 0.0).sum(dim=1) / valid.sum(dim=1).clamp_min(1)
        return n_masked.double() * mean / t.double()
    lse = _row_logsumexp(logits)  # [C, L]
    logmu_x0 = logits.gather(-1, x0[..., None]).squeeze(-1).double() - lse  # log mu^i(x0^i), [C, L]
    z, z_logp = draw_candidates(logits, xt, mask_id, num_z, generator)  # [C, n, L], [C, n]
    unit = getattr(energy, "unit_partition", False)
    if estimator == "paper_eq13":
        x0_logp = torch.where(masked, logmu_x0, torch.zeros_like(logmu_x0)).sum(dim=1)
        batch = torch.cat([x0[:, None], z], dim=1)  # [C, 1 + n, L], batch-major: x0 first
        logp = torch.cat([x0_logp[:, None], z_logp], dim=1)
        e = _score(energy, batch, logp, xt, t)
        log_z = torch.zeros_like(x0_logp) if unit else log_z_high(-e[:, 1:])
        nll = -x0_logp + e[:, 0] + log_z
    else:
        u = uniform((c,), generator, xt.device)
        rank = (u * n_masked).long().clamp_max(n_masked - 1)  # uniform over the masked positions
        pos = (masked & (masked.cumsum(dim=1) - 1 == rank[:, None])).long().argmax(dim=1)  # [C]
        rows = torch.arange(c, device=xt.device)
        logits_i, lse_i, x0_i = logits[rows, pos], lse[rows, pos], x0[rows, pos]  # [C, V], [C], [C]
        z_i = z[rows, :, pos]  # [C, n]
        clamped = z.clone()
        clamped[rows, :, pos] = x0_i[:, None]
        logmu_z_i = logits_i.gather(-1, z_i).double() - lse_i[:, None]
        clamped_logp = z_logp - logmu_z_i + logmu_x0[rows, pos][:, None]
        e = _score(energy, torch.cat([z, clamped], dim=1), torch.cat([z_logp, clamped_logp], dim=1), xt, t)
        log_z = torch.zeros_like(lse_i) if unit else log_z_high(-e[:, :num_z])  # conservative: high
        log_z_i = log_z_low(-e[:, num_z:])  # conservative: low
        nll = n_masked.double() * -(logmu_x0[rows, pos] + log_z_i - log_z)
    return torch.where(n_masked > 0, nll / t.double(), torch.zeros_like(nll))


def choose_masked_positions(masked: torch.Tensor, k: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """k masked positions per row, uniformly without replacement: masked Bool[C, L] -> positions Long[C, k]
    and valid Bool[C, k] (False for the slots beyond a row's number of masked positions)."""
    keys = torch.where(masked, uniform(masked.shape, generator, masked.device), torch.full(masked.shape, -1.0,
                                                                                            device=masked.device))
    positions = keys.topk(k, dim=1).indices
    return positions, masked.gather(1, positions)


def rao_blackwell_nll(logits, x0, xt, positions, energy, t, num_z, generator) -> torch.Tensor:
    """-log p(x0^i | xt) at `positions` by Rao-Blackwellised self-normalised importance sampling (module doc).

    logits: Float[C, L, V] denoiser output at xt: Long[C, L]; x0: Long[C, L]; positions: Long[C, k] (masked
    in xt); t: Float[C]. The num_z proposal draws of a row are shared by its k positions; the energy
    scores C * k * num_z * V sequences. Returns Float64[C, k], nats.
    """
    c, length, vocab = logits.shape
    k = positions.shape[1]
    logmu = torch.log_softmax(logits.double(), dim=-1)  # [C, L, V]
    logmu_at = logmu.gather(1, positions[..., None].expand(c, k, vocab))  # [C, k, V]: log mu^i(.)
    z, z_logp = draw_candidates(logits, xt, logits.shape[-1], num_z, generator)  # [C, n, L], [C, n]
    z_at = z.gather(2, positions[:, None, :].expand(c, num_z, k)).transpose(1, 2)  # [C, k, n]: z_j^i
    values = torch.arange(vocab, device=xt.device)
    batch = z[:, None, :, None, :].repeat(1, k, 1, vocab, 1)  # [C, k, n, V, L]
    batch.scatter_(-1, positions[:, :, None, None, None].expand(c, k, num_z, vocab, 1),
                   values[None, None, None, :, None].expand(c, k, num_z, vocab, 1))
    logp = z_logp[:, None, :, None] - logmu_at.gather(2, z_at)[..., None] + logmu_at[:, :, None, :]  # [C, k, n, V]
    e = _score(energy, batch.view(c, -1, length), logp.reshape(c, -1), xt, t).view(c, k, num_z, vocab)
    log_w = logmu_at[:, :, None, :] - e  # log w_j(v)
    target = x0.gather(1, positions)  # [C, k]
    log_num = torch.logsumexp(log_w.gather(3, target[:, :, None, None].expand(c, k, num_z, 1)).squeeze(3), dim=2)
    return torch.logsumexp(log_w.reshape(c, k, -1), dim=2) - log_num


def _score(energy, batch: torch.Tensor, logp: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Energies Float64[C, m] of batch Long[C, m, L] (proposal log-probs logp Float64[C, m]), in calls of
    at most ENERGY_CALL_ROWS sequences."""
    c, m, length = batch.shape
    flat, flat_logp = batch.reshape(c * m, length), logp.reshape(-1)
    rows = torch.arange(c, device=xt.device).repeat_interleave(m)  # the (t, xt) row of each sequence
    values = []
    for start in range(0, c * m, ENERGY_CALL_ROWS):
        span = slice(start, min(start + ENERGY_CALL_ROWS, c * m))
        e = energy(flat[span], xt[rows[span]], t[rows[span]], flat_logp[span])
        require(tuple(e.shape) == (span.stop - span.start,), f"the energy returned shape {tuple(e.shape)} for "
                f"{span.stop - span.start} sequences; return one value per sequence.")
        values.append(e.to(device=xt.device, dtype=torch.float64))
    return torch.cat(values).view(c, m)


@torch.no_grad()
def energy_nelbo(model, x0: torch.Tensor, energy, *, num_t: int = 16, num_z: int = 16,
                 generator: torch.Generator | None = None, batch_size: int | None = None,
                 estimator: str = "marginal", num_positions: int = 1, progress: bool = False) -> NelboResult:
    """NELBO-type numbers for x0: Long[B, L] under denoiser `model` corrected by `energy` (nats per sequence).

    estimator: "marginal" or "rao_blackwell" (kind "estimate"), or "paper_eq13" (kind "paper_eq13"); see
    the module doc. num_t: antithetic times per sequence; num_z >= 2: proposal draws per log Z estimate
    (per marginal for "rao_blackwell"). num_positions: masked positions scored per (t, xt) by
    "rao_blackwell" (they share the draws; each costs num_z * V energy evaluations).
    batch_size: (sequence, t) rows per denoiser call; each such chunk has the energy score
    chunk * (num_z + 1) ("paper_eq13"), chunk * 2 * num_z ("marginal") or chunk * num_positions * num_z * V
    ("rao_blackwell") sequences, in calls of at most ENERGY_CALL_ROWS. progress: report
    the chunks done (`edlm.util.progress`).
    """
    require(estimator in ESTIMATORS, f"estimator={estimator!r} is unknown; use one of {sorted(ESTIMATORS)}.")
    require(num_t >= 1, f"num_t={num_t} must be at least 1.")
    require(num_z >= 2, f"num_z={num_z} must be at least 2 (the high log Z estimator leaves one draw out).")
    require(num_positions >= 1, f"num_positions={num_positions} must be at least 1.")
    require(batch_size is None or batch_size >= 1, f"batch_size={batch_size} must be None or >= 1.")
    require(not hasattr(model, "token_logprobs"),
            f"{type(model).__name__} is a causal LM; an energy corrects a denoiser, so pass a denoiser as the model.")
    check_compatible(model, energy)
    b, length = x0.shape
    mask_id = model.vocab_size
    device = module_device(model)
    schedule = LogLinearSchedule(eps=0.0)
    times = torch.stack([antithetic_times(num_t, generator) for _ in range(b)])  # [B, num_t]
    flat_x0 = x0.to(device).repeat_interleave(num_t, dim=0)
    flat_t = times.reshape(-1).to(device)
    step = batch_size or flat_x0.shape[0]
    values = []
    chunks = progress_bar(list(zip(flat_x0.split(step), flat_t.split(step))), enabled=progress, desc="nll",
                          unit="batch")
    for x_chunk, t_chunk in chunks:
        xt = forward_mask(x_chunk, schedule.alpha(t_chunk), mask_id, generator)
        logits = model(xt, t_chunk)
        require(tuple(logits.shape) == (*xt.shape, mask_id),
                f"the denoiser returned shape {tuple(logits.shape)} for input {tuple(xt.shape)}; "
                f"return logits of shape [B, L, V] with V = vocab_size = {mask_id}.")
        values.append(_energy_terms(logits, x_chunk, xt, t_chunk, energy, num_z, estimator, generator,
                                    num_positions))
    per_t = torch.cat(values).view(b, num_t).cpu()
    stderr = per_t.std(dim=1) / math.sqrt(num_t) if num_t > 1 else torch.full((b,), float("nan"), dtype=torch.float64)
    return NelboResult(per_t.mean(dim=1), stderr, ESTIMATORS[estimator], length, num_t)
