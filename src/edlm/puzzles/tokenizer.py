"""Puzzle tokenizers: `data.tokenizer=puzzle:SHAPE:FORMAT` (docs/puzzles.md, Training data).

SHAPE is `sudoku-NxN` (N = 4, 6, 9) or `zebra-MxK` (M houses, K attributes, 3 to 6 each); FORMAT is `cells`
(masked diffusion and Glauber diffusion models), `pairs-rowmajor` or `pairs-solver` (autoregressive
models, the free cells in row-major or in the solver's order). The spec alone fixes the vocabulary, so a
checkpoint rebuilds its tokenizer without the puzzle files. `rows` turns puzzle records into training
rows in the formats of `edlm.puzzles.tokens`.

Text: every id has a symbol. Values are digits (`1`..`n`); in the pairs format slots are `r1c2` (Sudoku
row 1, column 2) or `h1B` (Zebra house 1, attribute B); Zebra clue ids are entities (`A1`), relation
names, houses (`H1`) and `-` (padding). `decode` joins symbols, without a separator when each is one
character (Sudoku cells: the text is a board line) and with spaces otherwise; ids outside the vocabulary
(the mask) read `_`. `encode` is its inverse.
"""

from __future__ import annotations

import torch

from edlm.errors import EdlmError, require
from edlm.puzzles.sudoku import BOXES
from edlm.puzzles.tokens import Instance, cells_tokens, instance_of, pairs_tokens, shape_of, zebra_vocab
from edlm.puzzles.zebra import LETTERS, RELATIONS, SIZES, entity_text, grid_text

PREFIX = "puzzle:"
FORMATS = {"cells": ("cells", None), "pairs-rowmajor": ("pairs", "rowmajor"), "pairs-solver": ("pairs", "solver")}
TOKEN_FORMAT = 1  # bump when the token layout changes, to invalidate cached rows
MASK_SYMBOL = "_"
EXAMPLE = "puzzle:sudoku-6x6:cells"


def parse_shape(shape: str) -> tuple[str, int, int]:
    """("sudoku", n, n) or ("zebra", houses, attributes) of a shape; EdlmError for another text."""
    kind, _, dims = shape.partition("-")
    a, _, b = dims.partition("x")
    ok = a.isdigit() and b.isdigit() and (
        (kind == "sudoku" and a == b and int(a) in BOXES) or (kind == "zebra" and int(a) in SIZES and int(b) in SIZES))
    require(ok, f"puzzle shape {shape!r} is unknown; use sudoku-4x4, sudoku-6x6, sudoku-9x9 or zebra-MxK "
            "(M houses and K attributes, 3 to 6 each).")
    return kind, int(a), int(b)


def puzzle_spec(shape: str, fmt: str) -> str:
    """The tokenizer spec of a shape and a format name (a key of FORMATS)."""
    return f"{PREFIX}{shape}:{fmt}"


