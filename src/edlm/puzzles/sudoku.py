"""Sudoku boards: geometry, an exact solver that counts solutions, the order a constraint-propagation
solver fills cells in, and a generator of puzzles with exactly one solution (docs/puzzles.md).

A board of size n (4, 6 or 9; boxes 2x2, 2x3, 3x3) is a tuple of n*n ints in row-major order, the digit
1..n of each cell and 0 for a blank. The solver is a depth-first search over bitmasks of the digits
still allowed in each row, column and box, branching on the blank with the fewest candidates; it is
exact (it enumerates every solution up to `limit`). Random choices come from a `random.Random` that the
caller seeds (`edlm.puzzles.datasets` seeds one per puzzle), so a board is a pure function of its seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

from edlm.errors import EdlmError, require

BOXES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}  # board size -> (box rows, box columns)


@dataclass(frozen=True)
class Geometry:
    """The cells and units of an n x n board: row, column and box index of each cell (tuples of n*n ints),
    and the units (rows, then columns, then boxes), each a tuple of n cell indices."""

    size: int
    box_rows: int
    box_cols: int
    row: tuple[int, ...]
    col: tuple[int, ...]
    box: tuple[int, ...]
    units: tuple[tuple[int, ...], ...]

    @property
    def cells(self) -> int:
        return self.size * self.size

    @property
    def full(self) -> int:
        """The bitmask of every digit: bit d - 1 stands for digit d."""
        return (1 << self.size) - 1


@cache
def geometry(size: int) -> Geometry:
    """The Geometry of an n x n board, n in 4, 6, 9 (EdlmError otherwise)."""
    require(size in BOXES, f"board size {size} is not supported; use 4, 6 or 9 (boxes 2x2, 2x3, 3x3).")
    box_rows, box_cols = BOXES[size]
    cells = range(size * size)
    row = tuple(i // size for i in cells)
    col = tuple(i % size for i in cells)
    box = tuple((r // box_rows) * (size // box_cols) + c // box_cols for r, c in zip(row, col))
    units = tuple(tuple(i for i in cells if key[i] == u) for key in (row, col, box) for u in range(size))
    return Geometry(size, box_rows, box_cols, row, col, box, units)


def board_size(board) -> int:
    """n of a board of n*n cells (EdlmError unless n*n is 16, 36 or 81)."""
    size = round(len(board) ** 0.5)
    require(size * size == len(board) and size in BOXES,
            f"a board of {len(board)} cells is not 4x4, 6x6 or 9x9 (16, 36 or 81 cells).")
    return size


UNIT_NAMES = ("row", "column", "box")


def conflict(board) -> tuple[int, int, str] | None:
    """The first repeated digit as (earlier cell, later cell, "row" / "column" / "box"), or None when
    no row, column or box holds a digit twice."""
    geo = geometry(board_size(board))
    for index, unit in enumerate(geo.units):
        seen = {}
        for i in unit:
            if board[i]:
                if board[i] in seen:
                    return seen[board[i]], i, UNIT_NAMES[index // geo.size]
                seen[board[i]] = i
    return None


def _masks(board, geo: Geometry) -> tuple[list[int], list[int], list[int]]:
    """Bitmasks of the digits used in each row, column and box (the board must have no conflict)."""
    rows, cols, boxes = [0] * geo.size, [0] * geo.size, [0] * geo.size
    for i, d in enumerate(board):
        if d:
            bit = 1 << (d - 1)
            rows[geo.row[i]] |= bit
            cols[geo.col[i]] |= bit
            boxes[geo.box[i]] |= bit
    return rows, cols, boxes


def solutions(board, limit: int = 2, rng: random.Random | None = None) -> list[tuple[int, ...]]:
    """Up to `limit` solutions of `board` (an empty list when it has none or a given breaks a rule).

    rng: None tries digits in increasing order (the first solution found is then the same on every run);
    a `random.Random` shuffles them at every branch (how `generate` draws a random full grid).
    """
    require(limit >= 1, f"limit={limit} must be at least 1.")
    geo = geometry(board_size(board))
    if conflict(board) is not None:
        return []
    cells = list(board)
    rows, cols, boxes = _masks(cells, geo)
    found: list[tuple[int, ...]] = []

    def search() -> None:
        best, best_mask, best_count = -1, 0, geo.size + 1
        for i, d in enumerate(cells):
            if d == 0:
                mask = geo.full & ~(rows[geo.row[i]] | cols[geo.col[i]] | boxes[geo.box[i]])
                count = mask.bit_count()
                if count < best_count:
                    best, best_mask, best_count = i, mask, count
                    if count <= 1:
                        break
        if best < 0:
            found.append(tuple(cells))
            return
        digits = [d for d in range(1, geo.size + 1) if best_mask >> (d - 1) & 1]
        if rng is not None:
            rng.shuffle(digits)
        r, c, b = geo.row[best], geo.col[best], geo.box[best]
        for d in digits:
            bit = 1 << (d - 1)
            cells[best] = d
            rows[r], cols[c], boxes[b] = rows[r] | bit, cols[c] | bit, boxes[b] | bit
            search()
            rows[r], cols[c], boxes[b] = rows[r] & ~bit, cols[c] & ~bit, boxes[b] & ~bit
            cells[best] = 0
            if len(found) >= limit:
                return

    search()
    return found


def count_solutions(board, limit: int = 2) -> int:
    """The number of solutions of `board`, counted exactly up to `limit` (so 0, 1, ..., limit)."""
    return len(solutions(board, limit))


def solver_order(puzzle, solution) -> list[int]:
    """The blank cells of `puzzle` in the order a constraint-propagation solver fills them.

    Each step fills one cell: the first blank (row-major) with a single candidate (a naked single); else
    the first hidden single (units in the order rows, columns, boxes; digits increasing): a digit with
    one place left in a unit; else, when propagation is stuck, the blank with the fewest candidates
    (first in row-major order) takes its value in `solution` (the branch a search would keep). For a
    puzzle with one solution, singles always agree with it. This is the "solver's order" of an AR model
    trained with ordering (`edlm.puzzles.tokens`).
    """
    geo = geometry(board_size(puzzle))
    cells = list(puzzle)
    rows, cols, boxes = _masks(cells, geo)
    order = []
    while 0 in cells:
        cand = {i: geo.full & ~(rows[geo.row[i]] | cols[geo.col[i]] | boxes[geo.box[i]])
                for i, d in enumerate(cells) if d == 0}
        cell = next((i for i, m in cand.items() if m.bit_count() == 1), None)
        if cell is None:
            cell = _hidden_single(geo, cand)
        if cell is None:
            cell = min(cand, key=lambda i: (cand[i].bit_count(), i))
        digit = solution[cell]
        if not cand[cell] >> (digit - 1) & 1:
            raise EdlmError(f"the solution puts {digit} at cell {cell}, which the puzzle's givens rule out; "
                            "pass the puzzle's own solution.")
        bit = 1 << (digit - 1)
        cells[cell] = digit
        rows[geo.row[cell]] |= bit
        cols[geo.col[cell]] |= bit
        boxes[geo.box[cell]] |= bit
        order.append(cell)
    return order


def _hidden_single(geo: Geometry, cand: dict[int, int]) -> int | None:
    """The first blank that is the only place left for some digit in one of its units, or None."""
    for unit in geo.units:
        blanks = [i for i in unit if i in cand]
        for d in range(geo.size):
            places = [i for i in blanks if cand[i] >> d & 1]
            if len(places) == 1:
                return places[0]
    return None


MIN_GIVENS = {4: 4, 6: 8, 9: 17}  # the fewest givens a board of that size with one solution can have


def generate(size: int, givens: int, rng: random.Random, accept=None,
             attempts: int = 64) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(puzzle, solution): a puzzle with exactly `givens` givens and exactly one solution.

    A random full grid (the solver with shuffled digits), drawn again until `accept(grid)` holds (None
    accepts every grid; a split keeps only its own solutions), then its cells in a random order: each is
    blanked if the puzzle keeps a unique solution, until `givens` remain. When a pass ends above `givens`
    (the puzzle became minimal first), a new grid is drawn, for at most `attempts` passes; fewer givens
    make harder puzzles (9x9 boards made this way reach about 22 to 26 givens readily).
    """
    geo = geometry(size)
    require(MIN_GIVENS[size] <= givens <= geo.cells,
            f"givens={givens} is out of range for a {size}x{size} board; use {MIN_GIVENS[size]} to {geo.cells}.")
    passes = 0
    while passes < attempts:
        solution = solutions((0,) * geo.cells, limit=1, rng=rng)[0]
        if accept is not None and not accept(solution):
            continue
        passes += 1
        puzzle = list(solution)
        order = list(range(geo.cells))
        rng.shuffle(order)
        left = geo.cells
        for cell in order:
            if left == givens:
                break
            puzzle[cell] = 0
            if count_solutions(puzzle) == 1:
                left -= 1
            else:
                puzzle[cell] = solution[cell]
        if left == givens:
            return tuple(puzzle), solution
    raise EdlmError(f"no {size}x{size} puzzle with {givens} givens and one solution was found in {attempts} "
                    "attempts; ask for more givens.")
