"""Data parallelism and gradient accumulation do not change what is computed.

A 2-process `torchrun` run (gloo on CPU) with 2 accumulation steps per process matches a
1-process run with the same global batch: the noise is drawn for the global batch and the
gradients are averaged, so only float rounding (different reduction order) separates them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train_support import PYTHON, subprocess_env, text8_dir, tiny_overrides  # noqa: F401

from edlm.config import load_config
from edlm.train import train
from edlm.train.metrics import read_metrics

SETTINGS = {"steps": 4, "save_every": 0, "eval_every": 2}


def final_tensors(run: Path) -> dict[str, torch.Tensor]:
    step = run / "checkpoints" / "step_00000004"
    return {f"{name}.{key}": value for name in ("model", "ema")
            for key, value in load_file(str(step / f"{name}.safetensors")).items()}


def assert_runs_match(a: Path, b: Path) -> None:
    rows_a, rows_b = read_metrics(a), read_metrics(b)
    assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b] == [1, 2, 2, 3, 4, 4]
    for ra, rb in zip(rows_a, rows_b):
        for key in ("loss", "val_loss", "grad_norm"):
            if key in ra:
                assert ra[key] == pytest.approx(rb[key], rel=1e-5, abs=1e-6), (ra["step"], key)
    ta, tb = final_tensors(a), final_tensors(b)
    assert ta.keys() == tb.keys()
    for key in ta:
        torch.testing.assert_close(ta[key], tb[key], rtol=1e-4, atol=1e-5, msg=key)


@pytest.fixture(scope="module")
def single(tmp_path_factory, text8_dir):  # noqa: F811
    out = tmp_path_factory.mktemp("single") / "run"
    train(load_config("text8-tiny", tiny_overrides(text8_dir, out, **SETTINGS)), progress=False)
    return out


def test_gradient_accumulation_matches_one_batch(single, text8_dir, tmp_path):  # noqa: F811
    out = tmp_path / "accum"
    train(load_config("text8-tiny", tiny_overrides(text8_dir, out, grad_accum=4, **SETTINGS)), progress=False)
    assert_runs_match(single, out)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_two_process_ddp_matches_one_process(single, text8_dir, tmp_path):  # noqa: F811
    out = tmp_path / "ddp"
    overrides = tiny_overrides(text8_dir, out, grad_accum=2, **SETTINGS)
    command = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "edlm", "train", "text8-tiny", *overrides]
    env = subprocess_env() | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 process(es)" in done.stdout and done.stdout.count("trained to step 4") == 1
    assert_runs_match(single, out)
