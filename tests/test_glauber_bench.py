"""The iso-compute benchmark script on tiny random-weight models and checkpoints (no result is kept)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from test_train_support import load_script

from edlm.config import load_config
from edlm.errors import EdlmError
from edlm.models import CausalLM, MaskedDiffusionLM
from edlm.train.checkpointing import save_checkpoint
from edlm.train.order import DataPosition
from edlm.util.device import cpu_threads

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "glauber_isocompute.py"
TINY = ["model.n_layers=1", "model.d_model=16", "model.n_heads=2", "model.cond_dim=16", "model.max_seq_len=16",
        "data.seq_len=10"]
AR = ["train.objective=ar", "model.causal=true", "model.adaln=false"]


@pytest.fixture(scope="module")
def bench():
    return load_script(SCRIPT)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with cpu_threads(1):
        yield


def build(overrides, seed):
    cfg = load_config("text8-tiny", TINY + overrides)
    torch.manual_seed(seed)
    return (CausalLM if cfg.model.causal else MaskedDiffusionLM)(cfg.model).eval(), cfg


def test_core_matches_forward_passes_and_reports_quality(bench):
    (ar, _), (infill, _), (oracle, _) = build(AR, 0), build([], 1), build(AR, 2)
    result = bench.run_isocompute(ar, infill, oracle, num_samples=3, seq_len=8, rounds=(1, 2),
                                  variants="single,joint:4,nofilter", seed=0, batch_size=None)
    rows = result["rows"]
    methods = [r["method"] for r in rows]
    assert methods[0] == "ar" and rows[0]["forward_passes_per_sample"] == 1.0
    glauber = [r for r in rows if r["method"].startswith("glauber")]
    best = [r for r in rows if r["method"].startswith("best-of")]
    assert [(r["method"], r["rounds"]) for r in glauber] == [
        ("glauber single", 1), ("glauber single", 2), ("glauber joint:4", 1), ("glauber joint:4", 2),
        ("glauber nofilter", 1), ("glauber nofilter", 2)]
    assert len(best) == len(glauber)
    for g, b in zip(glauber, best):
        assert b["best_of"] == max(1, round(g["forward_passes_per_sample"])) and not b["capped"]
        assert b["forward_passes_per_sample"] == b["best_of"]
    single1, single2 = glauber[0]["forward_passes_per_sample"], glauber[1]["forward_passes_per_sample"]
    # one single-site round: 8 infill rows + at most 2 x 8 LM rows per sample, on top of the AR generation
    assert 1 + 8 <= single1 <= 1 + 3 * 8 and single2 > single1
    # joint:4 = 2 groups per round: 2 infill rows + at most 2 x 2 LM rows per sample
    assert 1 + 2 <= glauber[2]["forward_passes_per_sample"] <= 1 + 6
    assert glauber[4]["forward_passes_per_sample"] == 1 + 8  # no filter: infill only
    for r in rows:
        for key in ("oracle_nll_per_token", "ar_nll_per_token", "entropy_nats", "wall_s"):
            assert math.isfinite(r[key]), (r["method"], key)
        assert r["oracle_ppl"] == pytest.approx(math.exp(r["oracle_nll_per_token"]))
    for g in glauber:
        assert all(0.0 <= a <= 1.0 for a in g["acceptance"])
    # best-of-n never has a worse AR likelihood than plain AR samples (it ranks by exactly that)
    assert min(b["ar_nll_per_token"] for b in best) <= rows[0]["ar_nll_per_token"] + 1e-9


def test_best_of_is_capped_and_marked(bench):
    (ar, _), (infill, _) = build(AR, 0), build([], 1)
    result = bench.run_isocompute(ar, infill, ar, num_samples=2, seq_len=6, rounds=[1], variants="single",
                                  max_best_of=3, batch_size=4)
    best = [r for r in result["rows"] if r["method"].startswith("best-of")]
    assert best[0]["best_of"] == 3 and best[0]["capped"] and best[0]["matched_forward_passes"] > 3


def test_variant_parsing_and_bad_input(bench):
    assert bench.parse_variants("single,block:8,joint:16,persite:4,nofilter") == [
        ("single", {}), ("block:8", {"block": 8}), ("joint:16", {"parallel": 16}),
        ("persite:4", {"parallel": 4, "parallel_test": "per_site"}), ("nofilter", {"metropolis": False})]
    for bad in ("", "joint", "single:2", "block:0", "gibbs"):
        with pytest.raises(EdlmError):
            bench.parse_variants(bad)
    (ar, _), (infill, _) = build(AR, 0), build([], 1)
    small, _ = build(AR + ["model.vocab_size=5"], 3)
    with pytest.raises(EdlmError, match="vocab"):
        bench.run_isocompute(ar, infill, small, num_samples=2, seq_len=4, rounds=[1], variants="single")


def test_main_loads_checkpoints_and_writes_json_and_markdown(bench, tmp_path):
    paths = {}
    for name, overrides, seed in (("ar", AR, 0), ("mdlm", [], 1), ("oracle", AR, 2)):
        model, cfg = build(overrides, seed)
        save_checkpoint(tmp_path / name, step=1, position=DataPosition(0, 0), config=cfg, model=model,
                        ema_model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
        paths[name] = str(tmp_path / name)
    out = tmp_path / "res" / "iso"
    out.parent.mkdir()
    code = bench.main(["--ar", paths["ar"], "--infill", paths["mdlm"], "--oracle", paths["oracle"],
                       "--num-samples", "2",
                       "--rounds", "1", "--variants", "joint:5", "--device", "cpu", "--out", str(out)])
    assert code == 0
    payload = json.loads(out.with_suffix(".json").read_text())
    results = payload["results"]
    assert results["settings"]["seq_len"] == 10 and results["checkpoints"]["ema"] is True
    assert [r["method"] for r in results["rows"]][:2] == ["ar", "glauber joint:5"]
    assert "git_revision" in results and "machine" in results and results["wall_s"] > 0
    assert "| method |" in out.with_suffix(".md").read_text()
    with pytest.raises(EdlmError):
        bench.main(["--ar", paths["mdlm"], "--infill", paths["mdlm"], "--oracle", paths["oracle"],
                    "--device", "cpu", "--out", str(out)])
