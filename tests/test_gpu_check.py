"""benchmarks/gpu_check.py, the one-command GPU check, as a CPU dry run (`--device cpu --tiny`), so that
the script a GPU session runs cannot rot; and its model-FLOP count and bf16 peak table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train_support import load_script, subprocess_env
from torch import nn

from edlm.errors import EdlmError
from edlm.metrics.latency import count_host_syncs
from edlm.models import MaskedDiffusionLM, ModelConfig

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def check():
    return load_script(SCRIPT)


def test_dry_run_writes_the_report(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--out", str(tmp_path)],
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["device"]["device"] == "cpu" and report["device"]["torch"] and report["git_revision"]
    assert report["tiny"] is True and set(report["parts"]) == {"tests", "throughput", "latency"}

    tests = report["parts"]["tests"]  # with the CPU as the device every gpu test is collected and skipped
    assert tests["status"] == "ok" and "tests/test_gpu.py" in tests["files"]
    assert tests["counts"].get("skipped", 0) >= 10 and "passed" not in tests["counts"]

    throughput = report["parts"]["throughput"]
    eager, compiled = throughput["rows"]
    assert throughput["status"] == "ok" and eager["mode"] == "eager" and eager["precision"] == "fp32"
    assert eager["tokens_per_s"] > 0 and eager["model_tflops"] > 0 and eager["fraction_of_peak"] is None
    assert 9 < eager["first_loss"] < 12  # a random model over 50,257 tokens: about ln(50257) = 10.8 nats
    assert compiled["mode"] == "compiled" and "skipped" in compiled

    latency = report["parts"]["latency"]
    assert latency["status"] == "ok" and not latency["errors"]
    assert [(m["method"], m["steps"]) for m in latency["measurements"]] == [
        ("ar", None), ("mdlm", 4), ("edlm", 4), ("mdlm", 8), ("edlm", 8)]
    assert all(len(m["seconds"]) == 2 and m["median_s"] > 0 for m in latency["measurements"])
    edlm4 = latency["measurements"][2]
    assert edlm4["k"] == 2 and edlm4["window"] == 0.2 and edlm4["passes_per_sample"]["energy"] == 2  # at t = 1 only
    assert [r["steps"] for r in latency["ratios"]] == [4, 8] and latency["syncs"] == []  # syncs: CUDA only

    page = (tmp_path / "gpu_check.md").read_text()
    for heading in ("# GPU check", "## pytest -m gpu", "## Training throughput", "## Latency at batch size 1"):
        assert heading in page
    assert "| MDLM T=8 |" in page and "| EDLM-AR T=8 k=2 w=0.2 |" in page


def test_bf16_peaks_by_device_name(check):
    assert check.bf16_peak_tflops("NVIDIA H200") == 989.4
    assert check.bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert check.bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert check.bf16_peak_tflops("NVIDIA GH200 480GB") == 989.4
    assert check.bf16_peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert check.bf16_peak_tflops("Tesla T4") is None


def test_flops_count_the_models_matrix_parameters(check):
    """6 x the weights of the per-token linear layers (adaLN and time MLP act once per sequence) + attention."""
    config = ModelConfig(vocab_size=50, n_layers=2, d_model=64, n_heads=2, cond_dim=64, max_seq_len=32)
    model = MaskedDiffusionLM(config)
    per_token = sum(m.weight.numel() for name, m in model.named_modules()
                    if isinstance(m, nn.Linear) and "adaLN" not in name and "time_embed" not in name)
    assert check.flops_per_token(config, 32) == 6 * per_token + 12 * 2 * 64 * 32
    gpt2 = ModelConfig(vocab_size=50257, n_layers=12, d_model=768, n_heads=12, max_seq_len=1024)
    assert check.flops_per_token(gpt2, 1024) == pytest.approx(6 * 123.5e6 + 113.2e6, rel=1e-3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal without CUDA (tests/test_gpu.py counts on a GPU)")
def test_counting_host_syncs_needs_cuda():
    with pytest.raises(EdlmError, match="needs CUDA; run this on a GPU"):
        count_host_syncs(lambda: None)
