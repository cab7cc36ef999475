"""What edlm writes gets the permissions of the user's umask (0644 / 0755 under 022, 0600 / 0700 under
077), although the crash-safe writers start from private temporary files."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from edlm.config import load_config
from edlm.data.files import atomic_path
from edlm.loading.pretrained import save_pretrained
from edlm.models import MaskedDiffusionLM
from edlm.train.checkpointing import save_checkpoint
from edlm.train.optim import EMA, build_optimizer
from edlm.train.order import DataPosition
from edlm.util.atomic import atomic_directory, current_umask, write_text_atomic

TINY = ["model.n_layers=1", "model.d_model=16", "model.n_heads=2", "model.cond_dim=16", "model.max_seq_len=16",
        "data.seq_len=16"]


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def modes(root) -> dict[str, int]:
    """Permission bits of everything under `root`, by relative path."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, root)] = stat.S_IMODE(os.lstat(path).st_mode)
    return found


def expected(root, umask: int) -> dict[str, int]:
    return {name: (0o777 if os.path.isdir(os.path.join(root, name)) else 0o666) & ~umask for name in modes(root)}


def test_current_umask_reads_the_process_umask(umask):
    assert current_umask() == umask


def test_atomic_files_and_directories(tmp_path, umask):
    write_text_atomic(tmp_path / "new" / "report.json", "{}\n")
    with atomic_directory(tmp_path / "model") as tmp:
        (tmp / "weights.bin").write_bytes(b"\0")
    with atomic_path(tmp_path / "cache" / "tokens.npy") as tmp:
        tmp.write_bytes(b"\0")
    found = modes(tmp_path)
    assert set(found) == {"new", "new/report.json", "model", "model/weights.bin", "cache", "cache/tokens.npy"}
    assert found == expected(tmp_path, umask)
    assert found["new/report.json"] == {0o022: 0o644, 0o077: 0o600}[umask]
    assert found["model"] == {0o022: 0o755, 0o077: 0o700}[umask]


def test_checkpoints_and_exports(tmp_path, umask):
    cfg = load_config("text8-tiny", TINY)
    model = MaskedDiffusionLM(cfg.model)
    save_checkpoint(tmp_path / "run", step=1, position=DataPosition(0, 8), config=cfg, model=model,
                    ema_model=EMA(model, 0.9).model, optimizer=build_optimizer(model, cfg.train, torch.device("cpu")))
    save_pretrained(model, tmp_path / "exported", config=cfg)
    found = modes(tmp_path)
    assert {"run/checkpoints/latest", "run/checkpoints/step_00000001/state.json",
            "exported/model.safetensors", "exported/edlm_config.json"} <= set(found)
    assert found == expected(tmp_path, umask)
