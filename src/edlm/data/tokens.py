"""Fixed-length token sequences from documents, wrapped as MDLM does, with an on-disk cache.

Wrapping: each document becomes its tokens followed by EOS; all are concatenated; the stream is cut into blocks
of `seq_len - 2` tokens (the remainder is dropped) and each block becomes `[EOS] + block + [EOS]` (EOS doubles
as BOS, as in GPT-2), so every row starts and ends with EOS and documents run across rows.

Cache: `<cache dir>/tokens/<key>.npy` (int32 [N, seq_len]), keyed by a hash of the corpus content, the
tokenizer's fingerprint, the split, seq_len, valid_fraction and `WRAP_FORMAT`; written atomically, so parallel
processes may race safely. Corpora or tokenizers without a fingerprint are not cached. `cached_rows` is
that cache for any rows with a key (puzzle rows use it too: `edlm.data.puzzles`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Callable

import numpy as np
import torch

from edlm.data.corpora import Corpus, split_documents
from edlm.data.files import atomic_path, cache_dir
from edlm.errors import require

WRAP_FORMAT = 1  # bump when wrapping or document rules change, to invalidate cached splits


def wrap_documents(token_lists, eos_id: int, seq_len: int) -> torch.Tensor:
    """LongTensor[N, seq_len] from per-document token lists (see the module docstring); N = stream // (seq_len - 2)."""
    require(isinstance(seq_len, int) and seq_len >= 3, f"data.seq_len={seq_len!r} is too short to wrap documents; "
                                                       "use at least 3 (EOS, one token, EOS).")
    stream = np.fromiter(itertools.chain.from_iterable(itertools.chain(t, (eos_id,)) for t in token_lists),
                         dtype=np.int64)
    block = seq_len - 2
    n = stream.size // block
    require(n >= 1, f"the split has {stream.size:,} tokens (EOS included), fewer than one sequence of "
                    f"data.seq_len={seq_len} needs ({block} plus 2 EOS); lower data.seq_len or add text.")
    rows = np.full((n, seq_len), eos_id, dtype=np.int64)
    rows[:, 1:-1] = stream[: n * block].reshape(n, block)
    return torch.from_numpy(rows)


def cached_rows(key: list | None, seq_len: int, build: Callable[[], torch.Tensor]) -> torch.Tensor:
    """LongTensor[N, seq_len]: the cache entry of `key` (a JSON-able list that fixes the rows exactly) when
    it is readable, else `build()`, which is then cached; key None builds without caching."""
    path = None
    if key is not None:
        path = cache_dir() / "tokens" / f"{hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]}.npy"
        if path.is_file():
            try:
                rows = np.load(path, allow_pickle=False)
                if rows.ndim == 2 and rows.shape[1] == seq_len:
                    return torch.from_numpy(rows.astype(np.int64))
            except (OSError, ValueError):
                pass  # unreadable cache entry: rebuild it below
    rows = build()
    if path is not None:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, rows.numpy().astype(np.int32))
    return rows


def load_token_split(corpus: Corpus, tokenizer, split: str, seq_len: int, valid_fraction: float) -> torch.Tensor:
    """LongTensor[N, seq_len] of `split` of `corpus`, tokenized and wrapped; read from the cache when possible."""
    require(tokenizer.eos_id is not None, f"tokenizer {tokenizer.name} has no EOS id, which wrapping documents needs; "
                                          "use gpt2, tiktoken:FILE or an hf: tokenizer with an eos_token.")
    key = None
    if corpus.fingerprint and tokenizer.fingerprint:
        key = [WRAP_FORMAT, corpus.fingerprint, tokenizer.fingerprint, split, seq_len, valid_fraction]

    def build() -> torch.Tensor:
        docs = split_documents(corpus, split, valid_fraction)
        return wrap_documents(tokenizer.encode_batch(docs), tokenizer.eos_id, seq_len)

    return cached_rows(key, seq_len, build)
