"""`edlm.sample` for a score model: SEDD's reverse process with the analytic or the Euler predictor.

Time grid: `t_j = 1 - j (1 - T_END) / steps`, j = 0..steps. Predictor step j goes from t_j to t_{j+1}
with scores at sigma = sigma_bar(t_j); after the last one the denoising step goes from
sigma_bar(T_END) to 0. So a sequence takes at most steps + 1 score-model calls. The state starts at
the graph's limit (all absorbed, or uniform ids). Per position x (every position moves independently
given the same scores s = exp(log scores), with s_x := 1):

- analytic (Tweedie tau-leaping): `p(y) ∝ [s exp(-dsigma R)]_y * P_dsigma[y, x]`, dsigma = sigma_t - sigma_s
  (`Graph.staggered` times `Graph.transition_into`); exact for one token with exact scores.
- euler: `p(y) = h R[y, x] s_y` for y != x and `1 - sum` at x, h = sigma'(t_j) (t_j - t_{j+1}).
- denoising: the analytic step to sigma = 0; on the absorbing graph the absorbing id is excluded,
  so no position stays absorbed.

Negative entries (from inexact scores) are set to 0 and the rest renormalised; draws are float64
(`edlm.sampling.categorical.draw_rows`) from the explicit generator. Fixed positions (prefix, clamp:
SEDD's projection) hold their tokens from the start and are never moved. On the absorbing graph
that is exact conditioning (visible tokens never move); on the uniform graph it is SEDD's heuristic
(the model sees clean tokens where the process would have noisy ones).

Forward calls (when a step may skip one): a score model depends on sigma, so an output at one step is
in general not valid at the next even if the sequence did not change, and unlike MDLM whether a
position moves depends on the scores, so it cannot be decided before the call. Two savings are exact:
(1) on the absorbing graph a sequence with no absorbed free position never changes again and is not
evaluated; (2) on the absorbing graph a model with `time_conditioned = False` promises that its log
scores at absorbed positions are `g(xt) - log(e^sigma - 1)` with g free of sigma (the form of the
exact scores, `edlm.diffusion.sedd.DenoiserScores` over a time-free denoiser, or SEDD's
`scale_by_sigma` over a sigma-free network), so the last output of an unchanged sequence is reused,
shifted to the new sigma: each sequence is evaluated once per distinct xt. On the uniform graph
every ratio depends on sigma, and every sequence is evaluated at every step.
"""

from __future__ import annotations

from numbers import Integral

import torch

from edlm.diffusion.sedd.protocol import log_scores, score_model_parts
from edlm.errors import require
from edlm.sampling.categorical import draw_rows, rows_per_chunk
from edlm.sampling.conditioning import fixed_tokens
from edlm.sampling.mdlm import SampleStats
from edlm.util.device import module_device
from edlm.util.numerics import log_expm1
from edlm.util.progress import progress_bar

PREDICTORS = ("analytic", "euler")
OPTIONS = ("predictor", "prefix", "clamp", "generator", "batch_size", "return_stats", "progress")
T_END = 1e-5  # the predictor steps end at t = T_END (SEDD's sampling eps); the denoising step goes to sigma = 0


def check_options(options: dict) -> None:
    """Refuse options of the MDLM sampler that SEDD's samplers do not take (names in `options`)."""
    extra = sorted(set(options) - set(OPTIONS))
    require(not extra, f"{', '.join(extra)} apply to masked diffusion denoisers only (and to an absorbing score "
            f"model with energy=); without an energy a score model takes {', '.join(OPTIONS)}.")


@torch.no_grad()
def sample(score_model, num_samples: int, seq_len: int, steps: int, *, predictor: str = "analytic", prefix=None,
           clamp=None, generator: torch.Generator | None = None, batch_size: int | None = None,
           return_stats: bool = False, progress: bool = False):
    """Sample Long[num_samples, seq_len] data ids from a score model (docs/contracts.md, Score model).

    steps: predictor steps (plus the denoising step). predictor: "analytic" or "euler".
    prefix: Long[P] or Long[num_samples, P] ids fixed at positions 0..P-1. clamp: Long[seq_len] or
    Long[num_samples, seq_len] ids fixed at arbitrary positions, -1 at free positions.
    generator: the source of every random number; batch_size: sequences per chunk (default all).
    return_stats: also return a `SampleStats`: times Float64[steps + 1] (the t of each step; the last is
    the denoising step), revealed Long[num_samples, steps + 1] the positions each step changed, calls
    every score-model call as ("denoiser", rows); ess is NaN and remasked 0 throughout.
    progress: a progress bar over steps.
    """
    require(predictor in PREDICTORS, f"predictor={predictor!r} is unknown; use one of {PREDICTORS}.")
    require(isinstance(num_samples, Integral) and num_samples >= 1,
            f"num_samples={num_samples} must be an integer >= 1.")
    require(isinstance(seq_len, Integral) and seq_len >= 1, f"seq_len={seq_len} must be an integer >= 1.")
    require(isinstance(steps, Integral) and steps >= 1, f"steps={steps} must be an integer >= 1.")
    require(batch_size is None or (isinstance(batch_size, Integral) and batch_size >= 1),
            f"batch_size={batch_size} must be None or an integer >= 1.")
    graph, noise = score_model_parts(score_model)
    device = module_device(score_model)
    fixed = fixed_tokens(num_samples, seq_len, graph.vocab_size, prefix, clamp).to(device)
    times = torch.tensor([1 - j * (1 - T_END) / steps for j in range(steps)] + [T_END], dtype=torch.float64)
    n = steps + 1
    counts = torch.zeros((num_samples, n), dtype=torch.long)
    stats = SampleStats(times, torch.full((num_samples, n), float("nan"), dtype=torch.float64), counts, counts.clone())
    reuse = graph.absorbing and getattr(score_model, "time_conditioned", True) is False
    chunk = batch_size or num_samples
    out = []
    with progress_bar(total=n * num_samples, enabled=progress, desc="sample", unit="seq-step") as bar:
        for start in range(0, num_samples, chunk):
            run = _Run(score_model, graph, noise, predictor, reuse, generator, stats, start, bar)
            out.append(run.chunk(fixed[start:start + chunk], times))
    samples = torch.cat(out)
    return (samples, stats) if return_stats else samples


