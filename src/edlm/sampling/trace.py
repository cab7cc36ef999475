"""`SampleTrace`: what `edlm.sample(..., trace=SampleTrace())` did to one sequence, step by step.

The sampler calls the hooks below only when a trace is passed; they read the sampler's tensors and
draw no random numbers, so a traced call returns the same samples as an untraced one under the same
generator. A trace follows one sequence (`index`, default 0) through every block and records a
`TraceStep` for each step that changed it: a step whose denoiser call revealed at least one of its
positions, or (with remasking) masked some again. The other steps leave it unchanged and run no
forward pass for it (the sampler's no-change saving); `skipped` counts them. Tracing costs one copy
of the traced sequence per step, and of its k candidates inside the window.

Sequences are full length (seq_len), token ids, with `mask_id` (= the denoiser's vocab_size) at
masked positions. Inside the importance-sampling window a step also holds the k candidates x0 of
the sequence (full length: the candidate's model window written into the sequence before the step),
their energies, importance weights `softmax(-E / tau)`, effective sample size `1 / sum w^2` and the
index of the resampled candidate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Integral

import torch

from edlm.errors import require


@dataclass(frozen=True)
class TraceStep:
    """One step that changed the traced sequence.

    block, step: block index and step j within it; t, s: the step goes from time t to s = t - 1/steps.
    before, after: the sequence's token ids before and after the step (mask_id at masked positions).
    called: whether the denoiser ran on the sequence (it revealed a position); False for a step that
        only remasked.
    candidates, energies, weights, ess, choice: inside the importance-sampling window, the k candidate
        sequences, their energies, importance weights (summing to 1), the effective sample size
        `1 / sum(w^2)` and the index of the resampled candidate; None outside it.
    """

    block: int
    step: int
    t: float
    s: float
    before: list[int]
    after: list[int]
    called: bool
    candidates: list[list[int]] | None = None
    energies: list[float] | None = None
    weights: list[float] | None = None
    ess: float | None = None
    choice: int | None = None

    def revealed(self, mask_id: int) -> list[int]:
        """Positions masked before the step and revealed by it."""
        return [i for i, (a, b) in enumerate(zip(self.before, self.after)) if a == mask_id and b != mask_id]

    def remasked(self, mask_id: int) -> list[int]:
        """Positions revealed before the step and masked again by it (ReMDM remasking)."""
        return [i for i, (a, b) in enumerate(zip(self.before, self.after)) if a != mask_id and b == mask_id]


@dataclass
class SampleTrace:
    """Records the denoising of sequence `index` of one `edlm.sample` call (see the module docstring).

    After the call: `mask_id`, `initial` (the sequence before the first step: fixed prefix / clamped
    ids, mask_id elsewhere), `per_block` (the call's `steps`) and `total` (steps over all blocks),
    `steps` (the TraceSteps in order). Passing the same trace to another call starts it afresh.
    """

    index: int = 0
    mask_id: int | None = None
    initial: list[int] | None = None
    per_block: int = 0
    total: int = 0
    steps: list[TraceStep] = field(default_factory=list)

    def check(self, num_samples: int) -> None:
        """EdlmError unless `index` names one of the call's num_samples sequences."""
        require(isinstance(self.index, Integral) and 0 <= self.index < num_samples,
                f"trace index={self.index} must be an integer in [0, {num_samples}); trace one of the sequences "
                "the call draws.")

    @property
    def skipped(self) -> int:
        """Steps that left the traced sequence unchanged (no forward pass for it)."""
        return self.total - len(self.steps)

    @property
    def final(self) -> list[int]:
        """The traced sequence after the last step."""
        return self.steps[-1].after if self.steps else list(self.initial or [])

    # Hooks of the sampler (edlm.sampling.mdlm) -------------------------------------------------------

    def begin(self, tokens: torch.Tensor, mask_id: int, per_block: int, blocks: int) -> None:
        """Start afresh: tokens Long[L], the traced sequence before the first step of `blocks` blocks
        of `per_block` steps."""
        self.mask_id = int(mask_id)
        self.initial = tokens.tolist()
        self.per_block = int(per_block)
        self.total = int(per_block) * int(blocks)
        self.steps = []
        self._current = list(self.initial)
        self._block = (0, 0)
        self._pending = None

    def enter_block(self, block: int, w0: int) -> None:
        """The following steps denoise the model window starting at position w0 of block `block`."""
        self._block = (block, w0)

    def weigh(self, row: int, candidates: torch.Tensor, energies: torch.Tensor, log_w: torch.Tensor,
              ess: torch.Tensor, choice: torch.Tensor) -> None:
        """The importance-sampling draw of the current step, as `importance_resample` passes it to
        `on_draw`: candidates Long[B, k, W] (model windows), energies and log weights Float64[B, k],
        ess Float64[B], choice Long[B]; row: the traced sequence's row in them."""
        w0 = self._block[1]
        full = []
        for window in candidates[row].tolist():
            sequence = list(self._current)
            sequence[w0:w0 + len(window)] = window
            full.append(sequence)
        self._pending = dict(candidates=full, energies=energies[row].tolist(), weights=log_w[row].exp().tolist(),
                             ess=float(ess[row]), choice=int(choice[row]))

    def step(self, j: int, t: float, s: float, window: torch.Tensor, called: bool) -> None:
        """End of step j (from t to s): window Long[W], the model window after the step."""
        block, w0 = self._block
        after = list(self._current)
        after[w0:w0 + window.numel()] = window.tolist()
        if after != self._current:
            self.steps.append(TraceStep(block, j, t, s, self._current, after, called, **(self._pending or {})))
            self._current = after
        self._pending = None
