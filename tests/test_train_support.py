"""Shared helpers of the training and checkpoint tests (this module holds no tests itself).

`text8_dir` writes a synthetic text8-like prefix (12M characters of words from a small vocabulary)
once per test session; `tiny_overrides` gives a model and schedule small enough for CPU tests;
`load_script` imports a benchmark script as a module.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

WORDS = ("the of and one in a to zero nine two is as eight for s seven three was by five with on "
         "four six that from his are it this an were also be which or at had first its new").split()
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="session")
def text8_dir(tmp_path_factory) -> Path:
    """A directory holding text8/text8_prefix.txt with 12,000,000 characters of random words."""
    root = tmp_path_factory.mktemp("text8data")
    generator = torch.Generator().manual_seed(0)
    block = " ".join(WORDS[i] for i in torch.randint(len(WORDS), (40_000,), generator=generator).tolist())
    text = (" " + block) * (12_000_000 // (len(block) + 1) + 1)
    (root / "text8").mkdir()
    (root / "text8" / "text8_prefix.txt").write_text(text[:12_000_000])
    return root


def tiny_overrides(data_dir: Path, out_dir: Path, **train) -> list[str]:
    """key=value overrides for a 1-layer, 32-wide model on 32-character sequences, batch 8."""
    values = {"steps": 6, "batch_size": 8, "warmup_steps": 2, "log_every": 1, "eval_every": 3, "eval_batches": 2,
              "save_every": 3, "ema": 0.9, "lr": 3e-3, "out_dir": str(out_dir), **train}
    model = ["model.n_layers=1", "model.d_model=32", "model.n_heads=2", "model.cond_dim=32", "model.max_seq_len=32"]
    return model + ["data.seq_len=32", f"data.path={data_dir}"] + [f"train.{k}={v}" for k, v in values.items()]


def subprocess_env() -> dict[str, str]:
    """Environment for `python -m edlm` children: this checkout's sources first, no inherited torchrun state."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "EDLM_DATA")}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


PYTHON = sys.executable


def load_script(path: Path):
    """The benchmark script `path` as a module named after its file (registered in sys.modules, where its
    dataclasses look their module up), with the script's directory first on sys.path (the scripts import
    their neighbour benchmarks/common.py)."""
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
