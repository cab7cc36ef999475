"""`benchmarks/smollm2_bf16.py`: its comparison of two dtypes' importance weights, on hand-made numbers
(the run itself needs the SmolLM2 file and minutes of CPU)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from test_train_support import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "smollm2_bf16.py"


@pytest.fixture(scope="module")
def bench():
    return load_script(SCRIPT)


def test_identical_log_likelihoods_give_identical_laws(bench):
    lp = torch.tensor([[-3.0, -1.0, -2.0], [-5.0, -4.0, -6.0]], dtype=torch.float64)
    out = bench.compare(lp, lp.clone(), torch.zeros_like(lp))
    assert out == {"max_abs_dlogp_nats": 0.0, "tv_mean": 0.0, "tv_max": 0.0, "top1_agreement": 1.0,
                   "spearman_mean": pytest.approx(1.0)}


def test_a_swapped_pair_by_hand(bench):
    # two candidates: weights (1/(1+e), e/(1+e)) in float32 against their swap in bfloat16
    lp32 = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    lp16 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    out = bench.compare(lp32, lp16, torch.zeros_like(lp32))
    high = math.e / (1 + math.e)
    assert out["tv_mean"] == pytest.approx(high - (1 - high)) and out["max_abs_dlogp_nats"] == 1.0
    assert out["top1_agreement"] == 0.0 and out["spearman_mean"] == pytest.approx(-1.0)


def test_the_weights_divide_by_the_proposal(bench):
    # w = softmax(log p_LM - log p_proposal): float32 weights (1, 1, e^-5) / Z, bfloat16 weights uniform
    lp32 = torch.tensor([[0.0, 0.0, 0.0]], dtype=torch.float64)
    lp16 = torch.tensor([[0.0, 0.0, 5.0]], dtype=torch.float64)
    out = bench.compare(lp32, lp16, torch.tensor([[0.0, 0.0, 5.0]], dtype=torch.float64))
    small = math.exp(-5) / (2 + math.exp(-5))
    assert out["tv_mean"] == pytest.approx(1 / 3 - small)
    assert bench.ranks(torch.tensor([[3.0, 1.0, 2.0]])).tolist() == [[2.0, 0.0, 1.0]]
