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

Options beyond MDLM's step, each in its own module: which masked positions are revealed
(`unmasking`: random or by confidence / margin / entropy), ReMDM remasking (`remasking`) and
block-wise / semi-autoregressive generation (`semi_ar`). Their defaults draw the same random numbers
as the plain sampler, so they leave its samples unchanged. A `trace` (`edlm.sampling.trace`) records
one sequence's steps and draws nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from numbers import Integral

import torch

from edlm.energy.base import check_compatible
from edlm.errors import require
from edlm.sampling.categorical import draw_rows, row_logprobs
from edlm.sampling.conditioning import fixed_tokens
from edlm.sampling.importance import importance_resample
from edlm.sampling.remasking import REMASKING, is_on, remask_probs
from edlm.sampling.semi_ar import blocks
from edlm.sampling.trace import SampleTrace
from edlm.sampling.unmasking import UNMASKING, position_scores, top_count
from edlm.util.device import module_device, uniform
from edlm.util.progress import progress_bar


@dataclass
class SampleStats:
    """What one `edlm.sample(..., return_stats=True)` call did.

    Steps are numbered block by block: with n blocks (`block_size`), step column `i * steps + j` is
    step j of block i (one block without `block_size`).
    times: Float64[n * steps], the time t_j at which each step starts (it ends at t_j - 1/steps).
    ess: Float64[num_samples, n * steps], effective sample size `1 / sum(w^2)` of each sequence's
        importance weights at each step, in [1, k]; NaN where no importance sampling ran (outside the
        window, k = 1, or the step revealed no token of that sequence and so left it unchanged).
    revealed, remasked: Long[num_samples, n * steps], positions revealed / masked again at each step
        (0 after a sequence is done).
    calls: every forward call in order, as (name, rows) with name "denoiser" or "energy" and rows the
        number of sequences in that call (the energy's are candidates, B*k); a row is one model window.
    """

    times: torch.Tensor
    ess: torch.Tensor
    revealed: torch.Tensor
    remasked: torch.Tensor
    calls: list = field(default_factory=list)

    def count(self, name: str) -> tuple[int, int]:
        """(number of calls, total rows) of the "denoiser" or the "energy"."""
        rows = [r for n, r in self.calls if n == name]
        return len(rows), sum(rows)


@dataclass(frozen=True)
class _Options:
    """The per-step settings of one `sample` call (validated)."""

    steps: int
    energy: object
    k: int
    window: float
    tau: float
    unmasking: str
    unmasking_noise: float
    temperature: float
    remasking: str | None
    eta: float
    remasking_window: tuple[float, float]
    blocks: list

    @property
    def importance(self) -> bool:
        return self.energy is not None and self.k > 1 and self.window > 0


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


def _check_options(unmasking, unmasking_noise, temperature, remasking, eta, remasking_window, block_size,
                   context) -> None:
    require(unmasking in UNMASKING, f"unmasking={unmasking!r} is unknown; use one of {UNMASKING}.")
    require(unmasking_noise >= 0, f"unmasking_noise={unmasking_noise} must be >= 0.")
    require(unmasking_noise == 0 or unmasking != "random",
            f"unmasking_noise={unmasking_noise} applies to the adaptive rules only; pass unmasking='confidence', "
            "'margin' or 'entropy', or drop it.")
    require(temperature > 0, f"temperature={temperature} must be positive.")
    require(remasking in REMASKING, f"remasking={remasking!r} is unknown; use one of {REMASKING}.")
    require(0.0 <= eta <= 1.0, f"eta={eta} must lie in [0, 1].")
    require(remasking is not None or eta == 0, f"eta={eta} needs a remasking schedule; pass remasking='cap', "
            "'rescale' or 'conf', or drop eta.")
    t_on, t_off = remasking_window
    require(0.0 <= t_off < t_on <= 1.0,
            f"remasking_window={remasking_window} must be (t_on, t_off) with 0 <= t_off < t_on <= 1.")
    require(remasking is not None or tuple(remasking_window) == (1.0, 0.0),
            f"remasking_window={remasking_window} needs a remasking schedule; pass remasking= or drop it.")
    for name, value in (("block_size", block_size), ("context", context)):
        require(value is None or (isinstance(value, Integral) and value >= 1),
                f"{name}={value} must be None or an integer >= 1.")


