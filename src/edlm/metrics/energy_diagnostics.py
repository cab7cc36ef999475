"""Diagnostics of a trained energy against the diffusion time (Figure 2 of the EDLM paper).

For every t of a grid and every data sequence x0 (the positive), one xt ~ q(xt | x0) is drawn, and
`num_negatives` negatives x0^- ~ mu_theta(. | xt) from the denoiser (the proposal the sampler uses,
drawn in float64 by `draw_candidates`). All 1 + n sequences are scored against the same xt. Per t,
over the sequences:

- `positive`: mean energy of the positives E(x0, xt, t);
- `negative_mean` / `negative_min` / `negative_max`: the mean over sequences of the mean / min / max
  energy over that sequence's n negatives;
- `gap`: mean of (mean negative energy - positive energy), > 0 when data gets lower energy than
  proposals, with its standard error `gap_stderr` over sequences; `frac_positive_below_mean_negative`;
- `ess`: mean effective sample size of the importance weights of the n negatives,
  `w = softmax(-E)`, `ESS = 1 / sum_j w_j^2` in [1, n] (docs/pitfalls.md, item 8: the weights, not raw energies), and
  `ess_fraction = ess / n`.

Energies are in nats (float64). `plot_energy_diagnostics` draws the two panels (energies; ESS) to a PNG
with matplotlib's Agg canvas (no pyplot, no display).
"""

from __future__ import annotations

import math

import torch

from edlm.diffusion.process import forward_mask
from edlm.diffusion.schedules import LogLinearSchedule
from edlm.energy.base import check_compatible
from edlm.errors import require
from edlm.util.device import module_device
from edlm.util.progress import progress_bar
from edlm.sampling.importance import draw_candidates

SERIES = ("positive", "negative_mean", "negative_min", "negative_max", "gap", "gap_stderr",
          "frac_positive_below_mean_negative", "ess", "ess_fraction")


def time_grid(num_t: int, t_min: float = 0.0) -> list[float]:
    """num_t evenly spaced times in (t_min, 1], ending at 1: t_j = t_min + (1 - t_min) j / num_t."""
    require(num_t >= 1, f"num_t={num_t} must be at least 1.")
    require(0.0 <= t_min < 1.0, f"t_min={t_min} must lie in [0, 1).")
    return [t_min + (1.0 - t_min) * j / num_t for j in range(1, num_t + 1)]


@torch.no_grad()
def _score_at(energy, denoiser, x0, t, schedule, num_negatives, generator):
    """Positive energies Float64[B] and negative energies Float64[B, n] at one time t."""
    b, length = x0.shape
    mask_id = denoiser.vocab_size
    times = torch.full((b,), t, dtype=torch.float32, device=x0.device)
    xt = forward_mask(x0, schedule.alpha(times), mask_id, generator)
    logits = denoiser(xt, times)
    require(tuple(logits.shape) == (b, length, mask_id),
            f"the denoiser returned shape {tuple(logits.shape)} for input {(b, length)}; return [B, L, V] logits.")
    negatives, neg_logp = draw_candidates(logits, xt, mask_id, num_negatives, generator)  # [B, n, L], [B, n]
    masked = xt == mask_id
    logmu = torch.log_softmax(logits.double(), dim=-1).gather(-1, x0[..., None]).squeeze(-1)
    pos_logp = torch.where(masked, logmu, torch.zeros_like(logmu)).sum(dim=1)
    group = num_negatives + 1
    batch = torch.cat([x0[:, None], negatives], dim=1).reshape(b * group, length)  # batch-major: docs/pitfalls.md, item 3
    logp = torch.cat([pos_logp[:, None], neg_logp], dim=1).reshape(-1)
    e = energy(batch, xt.repeat_interleave(group, dim=0), times.repeat_interleave(group), logp)
    require(tuple(e.shape) == (b * group,), f"the energy returned shape {tuple(e.shape)} for {b * group} sequences; "
            "return one value per sequence.")
    e = e.to(device=x0.device, dtype=torch.float64).view(b, group)
    return e[:, 0], e[:, 1:]


