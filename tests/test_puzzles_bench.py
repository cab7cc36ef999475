"""benchmarks/puzzles.py, the Sudoku and Zebra tables, as a dry run of all three settings (the CPU ones and
the 9x9 GPU setting) at toy sizes: every row, the paper's numbers beside ours, compute records, reuse of
finished runs; and its claims' intervals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_train_support import load_script, subprocess_env

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "puzzles.py"


@pytest.fixture(scope="module")
def bench():
    return load_script(SCRIPT)


def run(*argv, timeout=600):
    return subprocess.run([sys.executable, str(SCRIPT), *argv], env=subprocess_env(), capture_output=True, text=True,
                          timeout=timeout)


def test_dry_run_of_every_setting_then_reuse(tmp_path):
    argv = ["--dry-run", "--setting", "sudoku-6x6", "zebra-4x4", "sudoku-9x9", "--work", str(tmp_path / "work"),
            "--test", "6", "--out", str(tmp_path / "result")]
    done = run(*argv)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "result.json").read_text())
    assert report["dry_run"] is True and report["git_revision"]
    settings = report["settings"]
    assert [len(settings[s]["rows"]) for s in ("sudoku-6x6", "zebra-4x4", "sudoku-9x9")] == [7, 6, 7]
    sudoku = {r["row"]: r for r in settings["sudoku-9x9"]["rows"]}
    assert sudoku["MDLM top-k margin"]["paper_accuracy"] == 89.49 and sudoku["Glauber N=3"]["rounds"] == 3
    assert sudoku["Glauber N=3"]["block"] == 6 and sudoku["MDLM vanilla"]["unmasking"] == "random"
    for part in settings.values():
        for row in part["rows"]:
            assert row["puzzles"] == 6 and 0 <= row["board_accuracy"] <= 1 and row["calls_per_puzzle"] > 0
            assert row["train_cpu_s"] > 0 and row["train_flops"] > 0 and row["params"] > 0
        assert {c["claim"] for c in part["claims"]} >= {"margin ordering beats vanilla MDLM"}
    glauber = {r["row"]: r for r in settings["sudoku-6x6"]["rows"]}["Glauber N=1"]
    ul2 = json.loads((tmp_path / "work" / "compute" / "sudoku-6x6-ul2.json").read_text())
    assert glauber["train_cpu_s"] > ul2["cpu_s"]  # a Glauber row counts its UL2 pre-training
    assert "| MDLM top-k margin | 89.49 |" in (tmp_path / "result.md").read_text()

    def records():
        work = tmp_path / "work"
        paths = [*(work / "compute").iterdir(), *(work / "eval").rglob("*-cost.json")]
        return {str(p.relative_to(work)): p.read_text() for p in paths}

    before = records()
    assert sum(name.endswith("-cost.json") for name in before) == 20  # one per row
    again = run(*argv)  # the puzzles, finished runs and evaluations are reused: nothing trains or solves again
    assert again.returncode == 0, again.stderr[-3000:]
    assert records() == before and json.loads((tmp_path / "result.json").read_text())["settings"] == settings


def test_bad_options_stop_with_one_sentence(tmp_path):
    done = run("--dry-run", "--jobs", "0", "--work", str(tmp_path))
    assert done.returncode == 2 and done.stderr.strip() == \
        "puzzles: error: --jobs 0, --threads 1 and --test 1000 must each be at least 1."


def test_claims_use_newcombes_interval(bench):
    rows = [{"row": "MDLM top-k margin", "board_accuracy": 0.9, "board_interval": [0.85, 0.94], "puzzles": 200},
            {"row": "MDLM vanilla", "board_accuracy": 0.1, "board_interval": [0.07, 0.15], "puzzles": 200},
            {"row": "Glauber N=1", "board_accuracy": 0.12, "board_interval": [0.08, 0.17], "puzzles": 200}]
    claims = {c["claim"]: c for c in bench.claims(rows)}
    assert set(claims) == {"margin ordering beats vanilla MDLM"}  # only claims whose two rows exist
    margin = claims["margin ordering beats vanilla MDLM"]
    assert margin["difference"] == pytest.approx(0.8) and margin["verdict"] == "holds"
    assert margin["interval"][0] == pytest.approx(0.8 - (0.05 ** 2 + 0.05 ** 2) ** 0.5)
    rows[0].update(board_accuracy=0.11, board_interval=[0.07, 0.16])
    assert bench.claims(rows)[0]["verdict"] == "not resolved (interval covers 0)"