class PuzzleTokenizer:
    """The tokenizer of `spec` = "puzzle:SHAPE:FORMAT" (module doc): name, vocab_size, eos_id (None),
    fingerprint, encode, encode_batch, decode, and for the data loader `max_clues` and `rows`."""

    eos_id = None

    def __init__(self, spec: str) -> None:
        head, _, rest = spec.partition(":")
        shape, _, fmt = rest.partition(":")
        require(head + ":" == PREFIX and fmt in FORMATS, f"data.tokenizer={spec!r} is not a puzzle tokenizer; write "
                f"puzzle:SHAPE:FORMAT with FORMAT one of {', '.join(FORMATS)}, e.g. {EXAMPLE}.")
        self.kind, a, b = parse_shape(shape)
        self.name, self.shape, self.format_name = spec, shape, fmt
        self.format, self.order = FORMATS[fmt]
        self.values, self.slots = a, a * b
        self.context_vocab = zebra_vocab(a, b) if self.kind == "zebra" else 0
        self.fingerprint = f"{spec};tokens-v{TOKEN_FORMAT}"
        slots = [f"r{s // b + 1}c{s % b + 1}" if self.kind == "sudoku" else f"h{s // b + 1}{LETTERS[s % b]}"
                 for s in range(self.slots)] if self.format == "pairs" else []
        context = ([entity_text((i // a, i % a)) for i in range(a * b)] + list(RELATIONS)
                   + [f"H{h + 1}" for h in range(a)] + ["-"]) if self.kind == "zebra" else []
        self.symbols = [str(v + 1) for v in range(a)] + slots + context
        self.vocab_size = len(self.symbols)
        self.separator = "" if all(len(s) == 1 for s in self.symbols) else " "
        self._ids = {s: i for i, s in enumerate(self.symbols)}

    def max_clues(self, seq_len: int, what: str | None = None) -> int:
        """The clues a Zebra row of `seq_len` tokens holds (0 for Sudoku); EdlmError, naming the length as
        `what` (default "data.seq_len=N"), when the length does not fit the format."""
        answer = self.slots * (2 if self.format == "pairs" else 1)
        room = seq_len - answer
        fits = room == 0 if self.kind == "sudoku" else room >= 3 and room % 3 == 0
        require(fits, f"{what or f'data.seq_len={seq_len}'} does not fit {self.name}: "
                + (f"use {answer}." if self.kind == "sudoku" else
                   f"use {answer} + 3 x C tokens for up to C clues (three tokens each)."))
        return room // 3

    def instances(self, records: list, max_clues: int, what: str) -> list[Instance]:
        """The Instances of puzzle records (`edlm.puzzles.lines`, record i from line i + 1), Zebra clues padded
        to `max_clues`; EdlmError for a record of another shape, or one with more clues than `what` holds."""
        for number, record in enumerate(records, 1):
            require(shape_of(record) == self.shape, f"line {number} holds a {shape_of(record)} puzzle, but "
                    f"{self.name} takes {self.shape} puzzles; use puzzles and a model (or tokenizer) of one shape.")
            clues = len(getattr(record, "clues", ()))
            require(clues <= max_clues or self.kind == "sudoku", f"line {number} has {clues} clues, more than the "
                    f"{max_clues} that {what} holds (three tokens a clue); use longer rows or puzzles with fewer "
                    "clues.")
        return [instance_of(r, max_clues, with_order=self.order == "solver") for r in records]

    def rows(self, records: list, seq_len: int) -> torch.Tensor:
        """Long[N, seq_len]: puzzle records (`edlm.puzzles.lines`) in this format, for training."""
        instances = self.instances(records, self.max_clues(seq_len), f"data.seq_len={seq_len}")
        rows = [cells_tokens(i) if self.format == "cells" else pairs_tokens(i, self.order) for i in instances]
        return torch.stack(rows) if rows else torch.empty((0, seq_len), dtype=torch.long)

    def answer_text(self, answer) -> str:
        """The line of an answer (a value per slot, -1 where unreadable): a board line for Sudoku (`0` for
        unreadable cells), the grid section of the Zebra text (`?` for unreadable values)."""
        if self.kind == "sudoku":
            return "".join(str(v + 1) if v >= 0 else "0" for v in answer)
        k = self.slots // self.values
        return grid_text([answer[h * k:(h + 1) * k] for h in range(self.values)])

    def encode(self, text: str) -> list[int]:
        parts = list(text.strip()) if self.separator == "" else text.split()
        unknown = [p for p in parts if p not in self._ids]
        if unknown:
            raise EdlmError(f"the text to encode holds {unknown[0]!r}, which is not a symbol of tokenizer {self.name} "
                            f"(its symbols: {' '.join(self.symbols[:12])}{' ...' if self.vocab_size > 12 else ''}).")
        return [self._ids[p] for p in parts]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    def decode(self, ids) -> str:
        return self.separator.join(self.symbols[i] if 0 <= i < self.vocab_size else MASK_SYMBOL for i in map(int, ids))
