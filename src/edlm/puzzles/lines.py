"""Sudoku puzzle files: one board per line, n*n characters in row-major order (n = 4, 6 or 9 from the
length 16, 36 or 81), the digit of each given and `0` or `.` for a blank (docs/puzzles.md).

A line that is not such a board stops reading with one sentence naming its line number (EdlmError):
a wrong length, a character that is not a digit 1..n or a blank, a given that repeats in its row,
column or box, a board with no solution or with more than one (whole-board accuracy needs the one
answer). A file holds boards of one size.
"""

from __future__ import annotations

from pathlib import Path

from edlm.errors import EdlmError, require
from edlm.puzzles.sudoku import BOXES, conflict, solutions

BLANKS = "0."
LENGTHS = {n * n: n for n in BOXES}


def board_text(board) -> str:
    """The line of a board: digits, `0` for blanks."""
    return "".join(map(str, board))


def _where(cell: int, size: int) -> str:
    return f"row {cell // size + 1}, column {cell % size + 1}"


def parse_sudoku_line(line: str, number: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(puzzle, solution) of one line (surrounding white space ignored); EdlmError naming line `number`."""
    text = line.strip()
    require(len(text) in LENGTHS, f"line {number} has {len(text)} characters; a Sudoku line has 16, 36 or 81 "
            "(a 4x4, 6x6 or 9x9 board: digits for the givens, 0 or . for blanks).")
    size = LENGTHS[len(text)]
    for column, char in enumerate(text, 1):
        require(char in BLANKS or ("1" <= char <= str(size)),
                f"line {number}, character {column} is {char!r}, not a digit 1-{size} or a blank (0 or .) of a "
                f"{size}x{size} board; fix the line.")
    board = tuple(0 if char in BLANKS else int(char) for char in text)
    clash = conflict(board)
    if clash is not None:
        first, cell, unit = clash
        raise EdlmError(f"line {number}: the given {board[cell]} at {_where(cell, size)} repeats in its {unit} "
                        f"(also at {_where(first, size)}); fix the line.")
    found = solutions(board, limit=2)
    require(len(found) > 0, f"line {number} has no solution (its givens allow no complete board); fix the line.")
    require(len(found) == 1, f"line {number} has more than one solution, so whole-board accuracy is undefined; "
            "add givens until one solution remains.")
    return board, found[0]


def read_sudoku_file(path, option: str = "--puzzles") -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(puzzle, solution) of every line of a puzzle file (module doc); EdlmError with one sentence naming
    `option` for a missing or empty file, or the line number of a bad line."""
    file = Path(path).expanduser()
    require(file.is_file(), f"{option} {path} is not a file; pass a text file with one Sudoku board per line.")
    lines = file.read_text(errors="replace").splitlines()
    require(len(lines) > 0, f"{option} {path} is empty; pass a file with one Sudoku board per line.")
    puzzles = []
    for number, line in enumerate(lines, 1):
        require(line.strip() != "", f"line {number} of {option} {path} is empty; remove it (one board per line).")
        puzzles.append(parse_sudoku_line(line, number))
        require(len(puzzles[-1][0]) == len(puzzles[0][0]),
                f"line {number} holds a board of {len(puzzles[-1][0])} cells but line 1 one of {len(puzzles[0][0])}; "
                "put boards of one size in a file.")
    return puzzles
