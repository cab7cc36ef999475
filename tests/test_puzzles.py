"""Puzzle data (`edlm.puzzles`): exact solvers, generators with one solution, seeded disjoint splits,
puzzle-file validation, token formats and scores."""

from __future__ import annotations

import random
import re

import pytest

from edlm.errors import EdlmError
from edlm.puzzles.datasets import split_of, sudoku_set, zebra_set
from edlm.puzzles.lines import parse_sudoku_line, read_puzzle_file
from edlm.puzzles.score import ratio_interval, score_answers, wilson_interval
from edlm.puzzles.sudoku import conflict, count_solutions, generate, solutions, solver_order
from edlm.puzzles.tokens import (cells_clamp, cells_tokens, decode_cells, decode_pairs, pairs_prefix, pairs_tokens,
                                 seq_len, sudoku_instance, vocab_size, zebra_instance, zebra_vocab)
from edlm.puzzles.zebra import generate_zebra, parse_zebra, zebra_solutions, zebra_solver_order

# a 4x4 puzzle with one solution (checked below) and its solution
PUZZLE4 = "1000002000030400"


def test_the_solver_counts_every_4x4_grid():
    assert count_solutions((0,) * 16, limit=1000) == 288  # the number of 4x4 Sudoku grids
    assert count_solutions((1, 1) + (0,) * 14) == 0


@pytest.mark.parametrize("size,givens", [(4, 5), (6, 12), (9, 28)])
def test_generated_puzzles_have_exactly_one_solution(size, givens):
    for puzzle, solution in sudoku_set(size, givens, 3, "test", seed=7):
        assert sum(d != 0 for d in puzzle) == givens
        assert count_solutions(puzzle, limit=3) == 1 and solutions(puzzle)[0] == solution
        assert 0 not in solution and conflict(solution) is None
        assert all(p in (0, s) for p, s in zip(puzzle, solution))


def test_too_few_givens_is_refused():
    with pytest.raises(EdlmError, match="givens=3 is out of range for a 4x4 board"):
        generate(4, 3, random.Random(0))


def test_solver_order_fills_each_blank_once_singles_first():
    puzzle, solution = sudoku_set(9, 30, 1, "train")[0]
    order = solver_order(puzzle, solution)
    assert sorted(order) == [i for i, d in enumerate(puzzle) if d == 0]
    assert order != sorted(order)  # not row-major
    board = list(puzzle)  # the first cell filled is a naked or hidden single: forced by the givens
    alternatives = [d for d in range(1, 10) if d != solution[order[0]]]
    for d in alternatives:
        board[order[0]] = d
        assert count_solutions(board) == 0


def test_sets_are_deterministic_and_splits_never_share_a_solution():
    train = sudoku_set(4, 6, 60, "train", seed=3)
    test = sudoku_set(4, 6, 20, "test", seed=3)  # 4x4 has only 288 grids: collisions would show
    assert train == sudoku_set(4, 6, 60, "train", seed=3)
    assert sudoku_set(4, 6, 5, "train", seed=3) == train[:5]  # puzzle i does not depend on the count
    assert sudoku_set(4, 6, 5, "train", seed=4) != train[:5]
    assert not {s for _, s in train} & {s for _, s in test}
    assert {split_of(s) for _, s in train} == {"train"} and {split_of(s) for _, s in test} == {"test"}


@pytest.mark.parametrize("houses,attributes", [(3, 3), (4, 5), (5, 3)])
def test_zebra_puzzles_are_unique_minimal_and_round_trip(houses, attributes):
    puzzle = generate_zebra(houses, attributes, random.Random(f"t{houses}{attributes}"))
    assert zebra_solutions(houses, attributes, puzzle.clues, limit=3) == [puzzle.solution]
    assert all(clue.holds(puzzle.solution) for clue in puzzle.clues)
    for clue in puzzle.clues:  # minimal: every clue is needed
        rest = [c for c in puzzle.clues if c != clue]
        assert len(zebra_solutions(houses, attributes, rest)) == 2
    assert parse_zebra(puzzle.text(), 1) == puzzle
    assert sorted(zebra_solver_order(puzzle)) == list(range(houses * attributes))


def test_zebra_splits_and_bad_lines():
    train, test = zebra_set(3, 4, 8, "train"), zebra_set(3, 4, 4, "test")
    assert not {p.solution for p in train} & {p.solution for p in test}
    assert zebra_set(3, 4, 8, "train") == train
    line = train[0].text()
    with pytest.raises(EdlmError, match="line 4 is not a Zebra puzzle"):
        parse_zebra(line.replace(" | ", " || "), 4)
    fewer = " ; ".join(c.text() for c in train[0].clues[1:]) + " | " + line.split(" | ")[1]
    with pytest.raises(EdlmError, match="line 2: its clues have several solution"):
        parse_zebra(fewer, 2)


def test_a_good_line_parses_with_dots_or_zeros():
    puzzle, solution = parse_sudoku_line("  " + PUZZLE4.replace("0", ".") + "\n", 1)
    assert puzzle == tuple(int(c) for c in PUZZLE4) and count_solutions(puzzle) == 1
    assert solution == solutions(puzzle)[0]


