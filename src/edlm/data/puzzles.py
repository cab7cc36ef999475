"""`data.corpus=puzzles`: training rows of a puzzle directory (docs/puzzles.md, Training data).

`data.path` is a directory that `edlm data puzzles` wrote (or any directory with train.txt, valid.txt and
test.txt puzzle files, `edlm.puzzles.corpus`); `data.tokenizer` is a puzzle tokenizer
`puzzle:SHAPE:FORMAT` (`edlm.puzzles.tokenizer`) of the same shape; `data.seq_len` is the format's
length (for Zebra it fixes how many clues a row holds). Rows are cached like token corpora
(`edlm.data.tokens.cached_rows`), keyed by the files' SHA-256, the tokenizer and seq_len.
"""

from __future__ import annotations

import torch

from edlm.data.files import file_digest, resolve_data_path
from edlm.data.tokens import cached_rows
from edlm.errors import require
from edlm.puzzles.corpus import puzzle_path, read_split, solutions_path
from edlm.puzzles.tokenizer import EXAMPLE, PREFIX, PuzzleTokenizer

WRITE_HINT = "write one with edlm data puzzles (e.g. edlm data puzzles sudoku DIR --size 6 --givens 10)"


def load_puzzle_split(cfg, split: str) -> torch.Tensor:
    """LongTensor[N, cfg.seq_len]: the puzzles of `split` in the directory `cfg.path`, in the format of
    `cfg.tokenizer`."""
    require(cfg.tokenizer.startswith(PREFIX), f"data.tokenizer={cfg.tokenizer!r} does not fit corpus puzzles; use "
            f"a puzzle tokenizer such as {EXAMPLE}.")
    tokenizer = PuzzleTokenizer(cfg.tokenizer)
    require(bool(cfg.path), f"data.corpus=puzzles needs data.path, a directory of puzzles; {WRITE_HINT}.")
    directory = resolve_data_path(cfg.path, f"the puzzles ({WRITE_HINT})")
    path = puzzle_path(directory, split)
    require(path.is_file(), f"data.path={cfg.path!r} has no {path.name}, so it is not a puzzle directory; "
            f"{WRITE_HINT}.")
    files = [path] + [f for f in (solutions_path(directory, split),) if f.is_file()]
    tokenizer.max_clues(cfg.seq_len)  # a length that cannot fit stops before any file is read
    key = [tokenizer.fingerprint, split, cfg.seq_len, *(file_digest(f, "sha256") for f in files)]
    return cached_rows(key, cfg.seq_len, lambda: tokenizer.rows(read_split(directory, split), cfg.seq_len))
