"""`train.compile=true`: the model runs through `torch.compile`, compiled in place, so a compiled run
computes the eager run's losses (up to float rounding of fused kernels) and writes checkpoints with
the plain model's tensor names (no `_orig_mod.` prefix)."""

from __future__ import annotations

import shutil

import pytest
from safetensors.torch import load_file
from test_train_support import text8_dir, tiny_overrides  # noqa: F401

from edlm.config import RunConfig, TrainConfig, load_config
from edlm.errors import EdlmError
from edlm.train import train
from edlm.train.metrics import read_metrics


def test_compile_must_be_a_bool():
    with pytest.raises(EdlmError, match=r"^train.compile=1 must be true or false.$"):
        RunConfig(train=TrainConfig(compile=1))
    with pytest.raises(EdlmError, match=r"^train.compile='maybe' must be true or false.$"):
        load_config("text8-tiny", ["train.compile=maybe"])
    assert load_config("text8-tiny", ["train.compile=true"]).train.compile is True
    assert TrainConfig().compile is False


@pytest.mark.slow  # Inductor compiles C++ kernels for the CPU: about 2 minutes on 2 cores
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("clang++") is None,
                    reason="torch.compile on the CPU needs a C++ compiler (g++ or clang++)")
def test_compiled_run_matches_eager(text8_dir, tmp_path):  # noqa: F811
    runs = {}
    for compiled in (False, True):
        out = tmp_path / f"compile-{compiled}"
        overrides = tiny_overrides(text8_dir, out, steps=3, eval_every=3, save_every=0, compile=str(compiled).lower())
        train(load_config("text8-tiny", overrides), progress=False)
        runs[compiled] = out
    rows = {c: [(r["step"], r.get("loss"), r.get("val_loss")) for r in read_metrics(out)] for c, out in runs.items()}
    assert [r[0] for r in rows[True]] == [r[0] for r in rows[False]] == [1, 2, 3, 3]
    for compiled_row, eager_row in zip(rows[True], rows[False]):
        assert [v is None for v in compiled_row] == [v is None for v in eager_row]
        present = [i for i, v in enumerate(eager_row) if v is not None]
        assert [compiled_row[i] for i in present] == pytest.approx([eager_row[i] for i in present], rel=1e-4, abs=1e-6)
    for name in ("model", "ema", "optimizer"):
        compiled = load_file(str(runs[True] / "checkpoints" / "step_00000003" / f"{name}.safetensors"))
        eager = load_file(str(runs[False] / "checkpoints" / "step_00000003" / f"{name}.safetensors"))
        assert compiled.keys() == eager.keys(), name  # no _orig_mod. prefix anywhere
        for key in eager:
            assert (compiled[key] - eager[key]).abs().max() <= 1e-4, (name, key)
