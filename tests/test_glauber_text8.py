"""benchmarks/glauber_text8.py (Table 5 of the Glauber-dynamics paper at CPU scale) as a dry run (tiny UL2 and
Glauber models trained by the script's own `edlm train` commands, tiny sizes), its caches and reused runs,
and its pieces: best-of selection, the recorded commands, the checks of its options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train_support import load_script, subprocess_env, text8_dir  # noqa: F401

from edlm.errors import EdlmError

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "glauber_text8.py"


@pytest.fixture(scope="module")
def bench():
    return load_script(SCRIPT)


def run_script(*argv: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(SCRIPT), *argv], env={**subprocess_env(), "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_dry_run_writes_the_report_and_reuses_its_runs_and_caches(text8_dir, tmp_path):  # noqa: F811
    work, out = tmp_path / "work", tmp_path / "glauber_text8"
    common = ["--dry-run", "--work", str(work), "--out", str(out), "--data", str(text8_dir), "--jobs", "2"]
    first = run_script(*common)
    assert first.stdout.count("$ edlm train") == 3 and first.stdout.count("$ edlm eval nll") == 5
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["dry_run"] and report["seq_len"] == 256 and report["provenance"]["git_revision"]
    assert report["settings"]["rounds"] == [1, 3] and report["settings"]["best_of"] == [1, 2]

    samples = {row["method"]: row for row in report["tables"]["samples"]}
    assert list(samples) == ["real test text", "AR", "MDLM T=8", "UL2-style causal, before Glauber training",
                             "real test text after the forward chain N=1 (x_T)",
                             "UL2-style causal, after Glauber training N=1", "Glauber N=1",
                             "real test text after the forward chain N=3 (x_T)",
                             "UL2-style causal, after Glauber training N=3", "Glauber N=3"]
    calls = {method: row["model invocations / sample"] for method, row in samples.items()}
    assert (calls["real test text after the forward chain N=1 (x_T)"],
            calls["real test text after the forward chain N=3 (x_T)"]) == ("256", "768")  # N L infill calls
    assert calls["AR"] == calls["UL2-style causal, before Glauber training"] == "256"
    assert (calls["Glauber N=1"], calls["Glauber N=3"]) == ("512", "1024")  # 2L and 4L
    assert 1 <= float(calls["MDLM T=8"]) <= 8
    iso = [(r["model invocations / output"], r["Glauber"], r["AR"], r["selection passes"])
           for r in report["tables"]["isocompute"]]
    assert iso == [(512, "N=1, best of 1", "best of 2", 0), (1024, "N=1, best of 2", "best of 4", 2),
                   (1024, "N=3, best of 1", "best of 4", 0), (2048, "N=3, best of 2", "best of 8", 2)]
    sets = report["sample_sets"]
    assert sets["glauber-1"]["best_of"]["1"]["oracle_bits"] == pytest.approx(
        float(samples["Glauber N=1"]["oracle bits/char"].split()[0]), abs=5e-4)

    likelihood = {row["model"]: row for row in report["tables"]["likelihood"]}
    assert {m: r["kind"] for m, r in likelihood.items()} == {
        "AR": "exact", "MDLM": "upper_bound", "UL2-style causal": "exact", "Glauber N=1": "upper_bound",
        "Glauber N=3": "upper_bound"}
    assert all(r["sequences"] == 2 and "--max-sequences 2" in r["command"] for r in likelihood.values())
    assert "--num-chains 2" in likelihood["Glauber N=3"]["command"] and "--num-t 2" in likelihood["MDLM"]["command"]
    commands = [t["command"] for t in report["training"]]
    assert commands[0].startswith("edlm train text8-small-ul2 ") and all(t["wall_s"] > 0 for t in report["training"])
    assert f"train.init_from={work / 'ul2'} train.glauber_rounds=3 train.steps=100" in commands[2]
    assert "train.glauber_rounds=1 train.out_dir" in commands[1]  # N = 1: the recipe's steps
    page = out.with_suffix(".md").read_text()
    changed = [report["sample_sets"][f"forward-{n}"]["changed"] for n in (1, 3)]
    assert all(0 < c <= 1 for c in changed)  # a 16-wide 2-step model's heat-bath sweeps change characters
    assert f"Characters changed: {changed[0]:.1%} at N=1, {changed[1]:.1%} at N=3." in page
    for heading in ("# Glauber diffusion on text8", "## Iso-compute best-of-N", "## Likelihood of the first 2 test",
                    "## Training"):
        assert heading in page

    # a rerun, with two of the runs named as given ones, trains, evaluates and samples nothing again
    again = run_script(*common, "--ul2", str(work / "ul2"), "--glauber", f"1={work / 'glauber-1'}")
    assert "$ edlm" not in again.stdout and "sample set" not in again.stdout
    rerun = json.loads(out.with_suffix(".json").read_text())
    assert rerun["tables"] == report["tables"]
    assert [t["command"] is None for t in rerun["training"]] == [True, True, False]


def test_best_keeps_the_highest_score_among_the_first_k(bench):
    candidates = torch.arange(2 * 3 * 2).view(2, 3, 2)  # [S=2, M=3, L=2]
    score = torch.tensor([[0.0, 2.0, 5.0], [3.0, 1.0, 4.0]], dtype=torch.float64)
    assert bench.best(candidates, score, 1).tolist() == [[0, 1], [6, 7]]
    assert bench.best(candidates, score, 2).tolist() == [[2, 3], [6, 7]]
    assert bench.best(candidates, score, 3).tolist() == [[4, 5], [10, 11]]


def test_commands_and_pools(bench, tmp_path):
    settings = bench.Settings()
    assert settings.ar_best_of() == [1, 2, 4, 8, 16]  # (N + 1) K for N in 1, 3 and K in 1, 2, 4
    commands = bench.training_commands(tmp_path, settings, "DATA", ["train.lr=1e-3"], tmp_path / "ul2")
    assert list(commands) == ["ul2", 1, 3]
    assert commands["ul2"] == ["train", "text8-small-ul2", f"train.out_dir={tmp_path / 'ul2'}", "data.path=DATA",
                               "train.lr=1e-3", "--no-progress"]
    assert commands[3][:5] == ["train", "text8-small-glauber", f"train.init_from={tmp_path / 'ul2'}",
                               "train.glauber_rounds=3", "train.steps=100"]
    assert commands[1][-2:] == ["train.lr=1e-3", "--no-progress"] and not bench.train_finished(commands[1][1:])
    assert bench.nll_command("bundled:x", settings, None, "glauber") == [
        "eval", "nll", "bundled:x", "--max-sequences", "16", "--seed", "0", "--num-chains", "4"]


@pytest.mark.parametrize("argv, message", [
    (["--glauber", "one=runs/x"], "is not N=RUN"),
    (["--glauber", "2=runs/x"], "outside --rounds"),
    (["--best-of", "2", "4"], "must hold 1"),
    (["--num-samples", "1"], "must be at least 2"),
    (["--jobs", "0"], "--jobs 0"),
])
def test_options_are_checked_before_any_work(bench, tmp_path, argv, message):
    with pytest.raises(EdlmError, match=message):
        bench.main(["--dry-run", "--work", str(tmp_path / "work"), *argv])
    assert not (tmp_path / "work").exists()
