"""Causal sampling with tokens clamped at arbitrary positions: the causal initialisation of Glauber
diffusion for a puzzle, whose givens sit anywhere in the sequence (`edlm.sampling.puzzles`).

Position i is copied from `fixed` where it holds an id and otherwise drawn from the LM's
`p(x_i | x_<i)` (a float64 exponential race, `edlm.sampling.categorical`); either way the LM reads it
before position i + 1. A free position is drawn without looking at the clamped tokens after it, so this
is not the LM's conditional given every clamped token, only a start that agrees with them (the
Glauber rounds that follow see the whole sequence). Needs the incremental-decoding protocol of
`edlm.sampling.ar`: `vocab_size`, `bos_id`, `new_cache`, `next_logits`.
"""

from __future__ import annotations

import torch

from edlm.errors import require
from edlm.sampling.categorical import sample_categorical
from edlm.util.device import module_device


@torch.no_grad()
def clamped_ar_sample(lm, fixed: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """fixed: Long[B, L], an id at clamped positions and -1 at free ones -> Long[B, L] on the LM's device.

    One `next_logits` call per position (L calls, the first with BOS); the generator draws one row of
    B categorical samples at every position that is free in at least one sequence."""
    for name in ("vocab_size", "bos_id", "new_cache", "next_logits"):
        require(hasattr(lm, name), f"{type(lm).__name__} has no {name}; causal sampling needs an LM with "
                "vocab_size, bos_id, new_cache(batch, max_len) and next_logits(inputs, cache).")
    fixed = torch.as_tensor(fixed)
    require(fixed.dim() == 2 and not fixed.is_floating_point() and bool(((fixed >= -1) & (fixed < lm.vocab_size)).all()),
            f"fixed has shape {tuple(fixed.shape)} and dtype {fixed.dtype}; pass Long[B, L] with ids in "
            f"[0, {lm.vocab_size}) and -1 at free positions.")
    x = fixed.long().to(module_device(lm)).clone()
    b, length = x.shape
    cache = lm.new_cache(b, length)
    logits = lm.next_logits(torch.full((b, 1), lm.bos_id, dtype=torch.long, device=x.device), cache)
    for i in range(length):
        free = x[:, i] < 0
        if bool(free.any()):
            x[:, i] = torch.where(free, sample_categorical(logits.double(), generator).to(x.device), x[:, i])
        if i + 1 < length:
            logits = lm.next_logits(x[:, i:i + 1], cache)
    return x
