"""Puzzle training data: `edlm data puzzles` directories (deterministic whatever the worker count, disjoint
splits), puzzle tokenizers, `data.corpus=puzzles` rows in every format with their cache, and one-sentence
refusals of bad settings and files."""

from __future__ import annotations

import json

import pytest
import torch

from edlm.cli import main
from edlm.config import load_config
from edlm.data import build_tokenizer, load_split
from edlm.errors import EdlmError
from edlm.puzzles.corpus import manifest, read_manifest, read_split, write_puzzle_dir
from edlm.puzzles.datasets import split_of, sudoku_set
from edlm.puzzles.lines import board_text
from edlm.puzzles.tokenizer import PuzzleTokenizer
from edlm.puzzles.tokens import instance_of, pairs_prefix, vocab_size


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("puzzle-dirs")
    assert main(["data", "puzzles", "sudoku", str(root / "s6"), "--size", "6", "--givens", "12", "--train", "40",
                 "--valid", "8", "--test", "8"]) == 0
    assert main(["data", "puzzles", "zebra", str(root / "z3"), "--houses", "3", "--attributes", "3", "--train", "20",
                 "--valid", "4", "--test", "4"]) == 0
    return root


def test_a_directory_holds_its_manifest_and_disjoint_splits(dirs):
    meta = read_manifest(dirs / "s6")
    assert meta == manifest("sudoku-6x6", 12, 0, {"train": 40, "valid": 8, "test": 8})
    splits = {split: read_split(dirs / "s6", split) for split in ("train", "valid", "test")}
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [40, 8, 8]
    assert splits["test"] == sudoku_set(6, 12, 8, "test")  # puzzle i is the dataset's puzzle i
    assert all(split_of(solution) == split for split, pairs in splits.items() for _, solution in pairs)
    zebra = read_split(dirs / "z3", "train")
    assert len(zebra) == 20 and read_manifest(dirs / "z3")["givens"] is None
    assert not (dirs / "z3" / "train-solutions.txt").exists()  # a Zebra line holds its grid


def test_worker_processes_write_the_same_files(dirs, tmp_path):
    meta = json.loads((dirs / "z3" / "puzzles.json").read_text())
    write_puzzle_dir(tmp_path / "z3", meta, workers=2, progress=False)
    for name in ("train.txt", "valid.txt", "test.txt", "puzzles.json"):
        assert (tmp_path / "z3" / name).read_text() == (dirs / "z3" / name).read_text()


def test_puzzle_tokenizers_know_their_vocabulary_and_symbols():
    record = sudoku_set(6, 12, 1, "test")[0]
    cells, pairs = PuzzleTokenizer("puzzle:sudoku-6x6:cells"), build_tokenizer("puzzle:sudoku-6x6:pairs-solver")
    inst = instance_of(record)
    assert (cells.vocab_size, pairs.vocab_size) == (vocab_size("cells", inst), vocab_size("pairs", inst)) == (6, 42)
    assert cells.decode(cells.encode(board_text(record[1]))) == board_text(record[1])
    assert cells.decode([0, 5, 6]) == "16_" and cells.eos_id is None
    assert pairs.decode(pairs_prefix(inst)[:4]).split()[1::2] == [str(d) for d in record[0] if d][:2]
    assert pairs.encode("r1c1 3 r6c6 2") == [6, 2, 41, 1]
    zebra = PuzzleTokenizer("puzzle:zebra-4x5:cells")
    assert zebra.vocab_size == 4 + 5 * 4 + 8 + 4 + 1 and zebra.decode(zebra.encode("A1 left-of B3 H2 - 4")) == \
        "A1 left-of B3 H2 - 4"
    assert zebra.max_clues(20 + 3 * 7) == 7
    with pytest.raises(EdlmError, match="'x', which is not a symbol of tokenizer puzzle:sudoku-6x6:cells"):
        cells.encode("12x")


@pytest.mark.parametrize("spec,message", [
    ("puzzle:sudoku-5x5:cells", "puzzle shape 'sudoku-5x5' is unknown"),
    ("puzzle:zebra-4x7:cells", "puzzle shape 'zebra-4x7' is unknown"),
    ("puzzle:sudoku-6x6:pairs", "data.tokenizer='puzzle:sudoku-6x6:pairs' is not a puzzle tokenizer"),
])
def test_bad_tokenizer_specs(spec, message):
    with pytest.raises(EdlmError, match="^" + message):
        build_tokenizer(spec)


def config(directory, tokenizer, seq_len, corpus="puzzles"):
    return load_config("sudoku-6x6-mdlm", [f"data.path={directory}", f"data.tokenizer={tokenizer}",
                                           f"data.seq_len={seq_len}", f"data.corpus={corpus}",
                                           "model.max_seq_len=128"]).data


