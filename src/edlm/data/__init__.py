"""Data: corpora, tokenizers and fixed-length token sequences for training and evaluation.

Entry points: `build_tokenizer(cfg)` and `load_split(cfg, split) -> LongTensor[N, cfg.seq_len]`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from edlm.errors import require

TEXT8_ALPHABET = " abcdefghijklmnopqrstuvwxyz"
PREFIX_SPLITS = {"train": (0, 10_000_000), "valid": (10_000_000, 11_000_000), "test": (11_000_000, 12_000_000)}


class CharTokenizer:
    """text8 characters: id 0 is space, 1..26 are a..z; the mask id is 27."""

    vocab_size = len(TEXT8_ALPHABET)
    eos_id = None

    def encode(self, text: str) -> list[int]:
        return [TEXT8_ALPHABET.index(c) for c in text]

    def decode(self, ids) -> str:
        return "".join(TEXT8_ALPHABET[i] if 0 <= i < 27 else "_" for i in ids)


def build_tokenizer(cfg):
    """The tokenizer that `cfg.tokenizer` names."""
    require(cfg.tokenizer == "char", f"data.tokenizer={cfg.tokenizer!r} is not available yet; use char.")
    return CharTokenizer()


def load_split(cfg, split: str) -> torch.Tensor:
    """Chunks Long[N, seq_len] of the requested split ('train', 'valid' or 'test')."""
    require(split in PREFIX_SPLITS, f"split={split!r} is unknown; use train, valid or test.")
    root = Path(cfg.path or os.environ.get("EDLM_DATA", ""))
    path = root / "text8" / "text8_prefix.txt"
    require(path.is_file(), f"text8 not found at {path}; set EDLM_DATA to the shared data directory.")
    start, stop = PREFIX_SPLITS[split]
    with open(path, "rb") as f:
        f.seek(start)
        raw = f.read(stop - start)
    table = torch.full((256,), -1, dtype=torch.long)
    table[torch.tensor(list(TEXT8_ALPHABET.encode()))] = torch.arange(27)
    ids = table[torch.frombuffer(bytearray(raw), dtype=torch.uint8).long()]
    n = ids.numel() // cfg.seq_len
    require(n >= 1, f"the {split} split has {ids.numel()} characters, fewer than one chunk of {cfg.seq_len}.")
    return ids[: n * cfg.seq_len].view(n, cfg.seq_len)
