"""`edlm sample` end to end on tiny random-weight checkpoints: JSONL output, EDLM, errors, torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edlm.cli import main
from edlm.config import load_config
from edlm.models import CausalLM, MaskedDiffusionLM
from edlm.train.checkpointing import save_checkpoint
from edlm.train.order import DataPosition

TINY = ["model.n_layers=1", "model.d_model=16", "model.n_heads=2", "model.cond_dim=16", "model.max_seq_len=24",
        "data.seq_len=24"]
SRC = str(Path(__file__).resolve().parents[1] / "src")


def write_checkpoint(out: Path, overrides: list[str]) -> Path:
    cfg = load_config("text8-tiny", TINY + overrides)
    torch.manual_seed(0)
    model = (CausalLM if cfg.model.causal else MaskedDiffusionLM)(cfg.model)
    opt = torch.optim.AdamW(model.parameters())
    save_checkpoint(out, step=1, position=DataPosition(0, 0), config=cfg, model=model, ema_model=model, optimizer=opt)
    return out


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    return dict(
        mdlm=write_checkpoint(root / "mdlm", []),
        ar=write_checkpoint(root / "ar", ["train.objective=ar", "model.causal=true", "model.adaln=false"]),
        ar30=write_checkpoint(root / "ar30", ["train.objective=ar", "model.causal=true", "model.adaln=false",
                                              "model.vocab_size=30"]),
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_mdlm_samples_with_prefix(ckpts, tmp_path, capsys):
    out = tmp_path / "s.jsonl"
    code = main(["sample", "--denoiser", str(ckpts["mdlm"]), "--steps", "6", "--num-samples", "3", "--prefix", "the",
                 "--seed", "1", "--out", str(out), "--device", "cpu", "--batch-size", "2"])
    assert code == 0
    rows = read_jsonl(out)
    assert [r["index"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert len(r["ids"]) == 24 and r["text"].startswith("the") and len(r["text"]) == 24
        assert r["ess_mean"] is None and r["steps"] == 6 and (r["k"], r["window"], r["tau"]) == (1, 0.0, 1.0)
        assert r["tokenizer"] == "char" and "energy" not in r and "rounds" not in r
    assert capsys.readouterr().out.count("the") >= 3


def test_edlm_with_ar_energy(ckpts, tmp_path):
    out = tmp_path / "e.jsonl"
    code = main(["sample", "--denoiser", str(ckpts["mdlm"]), "--energy", f"ar:{ckpts['ar']}", "--k", "3",
                 "--window", "0.5", "--steps", "4", "--num-samples", "2", "--out", str(out), "--device", "cpu"])
    assert code == 0
    rows = read_jsonl(out)
    assert len(rows) == 2 and all(1.0 <= r["ess_mean"] <= 3.0 for r in rows)
    assert rows[0]["energy"] == f"ar:{ckpts['ar']}" and rows[0]["k"] == 3
    assert rows[0]["tokenizer"] == "char" and rows[0]["denoiser"] == str(ckpts["mdlm"]) and "carry_over" not in rows[0]


def test_glauber_sampler(ckpts, tmp_path):
    out = tmp_path / "g.jsonl"
    code = main(["sample", "--sampler", "glauber", "--denoiser", str(ckpts["mdlm"]), "--energy", f"ar:{ckpts['ar']}",
                 "--rounds", "2", "--block", "2", "--num-samples", "3", "--seq-len", "10", "--prefix", "ab",
                 "--out", str(out), "--device", "cpu"])
    assert code == 0
    rows = read_jsonl(out)
    assert len(rows) == 3 and all(r["text"].startswith("ab") and len(r["ids"]) == 10 for r in rows)
    assert all(r["sampler"] == "glauber" and r["rounds"] == 2 and 0.0 <= r["acceptance"] <= 1.0 for r in rows)
    assert all(r["energy_final"] > 0 for r in rows)
    assert all(r["metropolis"] is True and r["parallel"] == 1 and "k" not in r for r in rows)
    assert rows[0]["energy"] == f"ar:{ckpts['ar']}" and rows[0]["tokenizer"] == "char"


@pytest.mark.parametrize("extra, message", [
    (["--sampler", "glauber"], "needs the target AR model"),
    (["--sampler", "glauber", "--rounds", "-1"], "--rounds -1"),
    (["--k", "0"], "--k 0"),
    (["--window", "1.5"], "--window 1.5"),
    (["--steps", "0"], "--steps 0"),
    (["--energy", "bogus:x"], "is not an energy spec"),
    (["--energy", "ar:"], "names no model"),
    (["--rounds", "2"], "--rounds applies to --sampler glauber only"),
    (["--block", "2", "--no-metropolis"], "--block, --no-metropolis apply to --sampler glauber only"),
    (["--sampler", "glauber", "--k", "2"], "--k applies to --sampler mdlm only"),
    (["--sampler", "glauber", "--parallel-test", "joint"], "--parallel-test joint applies with --parallel 2"),
    (["--sampler", "glauber", "--energy", "coar:x"], "needs the target AR model as --energy ar:MODEL"),
    (["--energy", "ar:x"], "would have no effect with --k 1 and --window 0"),
    (["--energy", "ar:x", "--k", "4"], "would have no effect with --k 4 and --window 0"),
    (["--trust-remote-code"], "--trust-remote-code applies to an hf: --energy model only"),
    (["--prefix", "a" * 30], "more than --seq-len 24"),
    (["--seq-len", "50"], "max_seq_len=24"),
])
def test_bad_arguments_exit_2(ckpts, tmp_path, capsys, extra, message):
    out = tmp_path / "bad.jsonl"
    code = main(["sample", "--denoiser", str(ckpts["mdlm"]), "--out", str(out), "--device", "cpu", *extra])
    assert code == 2 and message in capsys.readouterr().err
    assert not out.exists()


def test_vocab_mismatch_exits_2(ckpts, tmp_path, capsys):
    code = main(["sample", "--denoiser", str(ckpts["mdlm"]), "--energy", f"ar:{ckpts['ar30']}", "--k", "2",
                 "--window", "1", "--out", str(tmp_path / "x.jsonl"), "--device", "cpu"])
    assert code == 2 and "vocab_size=30 but the denoiser has vocab_size=27" in capsys.readouterr().err


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_torchrun_merges_into_one_file(ckpts, tmp_path):
    out = tmp_path / "ddp.jsonl"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env |= {"PYTHONPATH": SRC + os.pathsep + env.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "edlm",
               "sample", "--denoiser", str(ckpts["mdlm"]), "--steps", "4", "--num-samples", "5", "--seq-len", "12",
               "--out", str(out), "--device", "cpu"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = read_jsonl(out)
    assert [r["index"] for r in rows] == list(range(5)) and all(len(r["ids"]) == 12 for r in rows)
    assert rows[0]["world_size"] == 2