@torch.no_grad()
def energy_diagnostics(energy, denoiser, x0: torch.Tensor, *, times: list[float], num_negatives: int = 16,
                       schedule=None, generator: torch.Generator | None = None,
                       batch_size: int | None = None, progress: bool = False) -> dict:
    """Figure-2 statistics of `energy` on data x0: Long[B, L] at each t in `times` (see the module doc).

    denoiser: the proposal (denoiser protocol); schedule: the masking schedule of xt (default
    log-linear with eps = 0, alpha_t = 1 - t); batch_size: sequences per denoiser call (each makes
    one energy call on batch_size * (1 + num_negatives) sequences); progress: report progress
    (`edlm.util.progress`) in sequences x times. Returns a dict with "t" and one
    list per name in SERIES (same length as t), plus "num_sequences" and "num_negatives".
    """
    require(num_negatives >= 2, f"num_negatives={num_negatives} must be at least 2 (min, max and ESS need several).")
    require(len(times) >= 1 and all(0.0 < t <= 1.0 for t in times), f"times={times} must be a non-empty list in (0, 1].")
    require(x0.dim() == 2 and x0.shape[0] >= 1, f"x0 has shape {tuple(x0.shape)}; pass data of shape [B, L].")
    require(batch_size is None or batch_size >= 1, f"batch_size={batch_size} must be None or >= 1.")
    check_compatible(denoiser, energy)
    schedule = schedule or LogLinearSchedule(eps=0.0)
    x0 = x0.to(module_device(denoiser))
    step = batch_size or x0.shape[0]
    out = {name: [] for name in SERIES}
    bar = progress_bar(total=len(times) * x0.shape[0], enabled=progress, desc="energy", unit="seq-t")
    for t in times:
        pos, neg = [], []
        for chunk in x0.split(step):
            p, n = _score_at(energy, denoiser, chunk, t, schedule, num_negatives, generator)
            pos.append(p.cpu())
            neg.append(n.cpu())
            bar.update(chunk.shape[0])
        pos, neg = torch.cat(pos), torch.cat(neg)
        gap = neg.mean(dim=1) - pos
        log_w = torch.log_softmax(-neg, dim=1)
        ess = 1.0 / torch.exp(2.0 * log_w).sum(dim=1)
        b = pos.numel()
        stats = {
            "positive": pos.mean(), "negative_mean": neg.mean(), "negative_min": neg.min(dim=1).values.mean(),
            "negative_max": neg.max(dim=1).values.mean(), "gap": gap.mean(),
            "gap_stderr": gap.std() / math.sqrt(b) if b > 1 else torch.tensor(float("nan")),
            "frac_positive_below_mean_negative": (gap > 0).double().mean(), "ess": ess.mean(),
            "ess_fraction": ess.mean() / num_negatives,
        }
        for name in SERIES:
            out[name].append(float(stats[name]))
    bar.close()
    return {"t": [float(t) for t in times], **out, "num_sequences": int(x0.shape[0]), "num_negatives": num_negatives}


def plot_energy_diagnostics(result: dict, path, title: str | None = None) -> None:
    """Two-panel PNG of an `energy_diagnostics` result: energies against t (positives, mean negative,
    min-max band of the negatives) and the ESS of the negatives' importance weights against t."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t = result["t"]
    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)  # Agg, whatever pyplot's global backend is
    ax_e, ax_s = fig.subplots(1, 2)
    ax_e.fill_between(t, result["negative_min"], result["negative_max"], color="tab:orange", alpha=0.25,
                      label=f"negatives: min-max of {result['num_negatives']}")
    ax_e.plot(t, result["negative_mean"], "o-", color="tab:orange", label="negatives: mean")
    ax_e.plot(t, result["positive"], "s-", color="tab:blue", label="positives (data)")
    ax_e.set_xlabel("t")
    ax_e.set_ylabel("energy (nats)")
    ax_e.legend(fontsize=8)
    ax_e.grid(alpha=0.3)
    ax_s.plot(t, result["ess"], "o-", color="tab:green")
    ax_s.axhline(result["num_negatives"], color="gray", linestyle="--", linewidth=1)
    ax_s.set_ylim(0, result["num_negatives"] * 1.05)
    ax_s.set_xlabel("t")
    ax_s.set_ylabel(f"ESS of softmax(-E) over {result['num_negatives']} negatives")
    ax_s.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
