"""`edlm.sample`: the MDLM ancestral sampler, with EDLM importance-sampled denoising inside a window.

Time grid: `t_j = 1 - j / steps` for j = 0..steps; step j goes from t_j to s = t_{j+1}. Under the
log-linear schedule `alpha_t = 1 - (1 - eps) t` a masked position is revealed with probability
`(alpha_s - alpha_t) / (1 - alpha_t) = (t - s) / t = 1 / (steps - j)` (eps cancels), so the last
step (t = 1/steps -> 0) reveals every remaining mask: that is the final denoising step, and it
*draws* x0 from the denoiser like every other step (no argmax), so the sampler stays the exact
ancestral sampler of the model.

One step, per sequence: (1) draw which masked positions are revealed (float64 uniforms);
(2) only if at least one is, evaluate the denoiser at xt and draw x0 - plainly at the revealed
positions, or, inside the window with k > 1, as the importance-resampled candidate of
`importance_resample`; (3) write x0 at the revealed positions. Fixed (prefix / clamped) positions
are never masked, so SUBS carries them through every step.

Forward passes (the no-change cache, per sequence): the denoiser runs only on the sub-batch of
sequences in which the current step reveals at least one token. A step that reveals nothing leaves
its sequence unchanged and needs no x0, so each sequence is evaluated once per distinct xt - the
passes MDLM's no-change cache keeps for a denoiser with `time_conditioned=False` - and the same
saving holds for time-conditioned denoisers, whose skipped output is not needed at any t. At
steps = seq_len a sequence reveals nothing in about (1 - 1/n)^n ~ e^-1 ~ 37% of its steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Integral

import torch

from edlm.energy.base import check_compatible
from edlm.errors import require
from edlm.sampling.categorical import draw_rows
from edlm.sampling.conditioning import fixed_tokens
from edlm.util.device import module_device, uniform
from edlm.util.progress import progress_bar
from edlm.sampling.importance import importance_resample


@dataclass
class SampleStats:
    """What one `edlm.sample(..., return_stats=True)` call did.

    times: Float64[steps], the time t_j at which step j starts (it ends at t_j - 1/steps).
    ess: Float64[num_samples, steps], effective sample size `1 / sum(w^2)` of each sequence's
        importance weights at each step, in [1, k]; NaN where no importance sampling ran (outside the
        window, k = 1, or the step revealed no token of that sequence and so left it unchanged).
    calls: every forward call in order, as (name, rows) with name "denoiser" or "energy" and rows the
        number of sequences of length seq_len in that call (the energy's are candidates, B*k).
    """

    times: torch.Tensor
    ess: torch.Tensor
    calls: list = field(default_factory=list)

    def count(self, name: str) -> tuple[int, int]:
        """(number of calls, total rows) of the "denoiser" or the "energy"."""
        rows = [r for n, r in self.calls if n == name]
        return len(rows), sum(rows)


def _check_args(denoiser, num_samples, seq_len, steps, energy, k, window, tau, batch_size) -> None:
    require(isinstance(num_samples, Integral) and num_samples >= 1,
            f"num_samples={num_samples} must be an integer >= 1.")
    require(isinstance(seq_len, Integral) and seq_len >= 1, f"seq_len={seq_len} must be an integer >= 1.")
    require(isinstance(steps, Integral) and steps >= 1, f"steps={steps} must be an integer >= 1.")
    require(isinstance(k, Integral) and k >= 1, f"k={k} must be an integer >= 1 (k=1 is plain MDLM).")
    require(0.0 <= window <= 1.0, f"window={window} must lie in [0, 1] (0 = plain MDLM, 1 = every step).")
    require(tau > 0, f"tau={tau} must be positive.")
    require(batch_size is None or (isinstance(batch_size, Integral) and batch_size >= 1),
            f"batch_size={batch_size} must be None or an integer >= 1.")
    require(hasattr(denoiser, "vocab_size"), f"{type(denoiser).__name__} has no vocab_size; pass a denoiser.")
    if energy is not None:
        check_compatible(denoiser, energy)
    require(energy is not None or k == 1 or window == 0,
            f"k={k} with window={window} needs an energy to weight the candidates; pass energy= or set k=1.")


@torch.no_grad()
def sample(denoiser, num_samples: int, seq_len: int, steps: int, *, energy=None, k: int = 1,
           window: float = 0.0, tau: float = 1.0, prefix=None, clamp=None,
           generator: torch.Generator | None = None, batch_size: int | None = None,
           return_stats: bool = False, progress: bool = False):
    """Sample Long[num_samples, seq_len] token ids from a masked diffusion denoiser (docs/contracts.md).

    denoiser: `denoiser(xt Long[B, L], t Float[B]) -> Float[B, L, V]`, mask id V; put it in eval mode.
    steps: reverse steps on the grid t = 1, 1 - 1/steps, ..., 0 (the last one reveals every mask).
    energy, k, window, tau: importance-sampled denoising (EDLM) at every step with t >= 1 - window
        (window = 0: never, not even at t = 1; window = 1: every step): k candidates per sequence,
        weights softmax(-E / tau). window = 0 or k = 1 is plain MDLM and consumes random numbers
        exactly like it (same samples under the same generator); k = 1 never calls the energy.
    prefix: Long[P] or Long[num_samples, P] ids fixed at positions 0..P-1.
    clamp: Long[seq_len] or Long[num_samples, seq_len] ids fixed at arbitrary positions (infilling),
        -1 at free positions. Fixed positions are kept through every step.
    generator: the source of every random number (drawn on its device); None uses torch's global RNG.
    batch_size: sequences per chunk (default: all at once); chunks run one after the other.
    return_stats: also return a `SampleStats` (ESS per step, forward calls).
    progress: show a progress bar over steps.
    """
    _check_args(denoiser, num_samples, seq_len, steps, energy, k, window, tau, batch_size)
    vocab = denoiser.vocab_size
    device = module_device(denoiser)
    fixed = fixed_tokens(num_samples, seq_len, vocab, prefix, clamp).to(device)
    stats = SampleStats(torch.tensor([1 - j / steps for j in range(steps)], dtype=torch.float64),
                        torch.full((num_samples, steps), float("nan"), dtype=torch.float64))
    chunk = batch_size or num_samples
    out = []
    with progress_bar(total=steps * num_samples, enabled=progress, desc="sample", unit="seq-step") as bar:
        for start in range(0, num_samples, chunk):
            part = fixed[start:start + chunk]
            out.append(_sample_chunk(denoiser, part, steps, energy, k, window, tau, generator,
                                     stats, start, bar))
    samples = torch.cat(out)
    return (samples, stats) if return_stats else samples


def _sample_chunk(denoiser, fixed, steps, energy, k, window, tau, generator, stats, offset, bar) -> torch.Tensor:
    """Run every step on one chunk: fixed Long[B, L] (-1 = free) -> samples Long[B, L]."""
    b, length = fixed.shape
    mask_id = denoiser.vocab_size
    xt = torch.where(fixed >= 0, fixed, torch.full_like(fixed, mask_id))
    done = 0
    for j in range(steps):
        masked = xt == mask_id
        if not bool(masked.any()):
            break
        t = 1.0 - j / steps
        reveal = masked & (uniform((b, length), generator, xt.device) < 1.0 / (steps - j))
        active = reveal.any(dim=1).nonzero().squeeze(1)
        bar.update(b)
        done += 1
        if active.numel() == 0:
            continue
        xt_a, reveal_a = xt[active], reveal[active]
        times = torch.full((active.numel(),), t, dtype=torch.float32, device=xt.device)
        logits = denoiser(xt_a, times)
        stats.calls.append(("denoiser", active.numel()))
        require(tuple(logits.shape) == (active.numel(), length, mask_id),
                f"the denoiser returned shape {tuple(logits.shape)} for input {tuple(xt_a.shape)}; "
                f"return logits of shape [B, L, V] with V = vocab_size = {mask_id}.")
        if energy is not None and k > 1 and window > 0 and t >= 1.0 - window - 1e-12:  # grid-point tolerance
            x0, ess = importance_resample(logits, xt_a, t, energy, k, tau, mask_id, generator)
            stats.calls.append(("energy", active.numel() * k))
            stats.ess[offset + active.cpu(), j] = ess.cpu()
        else:
            rows = reveal_a.reshape(-1).nonzero().squeeze(1)
            tokens = draw_rows(logits.reshape(-1, mask_id), rows, 1, generator)[0][0]
            x0 = xt_a.clone()
            x0[reveal_a] = tokens
        xt[active] = torch.where(reveal_a, x0, xt_a)
    bar.update(b * (steps - done))
    return xt
