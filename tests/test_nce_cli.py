"""EDLM-NCE from the command line, end to end on tiny sizes: `edlm train` an MDLM, then
`edlm train ... train.objective=nce train.init_from=...`, `edlm eval energy`, `edlm sample --energy nce:`."""

from __future__ import annotations

import json

import pytest
import torch
from test_train_support import text8_dir, tiny_overrides  # noqa: F401

from edlm.cli import main
from edlm.util.device import cpu_threads


@pytest.fixture(autouse=True)
def one_thread():
    with cpu_threads(1):
        yield


@pytest.fixture(scope="module")
def runs(tmp_path_factory, text8_dir):  # noqa: F811
    root = tmp_path_factory.mktemp("nce-cli")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mdlm, ar = root / "mdlm", root / "ar"
        assert main(["train", "text8-tiny", *tiny_overrides(text8_dir, mdlm, steps=3), "--no-progress"]) == 0
        assert main(["train", "text8-tiny", *tiny_overrides(text8_dir, ar, steps=1, objective="ar"),
                     "model.causal=true", "model.adaln=false", "--no-progress"]) == 0
        nce = root / "nce"
        overrides = tiny_overrides(text8_dir, nce, steps=3, objective="nce", init_from=str(mdlm), nce_negatives=2)
        assert main(["train", "text8-tiny", *overrides]) == 0
    finally:
        torch.set_num_threads(threads)
    return dict(mdlm=mdlm, ar=ar, nce=nce, root=root)


def test_train_nce_then_eval_energy_then_sample(runs, tmp_path):
    assert (runs["nce"] / "checkpoints" / "step_00000003" / "state.json").is_file()
    rows = [json.loads(line) for line in (runs["nce"] / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]
    assert rows[0]["loss"] == pytest.approx(1.3862944, abs=1e-5)  # 2 log 2: E = 0 at the start
    assert any(r.get("val_metric") == "nce" for r in rows)

    prefix = tmp_path / "fig2"
    code = main(["eval", "energy", f"nce:{runs['nce']}", "--num-t", "3", "--negatives", "4", "--max-sequences", "6",
                 "--batch-size", "4", "--device", "cpu", "--out", str(prefix)])
    assert code == 0
    report = json.loads((tmp_path / "fig2.json").read_text())["results"]
    assert (tmp_path / "fig2-energy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| t | positive |" in (tmp_path / "fig2.md").read_text()
    assert report["split"] == "test" and report["num_sequences"] == 6
    assert report["t"] == pytest.approx([1 / 3, 2 / 3, 1.0]) and report["num_negatives"] == 4
    assert report["denoiser"] == str(runs["mdlm"]) and report["energy_step"] == 3  # default: train.init_from
    for name in ("positive", "negative_mean", "negative_min", "negative_max", "gap", "ess"):
        assert len(report[name]) == 3, name
    for lo, mid, hi, ess in zip(report["negative_min"], report["negative_mean"], report["negative_max"], report["ess"]):
        assert lo <= mid <= hi and 1.0 <= ess <= 4.0 + 1e-9
    assert "positives_below_mean_negative_at_every_t" in report["summary"]

    samples = tmp_path / "s.jsonl"
    code = main(["sample", "--denoiser", str(runs["mdlm"]), "--energy", f"nce:{runs['nce']}", "--k", "2",
                 "--window", "1", "--steps", "4", "--num-samples", "3", "--seq-len", "16", "--device", "cpu",
                 "--out", str(samples)])
    assert code == 0
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(lines) == 3 and all(len(r["ids"]) == 16 and 1.0 <= r["ess_mean"] <= 2.0 for r in lines)
    assert lines[0]["energy"] == f"nce:{runs['nce']}" and lines[0]["k"] == 2


def test_bad_nce_commands_exit_2(runs, text8_dir, capsys, tmp_path):  # noqa: F811
    train_nce = ["train", "text8-tiny", *tiny_overrides(text8_dir, tmp_path / "bad", steps=1, objective="nce")]
    for argv, message in [
        (train_nce, "needs train.init_from"),
        (train_nce + [f"train.init_from={runs['ar']}"], "is a causal LM; NCE needs the mdlm"),
        (train_nce + [f"train.init_from={runs['mdlm']}", "model.vocab_size=30"], "model.vocab_size=30"),
        (["eval", "energy", str(runs["mdlm"]), "--out", str(tmp_path / "x")],
         f"ENERGY 'nce:{runs['mdlm']}' needs an NCE energy, but '{runs['mdlm']}' is a masked diffusion model"),
        (["eval", "energy", f"ar:{runs['ar']}", "--out", str(tmp_path / "x")], "is not an NCE energy"),
        (["eval", "energy", f"nce:{runs['nce']}", "--denoiser", str(runs["ar"]), "--out", str(tmp_path / "x")],
         "--denoiser"),
        (["sample", "--denoiser", str(runs["mdlm"]), "--energy", f"nce:{runs['mdlm']}", "--k", "2", "--window", "1",
          "--out", str(tmp_path / "x.jsonl"), "--device", "cpu"], "needs an NCE energy"),
        (["sample", "--denoiser", str(runs["mdlm"]), "--energy", "nce:", "--out", str(tmp_path / "x.jsonl")],
         "names no model"),
        (["sample", "--denoiser", str(runs["mdlm"]), "--energy", f"coar:{runs['nce']}", "--k", "2", "--window", "1",
          "--out", str(tmp_path / "x.jsonl")], "needs a causal LM, but"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("edlm: error: ") and message in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "x.jsonl").exists()
