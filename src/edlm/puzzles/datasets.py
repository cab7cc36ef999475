"""Seeded puzzle sets and their splits (docs/puzzles.md).

Puzzle i of a set is a pure function of (kind, sizes, givens, seed, split, i): its generator is a
`random.Random` seeded with that text, so a set is the same on every machine and puzzle i does not
depend on how many puzzles are asked for (`first` starts a set at puzzle `first`, so that processes can
share the work). Splits are decided by the solution: `split_of` hashes the solution grid (SHA-256) to a
number u in [0, 1) and puts it in test for u < test_fraction, in valid for u < test_fraction +
valid_fraction, else in train; a generator keeps drawing grids until one falls in the split asked for.
Train, valid and test therefore never share a solution, whatever the seeds.
"""

from __future__ import annotations

import hashlib
import random

from edlm.errors import require
from edlm.puzzles.sudoku import generate
from edlm.puzzles.zebra import ZebraPuzzle, generate_zebra

SPLITS = ("train", "valid", "test")
TEST_FRACTION = 0.1
VALID_FRACTION = 0.05


def split_of(solution, test_fraction: float = TEST_FRACTION, valid_fraction: float = VALID_FRACTION) -> str:
    """"train", "valid" or "test" for a solution (any nesting of tuples of ints), by the hash of its text."""
    require(0 <= test_fraction and 0 <= valid_fraction and test_fraction + valid_fraction < 1,
            f"test_fraction={test_fraction} and valid_fraction={valid_fraction} must be >= 0 and sum below 1.")
    digest = hashlib.sha256(repr(solution).encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2 ** 64
    return "test" if u < test_fraction else "valid" if u < test_fraction + valid_fraction else "train"


def _check(split: str, count: int, first: int) -> None:
    require(split in SPLITS, f"split={split!r} is unknown; use train, valid or test.")
    require(count >= 0 and first >= 0, f"count={count} and first={first} must be at least 0.")


def sudoku_set(size: int, givens: int, count: int, split: str, seed: int = 0,
               first: int = 0) -> list[tuple[tuple, tuple]]:
    """Puzzles first .. first + count - 1 of `split` as (puzzle, solution) pairs: n x n boards with `givens`
    givens and one solution."""
    _check(split, count, first)
    return [generate(size, givens, random.Random(f"sudoku:{size}:{givens}:{seed}:{split}:{i}"),
                     accept=lambda grid: split_of(grid) == split) for i in range(first, first + count)]


def zebra_set(houses: int, attributes: int, count: int, split: str, seed: int = 0, first: int = 0) -> list[ZebraPuzzle]:
    """Zebra puzzles first .. first + count - 1 of `split`, each with one solution and a minimal set of clues."""
    _check(split, count, first)
    return [generate_zebra(houses, attributes, random.Random(f"zebra:{houses}:{attributes}:{seed}:{split}:{i}"),
                           accept=lambda grid: split_of(grid) == split) for i in range(first, first + count)]