@pytest.mark.parametrize("line,message", [
    ("12340", "line 3 has 5 characters; a Sudoku line has 16, 36 or 81"),
    ("1000002000030500", "line 3, character 14 is '5', not a digit 1-4 or a blank"),
    ("100000200003040x", "line 3, character 16 is 'x'"),
    ("1100000000000000", "line 3: the given 1 at row 1, column 2 repeats in its row (also at row 1, column 1)"),
    ("1000100000000000", "line 3: the given 1 at row 2, column 1 repeats in its column"),
    ("1000010000000000", "line 3: the given 1 at row 2, column 2 repeats in its box"),
    ("1200003000000004", "line 3 has no solution"),
    ("1000000000000000", "line 3 has more than one solution"),
])
def test_bad_lines_name_their_line_number(line, message):
    with pytest.raises(EdlmError, match="^" + re.escape(message)):
        parse_sudoku_line(line, 3)


def test_files_refuse_empty_lines_mixed_sizes_and_missing_files(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text(PUZZLE4 + "\n\n")
    with pytest.raises(EdlmError, match="line 2 of --puzzles .* is empty"):
        read_puzzle_file(path)
    six = "".join(map(str, sudoku_set(6, 14, 1, "test")[0][0]))
    path.write_text(PUZZLE4 + "\n" + six + "\n")
    with pytest.raises(EdlmError, match="line 2 holds a sudoku-6x6 puzzle but line 1 a sudoku-4x4 one"):
        read_puzzle_file(path)
    with pytest.raises(EdlmError, match="is not a file"):
        read_puzzle_file(tmp_path / "missing.txt")


def test_token_formats():
    puzzle, solution = parse_sudoku_line(PUZZLE4, 1)
    inst = sudoku_instance(puzzle, solution)
    assert (vocab_size("cells", inst), vocab_size("pairs", inst)) == (4, 20)
    assert (seq_len("cells", inst), seq_len("pairs", inst)) == (16, 32)
    assert cells_tokens(inst).tolist() == [d - 1 for d in solution]
    assert cells_clamp(inst).tolist() == [d - 1 if d else -1 for d in puzzle]
    givens = [i for i, d in enumerate(puzzle) if d]
    for order, free in (("rowmajor", [i for i, d in enumerate(puzzle) if not d]), ("solver", list(inst.order))):
        tokens = pairs_tokens(inst, order).tolist()
        assert tokens[0::2] == [4 + s for s in givens + free]  # slot ids follow the values
        assert tokens[1::2] == [solution[s] - 1 for s in givens + free]
        assert decode_pairs(tokens, inst) == inst.solution
    assert pairs_prefix(inst).tolist() == pairs_tokens(inst, "solver").tolist()[:2 * len(givens)]
    assert decode_cells(cells_tokens(inst).tolist(), inst) == inst.solution


def test_decoding_pairs_keeps_givens_and_first_writes():
    puzzle, solution = parse_sudoku_line(PUZZLE4, 1)
    inst = sudoku_instance(puzzle, solution)
    prefix = pairs_prefix(inst).tolist()
    blank = inst.order[0]
    wrong = (inst.solution[blank] + 1) % 4
    tail = [4 + 0, wrong, 4 + blank, wrong, 4 + blank, inst.solution[blank], 2, 3, 4 + 1]  # given, twice, bad, cut
    answer = decode_pairs(prefix + tail, inst)
    assert answer[0] == inst.solution[0] and answer[blank] == wrong
    assert sum(a == -1 for a in answer) == 16 - len(prefix) // 2 - 1
    assert decode_cells([0, 7, -1] + [1] * 13, inst)[1:3] == (-1, -1)


def test_zebra_instance_tokens():
    puzzle = generate_zebra(3, 4, random.Random(1))
    inst = zebra_instance(puzzle, max_clues=12)
    assert len(inst.context) == 36 and inst.slots == 12 and inst.values == 3
    assert max(inst.context) == zebra_vocab(3, 4) - 1  # padded with the last id
    tokens = cells_tokens(inst)
    assert tokens.shape == (36 + 12,) and int(tokens.max()) < vocab_size("cells", inst)
    assert int(pairs_tokens(inst, "solver").max()) < vocab_size("pairs", inst)
    with pytest.raises(EdlmError, match="more than max_clues=2"):
        zebra_instance(puzzle, max_clues=2)


def test_intervals():
    low, high = wilson_interval(0, 10)
    assert low == 0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    ratio, low, high = ratio_interval([2, 4], [4, 4])
    assert ratio == 0.75 and low < 0.75 < high


def test_scores_count_changed_givens_as_wrong():
    puzzle, solution = parse_sudoku_line(PUZZLE4, 1)
    inst = sudoku_instance(puzzle, solution)
    changed = list(inst.solution)
    changed[0] = (changed[0] + 1) % 4
    scores = score_answers([inst.solution, tuple(changed)], [inst, inst])
    assert scores["per_puzzle"] == [True, False] and scores["givens_changed"] == 1
    assert scores["cell_accuracy"] == 1.0 and scores["board_accuracy"] == 0.5