def test_rows_in_every_format(dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("EDLM_CACHE", str(tmp_path / "cache"))
    records = read_split(dirs / "s6", "valid")
    cells = load_split(config(dirs / "s6", "puzzle:sudoku-6x6:cells", 36), "valid")
    assert cells.tolist() == [[d - 1 for d in solution] for _, solution in records]
    rowmajor = load_split(config(dirs / "s6", "puzzle:sudoku-6x6:pairs-rowmajor", 72), "valid")
    solver = load_split(config(dirs / "s6", "puzzle:sudoku-6x6:pairs-solver", 72), "valid")
    assert rowmajor.shape == solver.shape == (8, 72) and not torch.equal(rowmajor, solver)
    assert torch.equal(rowmajor[:, :24], solver[:, :24])  # the 12 given pairs: the same prefix in both orders
    assert sorted(rowmajor[0, 0::2].tolist()) == list(range(6, 42))  # every cell once
    assert len(list((tmp_path / "cache" / "tokens").glob("*.npy"))) == 3
    assert torch.equal(load_split(config(dirs / "s6", "puzzle:sudoku-6x6:cells", 36), "valid"), cells)  # cached
    zebra = load_split(config(dirs / "z3", "puzzle:zebra-3x3:cells", 9 + 3 * 10), "train")
    assert zebra.shape == (20, 39) and int(zebra.max()) < 3 + 21


def test_a_changed_file_is_read_again_and_a_bad_solution_names_its_line(dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("EDLM_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "s6"
    write_puzzle_dir(copy, read_manifest(dirs / "s6"), progress=False)
    cfg = config(copy, "puzzle:sudoku-6x6:cells", 36)
    first = load_split(cfg, "test")
    answers = (copy / "test-solutions.txt").read_text().splitlines()
    answers[2] = answers[2][1:] + answers[2][0]  # a rotated grid breaks its rows' neighbours or the givens
    (copy / "test-solutions.txt").write_text("\n".join(answers) + "\n")
    with pytest.raises(EdlmError, match="^line 3 of .*test-solutions.txt"):
        load_split(cfg, "test")
    (copy / "test-solutions.txt").unlink()  # without solutions each board is solved
    assert torch.equal(load_split(cfg, "test"), first)


@pytest.mark.parametrize("tokenizer,seq_len,corpus,message", [
    ("puzzle:sudoku-4x4:cells", 16, "puzzles", "line 1 holds a sudoku-6x6 puzzle, but puzzle:sudoku-4x4:cells takes"),
    ("puzzle:sudoku-6x6:cells", 40, "puzzles", "data.seq_len=40 does not fit puzzle:sudoku-6x6:cells: use 36."),
    ("puzzle:sudoku-6x6:cells", 36, "text", "data.tokenizer='puzzle:sudoku-6x6:cells' only fits corpus puzzles"),
    ("char", 36, "puzzles", "data.tokenizer='char' does not fit corpus puzzles"),
])
def test_bad_settings_are_refused(dirs, tmp_path, monkeypatch, tokenizer, seq_len, corpus, message):
    monkeypatch.setenv("EDLM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(EdlmError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        load_split(config(dirs / "s6", tokenizer, seq_len, corpus), "valid")


def test_zebra_rows_need_room_for_their_clues(dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("EDLM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(EdlmError, match=r"data\.seq_len=13 does not fit puzzle:zebra-3x3:cells: use 9 \+ 3 x C"):
        load_split(config(dirs / "z3", "puzzle:zebra-3x3:cells", 13), "train")
    with pytest.raises(EdlmError, match=r"^line \d+ has \d+ clues, more than the 1 that data\.seq_len=12 holds"):
        load_split(config(dirs / "z3", "puzzle:zebra-3x3:cells", 12), "train")


def test_missing_directories_and_refused_options(tmp_path, capsys):
    with pytest.raises(EdlmError, match="write one with edlm data puzzles"):
        load_split(config(tmp_path / "nothing", "puzzle:sudoku-6x6:cells", 36), "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdlmError, match="has no train.txt, so it is not a puzzle directory"):
        load_split(config(tmp_path / "empty", "puzzle:sudoku-6x6:cells", 36), "train")
    for argv, message in ((["zebra", "--size", "4"], "--size applies to sudoku puzzles, not to zebra; drop it."),
                          (["sudoku", "--size", "6", "--givens", "7"], "--givens 7 is out of range for sudoku-6x6"),
                          (["sudoku", "--size", "5"], "puzzle shape 'sudoku-5x5' is unknown"),
                          (["sudoku", "--workers", "0"], "--workers 0 must be at least 1.")):
        assert main(["data", "puzzles", argv[0], str(tmp_path / "o"), *argv[1:], "--train", "1"]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
