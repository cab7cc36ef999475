"""Content hashes: checkpoints and pretrained directories record the sha256 of each tensor file, and a
file with flipped bytes (same size) is refused with one sentence, status 2, and nothing written."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from test_outputs import snapshot

from edlm.cli import main
from edlm.config import load_config
from edlm.errors import EdlmError
from edlm.loading.checkpoint import STATE_FILE, read_checkpoint
from edlm.loading.integrity import file_record
from edlm.loading.pretrained import (BUNDLED_ENV, BUNDLED_ROOT, CONFIG_FILE, WEIGHTS_FILE, bundled_names,
                                     from_pretrained, save_pretrained)
from edlm.models import MaskedDiffusionLM
from edlm.train.checkpointing import save_checkpoint
from edlm.train.optim import EMA, build_optimizer
from edlm.train.order import DataPosition

TINY = ["model.n_layers=1", "model.d_model=16", "model.n_heads=2", "model.cond_dim=16", "model.max_seq_len=16",
        "data.seq_len=16"]


def flip_bytes(file, count: int = 100) -> None:
    """Invert `count` bytes of the tensor data at the end of a safetensors file, in place (same size)."""
    data = bytearray(file.read_bytes())
    for i in range(len(data) - count, len(data)):
        data[i] ^= 0xFF
    file.write_bytes(bytes(data))


def error_of(argv, capsys, root) -> str:
    """stderr of `edlm argv`, which must exit 2 with one sentence and change nothing under `root`."""
    before = snapshot(root)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("edlm: error: ") and err.count("\n") == 1, err
    assert snapshot(root) == before
    return err


@pytest.fixture
def run_dir(tmp_path):
    """A run directory with the checkpoint of step 3 of a tiny MDLM."""
    cfg = load_config("text8-tiny", TINY + [f"train.out_dir={tmp_path / 'run'}"])
    torch.manual_seed(0)
    model = MaskedDiffusionLM(cfg.model)
    save_checkpoint(tmp_path / "run", step=3, position=DataPosition(0, 24), config=cfg, model=model,
                    ema_model=EMA(model, 0.9).model, optimizer=build_optimizer(model, cfg.train, torch.device("cpu")))
    return tmp_path / "run"


def test_checkpoint_records_size_and_hash(run_dir):
    ckpt = read_checkpoint(run_dir)
    assert ckpt.state["version"] == 2
    for name in ("model.safetensors", "ema.safetensors", "optimizer.safetensors"):
        record = ckpt.state["files"][name]
        assert record == file_record(ckpt.path / name) and len(record["sha256"]) == 64


def test_corrupt_checkpoint_is_refused(run_dir, tmp_path, capsys):
    ckpt = read_checkpoint(run_dir)
    flip_bytes(ckpt.path / "ema.safetensors")
    err = error_of(["export", str(run_dir), str(tmp_path / "exported")], capsys, tmp_path)
    assert f"{ckpt.path / 'ema.safetensors'} is corrupt: its sha256 is " in err
    assert "recorded in state.json; use another checkpoint of the run" in err


def test_resuming_from_a_corrupt_checkpoint_is_refused(run_dir, tmp_path, capsys):
    ckpt = read_checkpoint(run_dir)
    flip_bytes(ckpt.path / "model.safetensors")
    err = error_of(["train", "text8-tiny", *TINY, f"train.out_dir={run_dir}", "--no-progress"], capsys, tmp_path)
    assert f"{ckpt.path / 'model.safetensors'} is corrupt" in err


def test_corrupt_export_is_refused(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), str(tmp_path / "exported")]) == 0
    meta = json.loads((tmp_path / "exported" / CONFIG_FILE).read_text())
    assert meta["version"] == 2 and meta["files"][WEIGHTS_FILE] == file_record(tmp_path / "exported" / WEIGHTS_FILE)
    flip_bytes(tmp_path / "exported" / WEIGHTS_FILE)
    capsys.readouterr()
    err = error_of(["sample", "--denoiser", str(tmp_path / "exported"), "--device", "cpu", "--out",
                    str(tmp_path / "samples.jsonl")], capsys, tmp_path)
    assert f"{tmp_path / 'exported' / WEIGHTS_FILE} is corrupt: its sha256 is" in err
    assert "export or download the model again" in err


def test_corrupt_bundled_model_is_refused(tmp_path, monkeypatch, capsys):
    root = tmp_path / "bundled"
    shutil.copytree(BUNDLED_ROOT / "text8-small-mdlm", root / "text8-small-mdlm")
    monkeypatch.setenv(BUNDLED_ENV, str(root))
    flip_bytes(root / "text8-small-mdlm" / WEIGHTS_FILE)
    err = error_of(["sample", "--denoiser", "bundled:text8-small-mdlm", "--device", "cpu", "--out",
                    str(tmp_path / "samples.jsonl")], capsys, tmp_path)
    assert f"{root / 'text8-small-mdlm' / WEIGHTS_FILE} is corrupt" in err and "reinstall edlm" in err


def test_shipped_bundled_models_match_their_hashes():
    assert bundled_names() == ["text8-small-ar", "text8-small-mdlm", "text8-small-nce", "text8-small-oracle",
                              "text8-small-sedd", "text8-small-sedd-uniform"]
    for name in bundled_names():
        meta = json.loads((BUNDLED_ROOT / name / CONFIG_FILE).read_text())
        assert meta["version"] == 2
        assert meta["files"][WEIGHTS_FILE] == file_record(BUNDLED_ROOT / name / WEIGHTS_FILE), name


def test_version_1_files_still_load_with_a_size_check(run_dir, tmp_path):
    """Runs and exports written before hashes existed recorded byte sizes only."""
    ckpt = read_checkpoint(run_dir)
    state = json.loads((ckpt.path / STATE_FILE).read_text())
    state["version"] = 1
    state["files"] = {name: record["bytes"] for name, record in state["files"].items()}
    (ckpt.path / STATE_FILE).write_text(json.dumps(state))
    assert read_checkpoint(run_dir).tensors("model").keys() == ckpt.tensors("model").keys()

    cfg = ckpt.config
    path = save_pretrained(MaskedDiffusionLM(cfg.model), tmp_path / "v1", config=cfg)
    meta = json.loads((path / CONFIG_FILE).read_text())
    meta["version"] = 1
    meta["files"] = {WEIGHTS_FILE: meta["files"][WEIGHTS_FILE]["bytes"]}
    (path / CONFIG_FILE).write_text(json.dumps(meta))
    assert isinstance(from_pretrained(path, device="cpu")[0], MaskedDiffusionLM)
    (path / WEIGHTS_FILE).write_bytes((path / WEIGHTS_FILE).read_bytes()[:-4])
    with pytest.raises(EdlmError, match="bytes instead of the .* recorded in edlm_config.json"):
        from_pretrained(path, device="cpu")


def test_a_version_2_record_without_a_hash_is_refused(run_dir):
    ckpt = read_checkpoint(run_dir)
    state = json.loads((ckpt.path / STATE_FILE).read_text())
    state["files"]["model.safetensors"] = state["files"]["model.safetensors"]["bytes"]
    (ckpt.path / STATE_FILE).write_text(json.dumps(state))
    with pytest.raises(EdlmError, match="has no byte size and sha256 for model.safetensors; the directory is corrupt"):
        read_checkpoint(run_dir).tensors("model")