@torch.no_grad()
def sample(denoiser, num_samples: int, seq_len: int, steps: int, *, energy=None, k: int = 1,
           window: float = 0.0, tau: float = 1.0, prefix=None, clamp=None,
           unmasking: str = "random", unmasking_noise: float = 0.0, temperature: float = 1.0,
           remasking: str | None = None, eta: float = 0.0, remasking_window: tuple[float, float] = (1.0, 0.0),
           block_size: int | None = None, context: int | None = None,
           generator: torch.Generator | None = None, batch_size: int | None = None,
           return_stats: bool = False, progress: bool = False, trace: SampleTrace | None = None):
    """Sample Long[num_samples, seq_len] token ids from a masked diffusion denoiser (docs/contracts.md).

    denoiser: `denoiser(xt Long[B, L], t Float[B]) -> Float[B, L, V]`, mask id V; put it in eval mode.
    steps: reverse steps on the grid t = 1, 1 - 1/steps, ..., 0 (the last one reveals every mask);
        with `block_size`, `steps` per block.
    energy, k, window, tau: importance-sampled denoising (EDLM) at every step with t >= 1 - window
        (window = 0: never, not even at t = 1; window = 1: every step): k candidates per sequence,
        weights softmax(-E / tau). window = 0 or k = 1 is plain MDLM and consumes random numbers
        exactly like it (same samples under the same generator); k = 1 never calls the energy.
    prefix: Long[P] or Long[num_samples, P] ids fixed at positions 0..P-1.
    clamp: Long[seq_len] or Long[num_samples, seq_len] ids fixed at arbitrary positions (infilling),
        -1 at free positions. Fixed positions are kept through every step and never remasked.
    unmasking: which masked positions a step reveals (`edlm.sampling.unmasking`): "random" (MDLM's
        exact step, the default) or the heuristics "confidence", "margin", "entropy", which reveal the
        same number of positions, those of highest score. Inside the importance-sampling window the
        importance-resampled x0 is written at the positions so chosen.
    unmasking_noise: scale of Gumbel noise added to the adaptive scores (0 = none; Kim et al. use 0.5).
    temperature: tokens are drawn from softmax(logits / temperature) (and adaptive scores computed
        from it); 1 is the model.
    remasking, eta, remasking_window: ReMDM remasking ("cap", "rescale", "conf"; `edlm.sampling.remasking`)
        at the steps with t_off < t <= t_on for remasking_window = (t_on, t_off). eta = 0 is MDLM
        exactly. With remasking a sequence keeps running after its last mask is revealed.
    block_size, context: generate blocks of block_size positions left to right, each with `steps`
        steps, in model windows of at most `context` tokens (default: seq_len); seq_len > context
        needs block_size (semi-autoregressive, `edlm.sampling.semi_ar`).
    generator: the source of every random number (drawn on its device); None uses torch's global RNG.
    batch_size: sequences per chunk (default: all at once); chunks run one after the other.
    return_stats: also return a `SampleStats` (ESS, reveals and remasks per step, forward calls).
    progress: show a progress bar over steps.
    trace: an `edlm.sampling.trace.SampleTrace` that records, step by step, how sequence
        `trace.index` was denoised (reveals, remasks, and inside the window the k candidates with their
        energies, weights and ESS); it draws no random numbers, so the samples are the same without it.

    Forward passes: every option keeps the no-change saving - the denoiser runs only on the sequences
    that reveal at least one position at the step (a remask needs no denoiser output).
    """
    _check_args(denoiser, num_samples, seq_len, steps, energy, k, window, tau, batch_size)
    _check_options(unmasking, unmasking_noise, temperature, remasking, eta, remasking_window, block_size, context)
    if trace is not None:
        require(isinstance(trace, SampleTrace), f"trace={trace!r} must be None or an edlm.sampling.trace.SampleTrace.")
        trace.check(num_samples)
    opts = _Options(steps, energy, k, window, tau, unmasking, float(unmasking_noise), float(temperature), remasking,
                    float(eta), tuple(float(v) for v in remasking_window), blocks(seq_len, block_size, context))
    vocab = denoiser.vocab_size
    device = module_device(denoiser)
    fixed = fixed_tokens(num_samples, seq_len, vocab, prefix, clamp).to(device)
    n = len(opts.blocks) * steps
    times = torch.tensor([1 - j / steps for j in range(steps)], dtype=torch.float64).repeat(len(opts.blocks))
    stats = SampleStats(times, torch.full((num_samples, n), float("nan"), dtype=torch.float64),
                        torch.zeros((num_samples, n), dtype=torch.long), torch.zeros((num_samples, n), dtype=torch.long))
    chunk = batch_size or num_samples
    out = []
    with progress_bar(total=n * num_samples, enabled=progress, desc="sample", unit="seq-step") as bar:
        for start in range(0, num_samples, chunk):
            part = fixed[start:start + chunk]
            traced = trace if trace is not None and start <= trace.index < start + part.shape[0] else None
            out.append(_sample_chunk(denoiser, part, opts, generator, stats, start, bar, traced))
    samples = torch.cat(out)
    return (samples, stats) if return_stats else samples


