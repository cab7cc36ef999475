"""Block-wise generation: left-to-right blocks inside the model's context (block-diffusion style) and
semi-autoregressive windows for sequences longer than the context (MDLM's semi-AR sampler).

The sequence is cut into blocks [a, b) of `block_size` positions, generated left to right, each with
the full `steps` reverse steps. Block [a, b) is denoised in the model window [w0, w1) with
w0 = max(0, b - context) and w1 = min(seq_len, w0 + context): inside the context (seq_len <= context)
the window is the whole sequence, everything left of the block fixed and everything right of it still
masked (and not revealed in this block); past the context the window ends at the block, so the block
is conditioned on the last `context - block_size` tokens before it. One block (block_size >= seq_len
and seq_len <= context) is the plain sampler.
"""

from __future__ import annotations

from typing import NamedTuple

from edlm.errors import require


class Block(NamedTuple):
    """Positions [start, stop) are revealed in the model window [w0, w1) (all in the full sequence)."""

    start: int
    stop: int
    w0: int
    w1: int


def blocks(seq_len: int, block_size: int | None, context: int | None) -> list[Block]:
    """The blocks of a sequence of seq_len tokens, left to right (see the module docstring)."""
    context = seq_len if context is None else context
    require(block_size is not None or seq_len <= context,
            f"seq_len={seq_len} exceeds the context of {context} tokens; pass block_size (at most {context}) "
            "to generate it semi-autoregressively.")
    size = seq_len if block_size is None else min(block_size, seq_len)
    require(size <= context, f"block_size={block_size} exceeds the context of {context} tokens; use a "
            "block_size of at most the context.")
    out = []
    for start in range(0, seq_len, size):
        stop = min(start + size, seq_len)
        w0 = max(0, stop - context)
        out.append(Block(start, stop, w0, min(seq_len, w0 + context)))
    return out
