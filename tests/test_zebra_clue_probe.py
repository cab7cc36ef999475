"""benchmarks/zebra_clue_probe.py: the scores of masked answer cells on a model with known logits, and the
whole probe on a tiny Zebra MDLM trained by `edlm train`."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import torch
from test_train_support import load_script, subprocess_env

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "zebra_clue_probe.py"
PROBS = torch.tensor([0.7, 0.1, 0.1, 0.05, 0.05])  # four values and the mask id


class FixedLogits(torch.nn.Module):
    """Every position gets log PROBS, whatever the input; records the inputs it was called with."""

    mask_id = 4

    def forward(self, x, t):
        self.seen = (x.clone(), t.clone())
        return PROBS.log().expand(*x.shape, -1)


def test_answer_scores_count_only_masked_answer_cells():
    probe = load_script(SCRIPT)
    model = FixedLogits()
    x = torch.tensor([[9, 9, 0, 1, 2, 3], [9, 9, 3, 0, 1, 2]])  # two context ids, four answer cells
    masked = torch.tensor([[True, True, False, False], [False, True, True, True]])
    acc, nll = probe.answer_scores(model, x, masked, context=2, values=4)
    truth = torch.tensor([0, 1, 0, 1, 2])  # the masked cells' values, row by row
    assert acc == 2 / 5  # argmax is always value 0
    values = PROBS[:4] / PROBS[:4].sum()  # the scores renormalise over the value ids: the mask id is no answer
    assert math.isclose(nll, float(-values[truth].log().mean()), rel_tol=1e-6)
    seen, t = model.seen
    assert seen[:, :2].eq(9).all() and (seen[:, 2:] == 4).equal(masked) and t.tolist() == [0.5, 0.75]


def test_probe_of_a_tiny_zebra_mdlm(tmp_path):
    env = subprocess_env()
    data, run = tmp_path / "zebra", tmp_path / "mdlm"
    for argv in (["data", "puzzles", "zebra", str(data), "--houses", "4", "--attributes", "4", "--train", "64",
                  "--valid", "8", "--test", "8", "--seed", "0"],
                 ["train", "zebra-4x4-mdlm", f"data.path={data}", "model.d_model=16", "model.cond_dim=16",
                  "model.n_layers=1", "model.n_heads=2", "train.steps=2",
                  "train.batch_size=4", "train.eval_every=0", f"train.out_dir={run}", "--no-progress"]):
        done = subprocess.run([sys.executable, "-m", "edlm", *argv], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run([sys.executable, str(SCRIPT), "--model", str(run), "--puzzles", str(data / "test.txt"),
                           "--out", str(tmp_path / "probe")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    row, = json.loads((tmp_path / "probe.json").read_text())["rows"]
    assert row["puzzles"] == 8 and row["chance_acc"] == 1 / 4 and math.isclose(row["chance_nll"], math.log(4))
    for key in ("one_masked", "own_clues", "other_clues"):
        assert 0 <= row[f"{key}_acc"] <= 1 and row[f"{key}_nll"] > 0
    assert "| own_clues_acc |" in (tmp_path / "probe.md").read_text()