class _Run:
    """The reverse process of one chunk of sequences (module docstring)."""

    def __init__(self, model, graph, noise, predictor, reuse, generator, stats, offset, bar) -> None:
        self.model, self.graph, self.noise, self.predictor = model, graph, noise, predictor
        self.reuse, self.generator, self.stats, self.offset, self.bar = reuse, generator, stats, offset, bar

    def chunk(self, fixed: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """fixed: Long[B, L] (-1 = free) -> samples Long[B, L]."""
        graph = self.graph
        x = torch.where(fixed >= 0, fixed, graph.limit(fixed.shape, self.generator, fixed.device))
        free = fixed < 0
        b = x.shape[0]
        sigmas = self.noise.total(times)
        cache = None  # Float[B, L, N]: g = log scores + log(e^sigma - 1) of each sequence's last evaluated xt
        stale = torch.ones(b, dtype=torch.bool, device=x.device)
        for j in range(len(times)):
            movable = free & (x == graph.mask_id) if graph.absorbing else free
            active = movable.any(dim=1).nonzero().squeeze(1)
            self.bar.update(b)
            if active.numel() == 0:
                continue
            sigma = sigmas[j]
            if self.reuse:
                cache = self._refresh(cache, x, active[stale[active]], sigma)
                log_score = cache[active].double() - log_expm1(sigma)
            else:
                log_score = self._call(x[active], sigma)
            before = x[active]
            after = self._step(log_score, before, movable[active], j, times, sigmas)
            changed = after != before
            stale[active] = changed.any(dim=1)
            x[active] = after
            self.stats.revealed[self.offset + active.cpu(), j] = changed.sum(dim=1).cpu()
        return x

    def _call(self, xt: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The model's log scores Float[B', L, N] at xt: Long[B', L] and total noise sigma (a float64 scalar)."""
        self.stats.calls.append(("denoiser", xt.shape[0]))
        return log_scores(self.model, self.graph, xt, sigma.float().expand(xt.shape[0]).to(xt.device))

    def _refresh(self, cache, x: torch.Tensor, rows: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Evaluate the sequences `rows` of x (changed since their last call) into the sigma-free cache."""
        if rows.numel() == 0:
            return cache
        out = self._call(x[rows], sigma)
        if cache is None:
            dtype = torch.promote_types(out.dtype, torch.float32)  # bf16 would round g too coarsely
            cache = torch.empty((x.shape[0], *out.shape[1:]), dtype=dtype, device=out.device)
        cache[rows] = (out.double() + log_expm1(sigma)).to(cache.dtype)
        return cache

    def _step(self, log_score, xt, movable, j, times, sigmas) -> torch.Tensor:
        """One step (j < steps: the predictor; j = steps: denoising) at the movable positions of xt: Long[B', L]."""
        graph = self.graph
        last = j == len(times) - 1
        vocab = graph.num_states
        rows = movable.reshape(-1).nonzero().squeeze(1)
        flat_x = xt.reshape(-1)
        tokens = torch.empty(rows.numel(), dtype=torch.long, device=xt.device)
        step = rows_per_chunk(vocab)
        for start in range(0, rows.numel(), step):
            part = rows[start:start + step]
            x_rows = flat_x[part]
            ls = log_score.reshape(-1, vocab).index_select(0, part).double()
            ls = ls.scatter(-1, x_rows[:, None], 0.0)  # s_x = 1
            if last or self.predictor == "analytic":
                dsigma = sigmas[j] if last else sigmas[j] - sigmas[j + 1]
                probs = self._tweedie(ls, x_rows, dsigma, drop_absorbing=last and graph.absorbing)
            else:
                h = float(self.noise.rate(times[j])) * float(times[j] - times[j + 1])
                probs = h * graph.rate_into(x_rows) * ls.exp()
                probs = probs.scatter(-1, x_rows[:, None], 1 - probs.sum(dim=-1, keepdim=True))
            logits = probs.clamp_min(0.0).log()
            tokens[start:start + step] = draw_rows(logits, torch.arange(part.numel(), device=logits.device), 1,
                                                   self.generator)[0][0]
        out = flat_x.clone()
        out[rows] = tokens
        return out.view_as(xt)

    def _tweedie(self, ls, x_rows, dsigma, drop_absorbing: bool) -> torch.Tensor:
        """Analytic step probabilities Float64[r, N] (unnormalised where scores are inexact)."""
        graph = self.graph
        into = graph.transition_into(x_rows, dsigma.to(ls.device))
        probs = torch.where(into > 0, graph.staggered(ls.exp(), dsigma.to(ls.device)) * into, 0.0)
        if drop_absorbing:
            probs[:, graph.mask_id] = 0.0
        return probs
