"""`edlm eval puzzles` end to end on tiny random-weight models (masked diffusion, AR, UL2-style Glauber
diffusion) on Sudoku and Zebra puzzles: solution files, reports, the givens kept, and one-sentence refusals
with exit status 2."""

from __future__ import annotations

import json

import pytest
import torch

from edlm.cli import main
from edlm.config import load_config
from edlm.loading.pretrained import build_run_model, save_pretrained
from edlm.puzzles.datasets import sudoku_set, zebra_set
from edlm.puzzles.lines import board_text
from edlm.puzzles.zebra import parse_zebra

TINY = ["model.n_layers=1", "model.d_model=16", "model.n_heads=2", "model.cond_dim=16"]
MODELS = {  # 4x4 boards: cells format (4 digit ids, 16 positions), pairs format (16 cells + 4 digits, 32)
    "mdlm": ["model.vocab_size=4", "model.max_seq_len=16", "data.seq_len=16"],
    "ar": ["train.objective=ar", "model.causal=true", "model.adaln=false", "model.vocab_size=20",
           "model.max_seq_len=32", "data.seq_len=32"],
    "ul2": ["train.objective=ul2", "model.vocab_size=4", "model.max_seq_len=16", "data.seq_len=16"],
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("puzzles")
    for name, overrides in MODELS.items():
        cfg = load_config("text8-tiny", TINY + overrides)
        torch.manual_seed(0)
        save_pretrained(build_run_model(cfg), root / name, config=cfg)
    puzzles = [p for p, _ in sudoku_set(4, 6, 6, "test")]
    (root / "p.txt").write_text("".join(board_text(p) + "\n" for p in puzzles))
    return root, puzzles


def run(root, model, out, *options, puzzles="p.txt"):
    return main(["eval", "puzzles", str(root / model), "--puzzles", str(root / puzzles), "--out", str(out),
                 "--device", "cpu", *options])


@pytest.mark.parametrize("model,options,method", [
    ("mdlm", ["--unmasking", "margin", "--steps", "8"], "mdlm"),
    ("ar", [], "ar"),
    ("ul2", ["--rounds", "2", "--block", "3"], "glauber-diffusion")])
def test_solutions_and_report(setup, tmp_path, model, options, method):
    root, puzzles = setup
    assert run(root, model, tmp_path / "out", *options) == 0
    lines = (tmp_path / "out-solutions.txt").read_text().splitlines()
    assert len(lines) == len(puzzles)
    for line, puzzle in zip(lines, puzzles):
        assert len(line) == 16 and all(d == 0 or int(c) == d for c, d in zip(line, puzzle))  # givens kept
    results = json.loads((tmp_path / "out.json").read_text())["results"]
    assert results["method"] == method and results["puzzles"] == len(puzzles) and results["givens_changed"] == 0
    assert 0 <= results["board_interval"][0] <= results["board_accuracy"] <= results["board_interval"][1] <= 1
    assert results["calls_per_puzzle"] > 0 and (tmp_path / "out.md").exists()
    assert run(root, model, tmp_path / "again", *options) == 0  # seeded: the same answers
    assert (tmp_path / "again-solutions.txt").read_text() == "\n".join(lines) + "\n"


def test_calls_of_glauber_diffusion(setup, tmp_path):
    root, puzzles = setup
    assert run(root, "ul2", tmp_path / "out", "--block", "16") == 0
    results = json.loads((tmp_path / "out.json").read_text())["results"]
    assert results["calls_per_puzzle"] == 16 + 1  # 16 causal steps, one reverse call for the whole board


def test_a_bad_line_stops_with_its_number(setup, tmp_path, capsys):
    root, puzzles = setup
    bad = tmp_path / "bad.txt"
    bad.write_text(board_text(puzzles[0]) + "\n" + "1100" + "0" * 12 + "\n")
    code = main(["eval", "puzzles", str(root / "mdlm"), "--puzzles", str(bad), "--out", str(tmp_path / "o")])
    assert code == 2 and "line 2: the given 1 at row 1, column 2 repeats in its row" in capsys.readouterr().err
    assert not list(tmp_path.glob("o*"))


@pytest.mark.parametrize("model,options,message", [
    ("ar", ["--unmasking", "margin"], "--unmasking applies to mdlm models"),
    ("mdlm", ["--rounds", "2"], "--rounds applies to glauber-diffusion models"),
    ("ul2", ["--block", "0"], "--block 0 must be at least 1"),
    ("mdlm", ["--max-puzzles", "-1"], "--max-puzzles -1 must be at least 0")])
def test_refused_options(setup, tmp_path, capsys, model, options, message):
    root, _ = setup
    assert run(root, model, tmp_path / "o", *options) == 2
    assert message in capsys.readouterr().err


def test_an_unwritable_out_is_refused_before_any_work(setup, tmp_path, capsys):
    root, _ = setup
    (tmp_path / "o.json").mkdir()
    assert run(root, "mdlm", tmp_path / "o") == 2 and "which is an existing directory" in capsys.readouterr().err


def test_a_model_of_another_board_size_is_refused(setup, tmp_path, capsys):
    root, _ = setup
    six = tmp_path / "six.txt"
    six.write_text(board_text(sudoku_set(6, 14, 1, "test")[0][0]) + "\n")
    code = main(["eval", "puzzles", str(root / "mdlm"), "--puzzles", str(six), "--out", str(tmp_path / "o")])
    assert code == 2 and "take 36 tokens in the cells format, more than MODEL" in capsys.readouterr().err


ZEBRA = {  # 4x4 Zebra puzzles: the recipes' models (trained on puzzle:zebra-4x4:...), and one that knows its length
    "mdlm": ("zebra-4x4-mdlm", []), "ar": ("zebra-4x4-ar", []), "ul2": ("zebra-4x4-ul2", []),
    "plain": ("text8-tiny", ["model.vocab_size=33", "model.max_seq_len=76", "data.seq_len=76"]),
}


@pytest.fixture(scope="module")
def zebra(tmp_path_factory):
    root = tmp_path_factory.mktemp("zebra")
    for name, (recipe, overrides) in ZEBRA.items():
        cfg = load_config(recipe, TINY + overrides)
        torch.manual_seed(0)
        save_pretrained(build_run_model(cfg), root / name, config=cfg)
    puzzles = zebra_set(4, 4, 4, "test")
    (root / "z.txt").write_text("".join(p.text() + "\n" for p in puzzles))
    return root, puzzles


@pytest.mark.parametrize("model,options,method", [
    ("mdlm", ["--unmasking", "margin"], "mdlm"), ("plain", [], "mdlm"), ("ar", [], "ar"),
    ("ul2", ["--rounds", "2", "--block", "4"], "glauber-diffusion")])
def test_zebra_solutions_and_report(zebra, tmp_path, model, options, method):
    root, puzzles = zebra
    assert run(root, model, tmp_path / "out", *options, puzzles="z.txt") == 0
    lines = (tmp_path / "out-solutions.txt").read_text().splitlines()
    assert len(lines) == len(puzzles)
    for line in lines:  # the grid section of a puzzle line: 4 houses of 4 values, `?` where none was written
        houses = [part.split(": ") for part in line.split(" ; ")]
        assert [h for h, _ in houses] == ["1", "2", "3", "4"]
        assert all([e[0] for e in values.split()] == list("ABCD") and all(e[1] in "1234?" for e in values.split())
                   for _, values in houses)
    results = json.loads((tmp_path / "out.json").read_text())["results"]
    assert results["method"] == method and results["shape"] == "zebra-4x4" and results["puzzles"] == len(puzzles)
    assert results["givens_changed"] == 0 and results["calls_per_puzzle"] > 0
    assert results["cells"] == 16 * len(puzzles)  # a Zebra puzzle has no givens: every cell is free
    assert run(root, model, tmp_path / "again", *options, puzzles="z.txt") == 0  # seeded: the same answers
    assert (tmp_path / "again-solutions.txt").read_text() == "\n".join(lines) + "\n"


def test_zebra_refusals(zebra, tmp_path, capsys):
    root, puzzles = zebra
    (root / "z3.txt").write_text(zebra_set(3, 3, 1, "test")[0].text() + "\n")
    assert run(root, "mdlm", tmp_path / "o", puzzles="z3.txt") == 2
    assert "MODEL" in (err := capsys.readouterr().err) and "was trained on zebra-4x4 puzzles" in err
    assert "--puzzles holds zebra-3x3 puzzles" in err
    many = puzzles[0].text().replace(" | ", " ; " + " ; ".join(f"{a}{v} in {h + 1}" for h, row in enumerate(
        puzzles[0].solution) for a, v in zip("ABCD", (x + 1 for x in row))) + " | ")
    clues = len(parse_zebra(many, 1).clues)  # redundant true clues: still one solution, but more than 20
    (root / "many.txt").write_text(many + "\n")
    assert run(root, "plain", tmp_path / "o", puzzles="many.txt") == 2
    assert f"line 1 has {clues} clues, more than the 20 that a row of MODEL" in capsys.readouterr().err
    assert not list(tmp_path.glob("o*"))
