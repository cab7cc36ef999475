"""lm-eval's own command line with the `edlm` model (`python -m edlm.metrics.lm_eval_adapter run ...`).

Slow (lm-eval's CLI always indexes its built-in tasks, about 15 s), so it has a file of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("lm_eval", reason="the lm-eval adapter needs the eval extra: pip install 'edlm[eval]'")

from test_eval_lm_eval import write_task  # noqa: E402
from test_eval_tinyhf import build_tiny_hf  # noqa: E402


@pytest.mark.slow
def test_lm_eval_command_line_with_the_edlm_model(tmp_path):
    build_tiny_hf(tmp_path / "gpt2")
    write_task(tmp_path, [{"context": "the cat sat on the", "choices": [" mat", " dog"], "label": 0},
                          {"context": "a quick brown", "choices": [" fox", " river"], "label": 0}])
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "edlm.metrics.lm_eval_adapter", "run", "--model", "edlm",
                           "--model_args", f"pretrained=hf:{tmp_path / 'gpt2'},num_mc=4", "--device", "cpu",
                           "--tasks", "toy_mc", "--include_path", str(tmp_path), "--output_path", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [result] = list(out.rglob("results*.json"))
    results = json.loads(result.read_text())
    assert results["config"]["model"] == "edlm"
    assert 0.0 <= results["results"]["toy_mc"]["acc,none"] <= 1.0