def _sample_chunk(denoiser, fixed, opts: _Options, generator, stats, offset, bar, trace) -> torch.Tensor:
    """Generate one chunk block by block: fixed Long[B, L] (-1 = free) -> samples Long[B, L].
    trace: the SampleTrace when the traced sequence is in this chunk, else None."""
    length = fixed.shape[1]
    x = torch.where(fixed >= 0, fixed, torch.full_like(fixed, denoiser.vocab_size))
    if trace is not None:
        trace.begin(x[trace.index - offset], denoiser.vocab_size, opts.steps, len(opts.blocks))
    positions = torch.arange(length, device=fixed.device)
    for i, block in enumerate(opts.blocks):
        inside = (positions >= block.start) & (positions < block.stop)
        eligible = (fixed < 0) & inside
        window = slice(block.w0, block.w1)
        if trace is not None:
            trace.enter_block(i, block.w0)
        x[:, window] = _denoise(denoiser, x[:, window].clone(), eligible[:, window], opts, generator, stats,
                                offset, i * opts.steps, bar, trace)
    return x


def _denoise(denoiser, xt, eligible, opts: _Options, generator, stats, offset, col, bar, trace) -> torch.Tensor:
    """Run the reverse steps of one block on its model window.

    xt: Long[B, W] the window (mask id V at masked positions); eligible: Bool[B, W] the positions this
    block reveals (masked positions outside it stay masked). Stats go to rows offset.. and step
    columns col... trace: None, or the SampleTrace of row `trace.index - offset`, told each step's
    result. Returns the denoised window Long[B, W].
    """
    b, length = xt.shape
    mask_id = denoiser.vocab_size
    steps = opts.steps
    psi = torch.zeros((b, length), dtype=torch.float64, device=xt.device) if opts.remasking == "conf" else None
    can_remask = opts.remasking is not None and opts.eta > 0
    rows_out = torch.arange(offset, offset + b)
    row = None if trace is None else trace.index - offset
    done = 0
    for j in range(steps):
        masked = (xt == mask_id) & eligible
        if not can_remask and not bool(masked.any()):
            break
        t, s = 1.0 - j / steps, 1.0 - (j + 1) / steps
        u = uniform((b, length), generator, xt.device)
        p = 1.0 / (steps - j)
        remask = None
        if is_on(opts.remasking, opts.eta, opts.remasking_window, t, s):
            sigma, bonus = remask_probs(opts.remasking, opts.eta, t, s, eligible & ~masked, psi)
            p = p + bonus
            remask = uniform((b, length), generator, xt.device) < sigma
        chosen = masked & (u < p)
        count = chosen.sum(dim=1)
        active = (count > 0).nonzero().squeeze(1)
        bar.update(b)
        done += 1
        stats.revealed[rows_out, col + j] = count.cpu()
        if remask is not None:
            stats.remasked[rows_out, col + j] = remask.sum(dim=1).cpu()
        if active.numel() > 0:
            xt_a = xt[active]
            times = torch.full((active.numel(),), t, dtype=torch.float32, device=xt.device)
            logits = denoiser(xt_a, times)
            stats.calls.append(("denoiser", active.numel()))
            require(tuple(logits.shape) == (active.numel(), length, mask_id),
                    f"the denoiser returned shape {tuple(logits.shape)} for input {tuple(xt_a.shape)}; "
                    f"return logits of shape [B, L, V] with V = vocab_size = {mask_id}.")
            if opts.temperature != 1.0:
                logits = logits / opts.temperature
            if opts.unmasking == "random":
                reveal_a = chosen[active]
            else:
                scores = position_scores(logits, masked[active], opts.unmasking, opts.unmasking_noise, generator)
                reveal_a = top_count(scores, u[active], count[active])
            if opts.importance and t >= 1.0 - opts.window - 1e-12:  # grid-point tolerance
                on_draw = None  # the traced row's place among the active rows, when it is one of them
                if row is not None and int(count[row]) > 0:
                    on_draw = partial(trace.weigh, int((count[:row] > 0).sum()))
                x0, ess = importance_resample(logits, xt_a, t, opts.energy, opts.k, opts.tau, mask_id, generator,
                                              on_draw)
                stats.calls.append(("energy", active.numel() * opts.k))
                stats.ess[offset + active.cpu(), col + j] = ess.cpu()
            else:
                rows = reveal_a.reshape(-1).nonzero().squeeze(1)
                tokens = draw_rows(logits.reshape(-1, mask_id), rows, 1, generator)[0][0]
                x0 = xt_a.clone()
                x0[reveal_a] = tokens
            if psi is not None:
                rows = reveal_a.reshape(-1).nonzero().squeeze(1)
                psi_a = psi[active]
                psi_a.view(-1)[rows] = row_logprobs(logits.reshape(-1, mask_id), rows, x0.reshape(-1)[rows]).exp()
                psi[active] = psi_a
            xt[active] = torch.where(reveal_a, x0, xt_a)
        if remask is not None:
            xt = torch.where(remask, mask_id, xt)
        if row is not None:
            trace.step(j, t, s, xt[row], called=int(count[row]) > 0)
    bar.update(b * (steps - done))
    return xt
