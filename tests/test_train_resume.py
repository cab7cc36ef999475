"""A training run killed with SIGKILL and restarted matches the uninterrupted run step for step."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from safetensors.torch import load_file
from test_train_support import PYTHON, subprocess_env, text8_dir, tiny_overrides  # noqa: F401

from edlm.config import load_config
from edlm.train import train
from edlm.train.metrics import read_metrics

# Runs `edlm train` but, after writing the metrics row of step KILL_AT, touches a marker file and
# hangs, so the test can SIGKILL it at a known point: after the checkpoint of step 3, mid-run.
HANG_AFTER_STEP = """
import pathlib, sys, time
import edlm.train.metrics as metrics
from edlm.cli import main
write = metrics.MetricsLog.write
def write_then_hang(self, row):
    write(self, row)
    if row["step"] == {kill_at} and "loss" in row:
        pathlib.Path({marker!r}).touch()
        time.sleep(600)
metrics.MetricsLog.write = write_then_hang
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_and_resume_repeats_the_uninterrupted_run(tmp_path, text8_dir):  # noqa: F811
    settings = {"steps": 8, "save_every": 3, "eval_every": 4}
    uninterrupted = tmp_path / "uninterrupted"
    train(load_config("text8-tiny", tiny_overrides(text8_dir, uninterrupted, **settings)), progress=False)

    killed = tmp_path / "killed"
    args = ["train", "text8-tiny", *tiny_overrides(text8_dir, killed, **settings), "--no-progress"]
    marker = tmp_path / "reached-step-5"
    script = tmp_path / "hang.py"
    script.write_text(HANG_AFTER_STEP.format(kill_at=5, marker=str(marker)))
    proc = subprocess.Popen([PYTHON, str(script), *args], env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the training run never reached step 5"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert (killed / "checkpoints" / "latest").read_text().strip() == "step_00000003"
    assert [r["step"] for r in read_metrics(killed) if "loss" in r] == [1, 2, 3, 4, 5]

    resumed = subprocess.run([PYTHON, "-m", "edlm", *args], env=subprocess_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr

    def losses(run):
        return [(r["step"], r.get("loss"), r.get("val_loss")) for r in read_metrics(run)]

    assert [s for s, _, _ in losses(killed)] == [1, 2, 3, 4, 4, 5, 6, 7, 8, 8]
    assert losses(killed) == losses(uninterrupted)  # exact, not approximately equal
    for name in ("model", "ema", "optimizer"):
        a = load_file(str(killed / "checkpoints" / "step_00000008" / f"{name}.safetensors"))
        b = load_file(str(uninterrupted / "checkpoints" / "step_00000008" / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a), name
