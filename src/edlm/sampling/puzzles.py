"""Solving puzzles with a model: the givens become clamped positions or a prefix, a sampler fills the
rest, and the answer is read back per slot (formats: `edlm.puzzles.tokens`; docs/puzzles.md).

Methods, chosen from the model:
- "mdlm" (a denoiser; cells format): `edlm.sample` with the context and givens clamped, `steps` steps
  (default: one per slot) and the `unmasking` rule (random = MDLM's ancestral order; confidence / margin =
  the top-k probability / margin orders). Model calls per puzzle: the steps that revealed a cell of it.
- "glauber-diffusion" (a UL2-style model, `edlm.models.ul2`; cells format): a causal sample in the model's
  causal mode with the givens clamped (`edlm.sampling.clamped_ar`), then the reverse chain
  (`edlm.sampling.glauber_diffusion.reverse`) over `fixed_order(rounds, L)` with `block` sites masked per
  call and the givens clamped. Calls per puzzle: L causal steps plus the reverse groups holding one of its
  free slots.
- "ar" (a causal LM; pairs format): `edlm.sampling.ar_sample` after the prefix of the context and the
  given pairs. Calls per puzzle: the `next_logits` calls, L - P for a prefix of P tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edlm.errors import require
from edlm.models.ul2 import UL2Model
from edlm.puzzles.tokens import (Instance, cells_clamp, decode_cells, decode_pairs, pairs_prefix, seq_len,
                                 vocab_size)
from edlm.sampling.ar import ar_sample
from edlm.sampling.clamped_ar import clamped_ar_sample
from edlm.sampling.glauber_diffusion import fixed_order, reverse
from edlm.sampling.mdlm import sample
from edlm.sampling.unmasking import UNMASKING

METHODS = ("mdlm", "glauber-diffusion", "ar")
FORMAT = {"mdlm": "cells", "glauber-diffusion": "cells", "ar": "pairs"}


@dataclass
class Solutions:
    """answers: the value of every slot per puzzle (-1 where unreadable); calls: Long[N] model calls per
    puzzle; tokens: Long[N, L] the final sequences; method: the method used."""

    answers: list[tuple[int, ...]]
    calls: torch.Tensor
    tokens: torch.Tensor
    method: str


def method_of(model) -> str:
    """"glauber-diffusion" for a UL2-style model, "ar" for a causal LM (it has token_logprobs), else "mdlm"."""
    if isinstance(model, UL2Model):
        return "glauber-diffusion"
    return "ar" if hasattr(model, "token_logprobs") else "mdlm"


def check_model(model, instances: list[Instance], method: str) -> None:
    """EdlmError unless the puzzles share one shape and the model's vocabulary fits their format."""
    require(len(instances) > 0, "there are no puzzles to solve; pass at least one.")
    first = instances[0]
    shape = (first.values, first.slots, len(first.context), first.context_vocab)
    require(all((i.values, i.slots, len(i.context), i.context_vocab) == shape for i in instances),
            "the puzzles differ in size; solve puzzles of one size at a time.")
    fmt = FORMAT[method]
    wanted = vocab_size(fmt, first)
    require(model.vocab_size == wanted, f"the model has a vocabulary of {model.vocab_size} ids, but these puzzles in "
            f"the {fmt} format of {method} take {wanted}; pass a model trained on puzzles of this size.")


@torch.no_grad()
def solve(model, instances: list[Instance], *, steps: int | None = None, unmasking: str = "random",
          rounds: int = 1, block: int = 1, generator: torch.Generator | None = None,
          batch_size: int | None = None, progress: bool = False) -> Solutions:
    """Solve every puzzle with `model` by the method `method_of(model)` (module doc); options that do not
    apply to that method must keep their defaults."""
    method = method_of(model)
    check_model(model, instances, method)
    require(batch_size is None or batch_size >= 1, f"batch_size={batch_size} must be None or at least 1.")
    if method != "mdlm":
        require(steps is None and unmasking == "random", f"steps and unmasking apply to masked diffusion models, "
                f"not to {method}; drop them.")
    if method != "glauber-diffusion":
        require(rounds == 1 and block == 1, f"rounds and block apply to Glauber diffusion models, not to {method}; "
                "drop them.")
    if method == "mdlm":
        tokens, calls = _solve_mdlm(model, instances, steps, unmasking, generator, batch_size, progress)
    elif method == "glauber-diffusion":
        tokens, calls = _solve_glauber(model, instances, rounds, block, generator, batch_size)
    else:
        tokens, calls = _solve_ar(model, instances, generator, batch_size, progress)
    decode = decode_pairs if method == "ar" else decode_cells
    answers = [decode(row.tolist(), inst) for row, inst in zip(tokens.cpu(), instances)]
    return Solutions(answers, calls, tokens.cpu(), method)


def _solve_mdlm(model, instances, steps, unmasking, generator, batch_size, progress):
    require(unmasking in UNMASKING, f"unmasking={unmasking!r} is unknown; use one of {UNMASKING}.")
    clamp = torch.stack([cells_clamp(i) for i in instances])
    tokens, stats = sample(model, len(instances), clamp.shape[1], steps or instances[0].slots, clamp=clamp,
                           unmasking=unmasking, generator=generator, batch_size=batch_size, return_stats=True,
                           progress=progress)
    return tokens, (stats.revealed > 0).sum(dim=1)


def reverse_calls(free: torch.Tensor, permutations: torch.Tensor, block: int) -> torch.Tensor:
    """Long[N]: the reverse chain's groups (as `reverse` forms them) that hold a free site of each sequence;
    free: Bool[N, L], permutations: Long[R, L]."""
    rounds, length = permutations.shape
    calls = torch.zeros(free.shape[0], dtype=torch.long)
    for n in range(rounds):
        for top in range(length, 0, -block):
            sites = permutations[n, max(top - block, 0):top]
            calls += free[:, sites].any(dim=1).long()
    return calls


def _solve_glauber(model, instances, rounds, block, generator, batch_size):
    require(rounds >= 1 and block >= 1, f"rounds={rounds} and block={block} must both be at least 1.")
    fixed = torch.stack([cells_clamp(i) for i in instances])
    perms = fixed_order(rounds, fixed.shape[1])
    chunk = batch_size or len(instances)
    out = []
    for start in range(0, len(instances), chunk):
        part = fixed[start:start + chunk]
        init = clamped_ar_sample(model, part, generator)
        out.append(reverse(model, init, perms, generator=generator, block=block, clamp=part >= 0).cpu())
    return torch.cat(out), fixed.shape[1] + reverse_calls(fixed < 0, perms, block)


def _solve_ar(model, instances, generator, batch_size, progress):
    length = seq_len("pairs", instances[0])
    prefixes = [pairs_prefix(i) for i in instances]
    tokens = torch.empty((len(instances), length), dtype=torch.long)
    calls = torch.empty(len(instances), dtype=torch.long)
    for size in sorted({len(p) for p in prefixes}):  # one sampler call per prefix length
        rows = [r for r, p in enumerate(prefixes) if len(p) == size]
        prefix = torch.stack([prefixes[r] for r in rows])
        tokens[rows] = ar_sample(model, len(rows), length, prefix=prefix, generator=generator,
                                 batch_size=batch_size, progress=progress).cpu()
        calls[rows] = length - size
    return tokens, calls
