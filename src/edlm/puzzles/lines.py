"""Puzzle files: one puzzle per line (docs/puzzles.md).

- Sudoku: n*n characters in row-major order (n = 4, 6 or 9 from the length 16, 36 or 81), the digit of
  each given and `0` or `.` for a blank.
- Zebra: the one-line text of `edlm.puzzles.zebra.ZebraPuzzle`, the clue section and the solution grid
  (`clue ; clue | 1: A1 B2 ; 2: ...`). A file whose first line holds a `|` is read as Zebra puzzles.

A line that is not such a puzzle stops reading with one sentence naming its line number (EdlmError):
for Sudoku a wrong length, a character that is not a digit 1..n or a blank, a given that repeats in its
row, column or box, a board with no solution or with more than one (whole-board accuracy needs the one
answer); for Zebra a malformed line or clues that do not fix its grid. A file holds puzzles of one shape.

A Sudoku file may come with a solutions file, one full board per line in the same order (as
`edlm data puzzles` writes them): `read_solved_sudoku` then checks each solution against its puzzle
(complete, no repeat, the givens kept) instead of searching for it, which is what makes reading large
training sets fast; it does not check that the solution is the only one.
"""

from __future__ import annotations

from pathlib import Path

from edlm.errors import EdlmError, require
from edlm.puzzles.sudoku import BOXES, conflict, solutions
from edlm.puzzles.tokens import shape_of
from edlm.puzzles.zebra import parse_zebra

BLANKS = "0."
LENGTHS = {n * n: n for n in BOXES}


def board_text(board) -> str:
    """The line of a board: digits, `0` for blanks."""
    return "".join(map(str, board))


def _where(cell: int, size: int) -> str:
    return f"row {cell // size + 1}, column {cell % size + 1}"


def parse_board(line: str, where: str) -> tuple[int, ...]:
    """The board of one line (surrounding white space ignored), checked for its length, characters and
    repeated givens but not solved; EdlmError beginning with `where` (such as "line 3")."""
    text = line.strip()
    require(len(text) in LENGTHS, f"{where} has {len(text)} characters; a Sudoku line has 16, 36 or 81 "
            "(a 4x4, 6x6 or 9x9 board: digits for the givens, 0 or . for blanks).")
    size = LENGTHS[len(text)]
    for column, char in enumerate(text, 1):
        require(char in BLANKS or ("1" <= char <= str(size)),
                f"{where}, character {column} is {char!r}, not a digit 1-{size} or a blank (0 or .) of a "
                f"{size}x{size} board; fix the line.")
    board = tuple(0 if char in BLANKS else int(char) for char in text)
    clash = conflict(board)
    if clash is not None:
        first, cell, unit = clash
        raise EdlmError(f"{where}: the given {board[cell]} at {_where(cell, size)} repeats in its {unit} "
                        f"(also at {_where(first, size)}); fix the line.")
    return board


def parse_sudoku_line(line: str, number: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(puzzle, solution) of one line; EdlmError naming line `number` (module doc)."""
    board = parse_board(line, f"line {number}")
    found = solutions(board, limit=2)
    require(len(found) > 0, f"line {number} has no solution (its givens allow no complete board); fix the line.")
    require(len(found) == 1, f"line {number} has more than one solution, so whole-board accuracy is undefined; "
            "add givens until one solution remains.")
    return board, found[0]


def _lines(path, option: str) -> list[str]:
    """The lines of a puzzle file; EdlmError naming `option` for a missing or empty file or an empty line."""
    file = Path(path).expanduser()
    require(file.is_file(), f"{option} {path} is not a file; pass a text file with one puzzle per line.")
    lines = file.read_text(errors="replace").splitlines()
    require(len(lines) > 0, f"{option} {path} is empty; pass a file with one puzzle per line.")
    for number, line in enumerate(lines, 1):
        require(line.strip() != "", f"line {number} of {option} {path} is empty; remove it (one puzzle per line).")
    return lines


def _one_shape(records: list) -> list:
    for number, record in enumerate(records, 1):
        require(shape_of(record) == shape_of(records[0]), f"line {number} holds a {shape_of(record)} puzzle but "
                f"line 1 a {shape_of(records[0])} one; put puzzles of one shape in a file.")
    return records


def read_puzzle_file(path, option: str = "--puzzles") -> list:
    """The puzzles of a file (module doc): (puzzle, solution) pairs of boards for Sudoku, `ZebraPuzzle`s for
    Zebra; EdlmError with one sentence naming `option` for a missing or empty file, or the line number of a
    bad line."""
    lines = _lines(path, option)
    parse = parse_zebra if "|" in lines[0] else parse_sudoku_line
    return _one_shape([parse(line, number) for number, line in enumerate(lines, 1)])


def read_solved_sudoku(path, solutions_path, option: str = "data.path") -> list[tuple[tuple, tuple]]:
    """(puzzle, solution) pairs of a Sudoku file and its solutions file (module doc); EdlmError naming the
    line of a bad puzzle or solution."""
    puzzles, answers = _lines(path, option), _lines(solutions_path, option)
    require(len(puzzles) == len(answers), f"{path} has {len(puzzles)} puzzles but {solutions_path} {len(answers)} "
            "solutions; write the two files again together (edlm data puzzles).")
    records = []
    for number, (line, answer) in enumerate(zip(puzzles, answers), 1):
        puzzle = parse_board(line, f"line {number} of {path}")
        solution = parse_board(answer, f"line {number} of {solutions_path}")
        require(0 not in solution and len(solution) == len(puzzle),
                f"line {number} of {solutions_path} is not a full board of the puzzle's size; fix the line.")
        require(all(p in (0, s) for p, s in zip(puzzle, solution)),
                f"line {number} of {solutions_path} changes a given of its puzzle; fix the line.")
        records.append((puzzle, solution))
    return _one_shape(records)
