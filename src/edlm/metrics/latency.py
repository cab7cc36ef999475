"""Latency of generation: N sequences of length L from MDLM (T steps), a SEDD score model (T steps of its
analytic or Euler predictor, `edlm.sample(..., predictor=)`), EDLM (T steps, k candidates, window w, AR
energy) and an autoregressive model with a KV cache (as in the SEDD-vs-GPT-2 evaluation and Table 3 of the
EDLM paper).

Method. Each configuration runs `warmup` untimed times, then `repeats` timed times; every run
generates all N sequences (in chunks of `batch_size`) from a fresh generator seeded with
`seed + run index`, so the timed runs draw different samples. A run is timed as
`sync(); start = clock(); generate(); sync(); stop = clock()`, where `sync` waits for the device
(`torch.cuda.synchronize` on CUDA, `torch.mps.synchronize` on MPS, nothing on CPU): without it a GPU
run would be timed at kernel launch, not at completion. Reported: every timed run's seconds, their
median, min, max, quartiles (inclusive method), IQR, mean and sample std.

Forward passes per sample (from the samplers' own statistics, averaged over the timed runs):
- `denoiser`: full-length denoiser (or score-model) evaluations each sequence went through (`SampleStats`
  rows / N); at most T (T + 1 for SEDD, its denoising step), fewer because of the no-change cache.
- `energy`: full-length AR evaluations of EDLM candidates (k per importance-sampled step).
- `ar_kv_step`: incremental AR steps with the KV cache (one new token per step): L per sequence.
`calls_per_run` holds the batched calls (one call handles a whole chunk) per run.

Nothing here trains or checks sample quality: compare latencies only between rows of one result
(same machine, same process, side by side).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from edlm.errors import require
from edlm.util.device import module_device


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits until all queued work on `device` has finished (a no-op on CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


def count_host_syncs(run: Callable[[], object]) -> tuple[object, int]:
    """(run(), the number of times it made the host wait for the GPU), CUDA only.

    Counts the "synchronizing CUDA operation" warnings of torch's sync debug mode ("warn" during the
    call): `.item()`, `bool(tensor)`, `nonzero`, boolean-mask indexing, copies to the CPU, and so on.
    """
    import warnings

    require(torch.cuda.is_available(), "counting host-device synchronisations needs CUDA; run this on a GPU.")
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            out = run()
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    return out, sum("synchronizing CUDA operation" in str(w.message) for w in caught)


def time_runs(run: Callable[[int], object], repeats: int, warmup: int, *,
              sync: Callable[[], None] = lambda: None,
              clock: Callable[[], float] = time.perf_counter,
              tick: Callable[[], None] = lambda: None) -> tuple[list[float], list[object]]:
    """Call `run(i)` for i = 0 .. warmup + repeats - 1; the first `warmup` calls are not timed.

    Returns (seconds of each timed call, what each timed call returned). Each timed call is bracketed
    by `sync()` before the clock is read, on both sides; `tick()` runs after every call, untimed
    (a progress report).
    """
    require(isinstance(repeats, int) and repeats >= 1, f"repeats={repeats} must be an integer >= 1.")
    require(isinstance(warmup, int) and warmup >= 0, f"warmup={warmup} must be an integer >= 0.")
    seconds, outputs = [], []
    for i in range(warmup + repeats):
        if i < warmup:
            run(i)
            sync()
            tick()
            continue
        sync()
        start = clock()
        out = run(i)
        sync()
        seconds.append(clock() - start)
        outputs.append(out)
        tick()
    return seconds, outputs


@dataclass
class Spread:
    """Summary of repeated timings in seconds (std: sample standard deviation, NaN for one run)."""

    median: float
    min: float
    max: float
    q1: float
    q3: float
    iqr: float
    mean: float
    std: float

    @classmethod
    def of(cls, seconds: list[float]) -> "Spread":
        require(len(seconds) >= 1, "no timed runs to summarise; use repeats >= 1.")
        xs = [float(s) for s in seconds]
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else (xs[0],) * 3
        return cls(median=statistics.median(xs), min=min(xs), max=max(xs), q1=q1, q3=q3, iqr=q3 - q1,
                   mean=statistics.fmean(xs), std=statistics.stdev(xs) if len(xs) > 1 else math.nan)


@dataclass
class LatencyMeasurement:
    """Timed generation of `num_samples` sequences of `seq_len` tokens by one method.

    method: "mdlm", "sedd", "edlm" or "ar"; steps / k / window / tau / carry_over / predictor: None where
    they do not apply. seconds: each timed run's wall time for all N sequences. passes_per_sample and
    calls_per_run: see the module docstring. peak_memory_bytes: CUDA peak allocation over all runs of
    this configuration, warm-up included (None elsewhere).
    """

    method: str
    label: str
    num_samples: int
    seq_len: int
    batch_size: int
    warmup: int
    seconds: list[float]
    passes_per_sample: dict[str, float]
    calls_per_run: dict[str, float]
    steps: int | None = None
    k: int | None = None
    window: float | None = None
    tau: float | None = None
    carry_over: bool | None = None
    predictor: str | None = None
    peak_memory_bytes: int | None = None
    spread: Spread = field(init=False)

    def __post_init__(self) -> None:
        self.spread = Spread.of(self.seconds)

    @property
    def repeats(self) -> int:
        return len(self.seconds)

    @property
    def median_s(self) -> float:
        return self.spread.median

    @property
    def seconds_per_sample(self) -> float:
        return self.spread.median / self.num_samples

    @property
    def tokens_per_second(self) -> float:
        return self.num_samples * self.seq_len / self.spread.median if self.spread.median > 0 else math.inf

    def to_dict(self) -> dict:
        return dict(method=self.method, label=self.label, num_samples=self.num_samples, seq_len=self.seq_len,
                    steps=self.steps, k=self.k, window=self.window, tau=self.tau, carry_over=self.carry_over,
                    predictor=self.predictor, batch_size=self.batch_size, warmup=self.warmup, repeats=self.repeats,
                    seconds=list(self.seconds),
                    median_s=self.spread.median, min_s=self.spread.min, max_s=self.spread.max, q1_s=self.spread.q1,
                    q3_s=self.spread.q3, iqr_s=self.spread.iqr, mean_s=self.spread.mean, std_s=self.spread.std,
                    seconds_per_sample=self.seconds_per_sample, tokens_per_second=self.tokens_per_second,
                    passes_per_sample=dict(self.passes_per_sample), calls_per_run=dict(self.calls_per_run),
                    peak_memory_bytes=self.peak_memory_bytes)


class _CountingLM:
    """Proxy of an incremental-decoding LM that records the rows of every `next_logits` call."""

    def __init__(self, lm) -> None:
        self.lm, self.rows = lm, []
        self.vocab_size, self.bos_id = lm.vocab_size, lm.bos_id

    def parameters(self):
        return module_parameters(self.lm)

    def new_cache(self, *args, **kwargs):
        return self.lm.new_cache(*args, **kwargs)

    def next_logits(self, inputs, cache):
        self.rows.append(int(inputs.shape[0]))
        return self.lm.next_logits(inputs, cache)


def module_parameters(model):
    """The parameters of `model` (an empty iterator for parameter-free callables)."""
    params = getattr(model, "parameters", None)
    return params() if params is not None else iter(())


def count_parameters(model) -> int:
    """Number of parameters of `model` (0 for parameter-free callables)."""
    return sum(p.numel() for p in module_parameters(model))


def _measure(run, device, repeats, warmup, clock, tick):
    device = torch.device(device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    kwargs = {} if clock is None else {"clock": clock}
    seconds, outputs = time_runs(run, repeats, warmup, sync=synchronizer(device), tick=tick or (lambda: None),
                                 **kwargs)
    return seconds, outputs, (int(torch.cuda.max_memory_allocated(device)) if cuda else None)


def _check_common(num_samples, seq_len, batch_size) -> None:
    require(isinstance(num_samples, int) and num_samples >= 1, f"num_samples={num_samples} must be an integer >= 1.")
    require(isinstance(seq_len, int) and seq_len >= 1, f"seq_len={seq_len} must be an integer >= 1.")
    require(batch_size is None or (isinstance(batch_size, int) and batch_size >= 1),
            f"batch_size={batch_size} must be None or an integer >= 1.")


def measure_diffusion(denoiser, num_samples: int, seq_len: int, steps: int, *, energy=None, k: int = 1,
                      window: float = 0.0, tau: float = 1.0, predictor: str | None = None,
                      batch_size: int | None = None, repeats: int = 5, warmup: int = 1, seed: int = 0,
                      amp_dtype: torch.dtype | None = None, clock: Callable[[], float] | None = None,
                      label: str | None = None, tick: Callable[[], None] | None = None) -> LatencyMeasurement:
    """Time `edlm.sample`: MDLM, or SEDD's sampler for a score model (`predictor`, default "analytic"), or
    EDLM when an energy, k > 1 and window > 0 are given (a score model then as its proposal); `tick()`
    after every run, as in `time_runs`."""
    from edlm.diffusion.sedd.protocol import is_score_model
    from edlm.sampling import sample
    from edlm.util.device import autocast

    _check_common(num_samples, seq_len, batch_size)
    edlm_row = energy is not None and k > 1 and window > 0
    require(energy is None or edlm_row, f"an energy with k={k} and window={window} is plain MDLM; "
            "use k >= 2 and window > 0 for EDLM, or drop the energy.")
    sedd_row = is_score_model(denoiser) and not edlm_row
    require(predictor is None or sedd_row, f"predictor={predictor!r} applies to a score model without an energy "
            "(SEDD's sampler); drop it.")
    predictor = (predictor or "analytic") if sedd_row else None
    options = dict(predictor=predictor) if sedd_row else dict(energy=energy, k=k, window=window, tau=tau)
    device = module_device(denoiser)

    def run(i: int):
        generator = torch.Generator(device=device).manual_seed(seed + i)
        with autocast(amp_dtype, device):
            _, stats = sample(denoiser, num_samples, seq_len, steps, generator=generator, batch_size=batch_size,
                              return_stats=True, **options)
        return stats

    seconds, stats, peak = _measure(run, device, repeats, warmup, clock, tick)
    passes, calls = {}, {}
    for name in ("denoiser", "energy") if edlm_row else ("denoiser",):
        counts = [s.count(name) for s in stats]
        passes[name] = statistics.fmean(rows for _, rows in counts) / num_samples
        calls[name] = statistics.fmean(n for n, _ in counts)
    method = "edlm" if edlm_row else "sedd" if sedd_row else "mdlm"
    if label is None:
        label = f"SEDD-{predictor} T={steps}" if sedd_row else f"MDLM T={steps}"
        if edlm_row:
            kind = "coAR" if getattr(energy, "carry_over", False) else "AR"
            label = f"EDLM-{kind} T={steps} k={k} w={window:g}"
    return LatencyMeasurement(method, label, num_samples, seq_len, batch_size or num_samples, warmup, seconds,
                              passes, calls, steps=steps, k=k if edlm_row else None,
                              window=window if edlm_row else None, tau=tau if edlm_row else None,
                              carry_over=bool(getattr(energy, "carry_over", False)) if edlm_row else None,
                              predictor=predictor, peak_memory_bytes=peak)


def measure_ar(lm, num_samples: int, seq_len: int, *, batch_size: int | None = None, repeats: int = 5,
               warmup: int = 1, seed: int = 0, amp_dtype: torch.dtype | None = None,
               clock: Callable[[], float] | None = None, label: str = "AR (KV cache)",
               tick: Callable[[], None] | None = None) -> LatencyMeasurement:
    """Time `edlm.sampling.ar_sample` (temperature 1, no top-p: the same plain sampling as MDLM);
    `tick()` after every run, as in `time_runs`."""
    from edlm.sampling import ar_sample
    from edlm.util.device import autocast

    _check_common(num_samples, seq_len, batch_size)
    device = module_device(lm)

    def run(i: int):
        counting = _CountingLM(lm)
        generator = torch.Generator(device=device).manual_seed(seed + i)
        with autocast(amp_dtype, device):
            ar_sample(counting, num_samples, seq_len, generator=generator, batch_size=batch_size)
        return counting.rows

    seconds, rows, peak = _measure(run, device, repeats, warmup, clock, tick)
    passes = {"ar_kv_step": statistics.fmean(sum(r) for r in rows) / num_samples}
    calls = {"ar_kv_step": statistics.fmean(len(r) for r in rows)}
    return LatencyMeasurement("ar", label, num_samples, seq_len, batch_size or num_samples, warmup, seconds,
                              passes, calls, peak_memory_bytes=peak)


@dataclass
class LatencyResult:
    """Measurements taken side by side in one process, and where they were taken."""

    measurements: list[LatencyMeasurement]
    device: str
    precision: str
    models: dict[str, dict] = field(default_factory=dict)
    seed: int = 0

    def ar_median(self) -> float | None:
        ar = [m for m in self.measurements if m.method == "ar"]
        return ar[0].median_s if ar else None

    def rows(self) -> list[dict]:
        """One flat row per measurement for the Markdown table (`vs_ar`: median over the AR median)."""
        ar = self.ar_median()
        out = []
        for m in self.measurements:
            p = m.passes_per_sample
            out.append(dict(method=m.label, steps=m.steps, k=m.k, window=m.window, median_s=m.median_s,
                            min_s=m.spread.min, max_s=m.spread.max, iqr_s=m.spread.iqr,
                            ms_per_sample=1e3 * m.seconds_per_sample, tokens_per_s=m.tokens_per_second,
                            denoiser_passes=p.get("denoiser"), energy_passes=p.get("energy"),
                            ar_kv_steps=p.get("ar_kv_step"),
                            vs_ar=(m.median_s / ar) if ar else None))
        return out

    def to_dict(self) -> dict:
        return dict(device=self.device, precision=self.precision, torch=torch.__version__,
                    torch_threads=torch.get_num_threads(), seed=self.seed, models=self.models,
                    ar_median_s=self.ar_median(), measurements=[m.to_dict() for m in self.measurements])


COLUMNS = ["method", "steps", "k", "window", "median_s", "min_s", "max_s", "iqr_s", "ms_per_sample", "tokens_per_s",
           "denoiser_passes", "energy_passes", "ar_kv_steps", "vs_ar"]


def latency_benchmark(*, denoiser=None, energy=None, ar=None, mdlm: bool = True, num_samples: int, seq_len: int,
                      steps: list[int], k: list[int] | int = 4, window: float = 0.0, tau: float = 1.0,
                      predictor: str | None = None, batch_size: int | None = None, repeats: int = 5,
                      warmup: int = 1, seed: int = 0, precision: str = "auto", models: dict | None = None,
                      clock: Callable[[], float] | None = None, progress: bool = False) -> LatencyResult:
    """Time every configuration the given models allow, side by side, in this order: AR (if `ar`),
    then for each T in `steps`: the denoiser's own sampler (if `denoiser` and `mdlm`: MDLM, or SEDD's with
    `predictor` for a score model) and EDLM for each k (if `denoiser` and `energy`).

    energy: an Energy for EDLM (e.g. `AREnergy(lm)`); ar: an LM with the KV-cache protocol of
    `edlm.sampling.ar`. precision: "auto" (bf16 autocast on CUDA), "bf16" or "fp32" as in training.
    models: what to record about the models (spec, parameters) in the result. progress: report the
    runs done, warm-up and timed (`edlm.util.progress`).
    """
    from edlm.util.device import amp_dtype as precision_dtype
    from edlm.util.progress import progress_bar

    require(ar is not None or (denoiser is not None and (mdlm or energy is not None)),
            "nothing to time: pass a denoiser (with mdlm=True or an energy), an AR model, or both.")
    require(energy is None or denoiser is not None, "an energy needs a denoiser to correct; pass the denoiser too.")
    require(len(steps) >= 1 and all(isinstance(t, int) and t >= 1 for t in steps),
            f"steps={steps} must be a non-empty list of integers >= 1.")
    ks = [k] if isinstance(k, int) else list(k)
    require(energy is None or (len(ks) >= 1 and all(isinstance(x, int) and x >= 2 for x in ks)),
            f"k={k} must be integers >= 2 for EDLM (k = 1 is plain MDLM).")
    require(energy is None or 0.0 < window <= 1.0,
            f"window={window} must lie in (0, 1] for EDLM (0 is plain MDLM).")
    anchor = denoiser if denoiser is not None else ar
    device = module_device(anchor)
    dtype = precision_dtype(precision, device)
    configurations = (ar is not None) + (len(steps) * (mdlm + (len(ks) if energy is not None else 0))
                                         if denoiser is not None else 0)
    bar = progress_bar(total=configurations * (warmup + repeats), enabled=progress, desc="latency", unit="run")
    common = dict(batch_size=batch_size, repeats=repeats, warmup=warmup, seed=seed, amp_dtype=dtype, clock=clock,
                  tick=bar.update)
    found = []
    if ar is not None:
        found.append(measure_ar(ar, num_samples, seq_len, **common))
    for t in steps:
        if denoiser is None:
            break
        if mdlm:
            found.append(measure_diffusion(denoiser, num_samples, seq_len, t, predictor=predictor, **common))
        for kk in ks if energy is not None else []:
            found.append(measure_diffusion(denoiser, num_samples, seq_len, t, energy=energy, k=kk, window=window,
                                           tau=tau, **common))
    bar.close()
    label = "fp32" if dtype is None else f"{str(dtype).replace('torch.', '')} autocast"
    return LatencyResult(found, str(device), label, dict(models or {}), seed)


def random_models(*, vocab_size: int, n_layers: int, d_model: int, n_heads: int, max_seq_len: int,
                  adaln: bool = False, seed: int = 0, device="cpu"):
    """A random-weight MDLM denoiser and a causal LM of the same backbone (eval mode, on `device`).

    adaln=False (default): the two networks have exactly the same parameters apart from the
    attention mask, so the comparison is at equal size. adaln=True gives the denoiser DiT-style
    adaLN blocks (with t ignored, as in the shipped recipes), which adds parameters.
    """
    from edlm.models import CausalLM, MaskedDiffusionLM, ModelConfig

    shape = dict(vocab_size=vocab_size, n_layers=n_layers, d_model=d_model, n_heads=n_heads, cond_dim=d_model,
                 max_seq_len=max_seq_len)
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
        torch.manual_seed(seed)
        denoiser = MaskedDiffusionLM(ModelConfig(**shape, adaln=adaln)).to(device).eval()
        lm = CausalLM(ModelConfig(**shape, causal=True, adaln=False)).to(device).eval()
    return denoiser, lm
