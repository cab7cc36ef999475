"""Conditioning of samplers: a fixed prefix and tokens clamped at arbitrary positions (infilling).

Both become one tensor `fixed: Long[N, L]` holding the fixed token id at conditioned positions and -1
at free positions. Samplers start from it and never change a fixed position.
"""

from __future__ import annotations

import torch

from edlm.errors import require


def _as_rows(value, num_samples: int, name: str) -> torch.Tensor:
    """A Long[n] or Long[num_samples, n] (tensor or nested list) as Long[num_samples, n]."""
    value = torch.as_tensor(value)
    require(not value.is_floating_point() and not value.is_complex(),
            f"{name} has dtype {value.dtype}; pass integer token ids.")
    value = value.long().cpu()
    require(value.dim() in (1, 2), f"{name} has shape {tuple(value.shape)}; pass shape [n] or [num_samples, n].")
    if value.dim() == 1:
        return value.expand(num_samples, -1)
    require(value.shape[0] == num_samples,
            f"{name} has {value.shape[0]} rows but num_samples={num_samples}; pass one row or one per sample.")
    return value


def fixed_tokens(num_samples: int, seq_len: int, vocab_size: int, prefix=None, clamp=None) -> torch.Tensor:
    """Fixed tokens Long[num_samples, seq_len] (-1 = free) from a prefix and a clamp (both optional).

    prefix: Long[P] or Long[num_samples, P] token ids for positions 0..P-1 (P <= seq_len).
    clamp: Long[seq_len] or Long[num_samples, seq_len], a token id at clamped positions and -1 elsewhere.
    Where both fix a position they must agree.
    """
    fixed = torch.full((num_samples, seq_len), -1, dtype=torch.long)
    if clamp is not None:
        clamp = _as_rows(clamp, num_samples, "clamp")
        require(clamp.shape[1] == seq_len,
                f"clamp has length {clamp.shape[1]} but seq_len={seq_len}; pass one entry per position (-1 = free).")
        require(bool(((clamp >= -1) & (clamp < vocab_size)).all()),
                f"clamp holds ids outside [-1, {vocab_size}); use token ids of the vocabulary and -1 for free "
                "positions.")
        fixed.copy_(clamp)
    if prefix is not None:
        prefix = _as_rows(prefix, num_samples, "prefix")
        length = prefix.shape[1]
        require(length <= seq_len, f"the prefix has {length} tokens, more than seq_len={seq_len}; "
                "shorten the prefix or raise seq_len.")
        require(bool(((prefix >= 0) & (prefix < vocab_size)).all()),
                f"prefix holds ids outside [0, {vocab_size}); use token ids of the model's vocabulary.")
        head = fixed[:, :length]
        require(bool(((head == -1) | (head == prefix)).all()),
                "clamp and prefix fix the same position to different tokens; make them agree or drop one.")
        fixed[:, :length] = prefix
    return fixed
