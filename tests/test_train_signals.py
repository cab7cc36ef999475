"""SIGTERM / SIGINT during `edlm train`: the current step is finished and checkpointed, one line names the
step, the checkpoint and the command that resumes, the exit status is 143 / 130, and resuming reaches
exactly the weights of an uninterrupted run."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from test_train_support import PYTHON, subprocess_env, text8_dir, tiny_overrides  # noqa: F401

from edlm.config import load_config
from edlm.train import train
from edlm.train.metrics import read_metrics

# Constant learning rate after warm-up, so the schedule does not depend on train.steps and a run
# stopped at step n of "forever" and resumed to n + 2 is the same as a run of n + 2 steps.
SETTINGS = {"steps": 1_000_000, "save_every": 0, "eval_every": 0, "log_every": 1}
STOPPED = re.compile(r"^edlm train: stopped by (SIG\w+) after step (\d+); checkpoint (\S+); resume with: (.+)$")


def start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for_metrics(proc: subprocess.Popen, run: Path) -> None:
    """Wait until the run has written its first metrics row."""
    deadline = time.monotonic() + 180
    while not any("loss" in row for row in read_metrics(run)):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the training run never wrote a metrics row"
        time.sleep(0.05)


def stop_message(stderr: str) -> re.Match:
    lines = [line for line in stderr.splitlines() if line.startswith("edlm train: stopped")]
    assert len(lines) == 1, stderr
    match = STOPPED.match(lines[0])
    assert match, lines[0]
    return match


def tensors(run: Path, step: int) -> dict:
    directory = run / "checkpoints" / f"step_{step:08d}"
    return {name: load_file(str(directory / f"{name}.safetensors")) for name in ("model", "ema", "optimizer")}


def assert_same_tensors(a: dict, b: dict) -> None:
    for name in a:
        assert a[name].keys() == b[name].keys(), name
        assert all(a[name][k].equal(b[name][k]) for k in a[name]), name  # exact


def test_sigterm_checkpoints_the_current_step_and_resumes_exactly(tmp_path, text8_dir):  # noqa: F811
    run = tmp_path / "stopped"
    args = ["train", "text8-tiny", *tiny_overrides(text8_dir, run, **SETTINGS), "--no-progress"]
    proc = start([PYTHON, "-m", "edlm", *args], subprocess_env())
    wait_for_metrics(proc, run)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr

    match = stop_message(stderr)
    step = int(match[2])
    assert match[1] == "SIGTERM" and step >= 1
    assert Path(match[3]) == run / "checkpoints" / f"step_{step:08d}"
    assert (run / "checkpoints" / "latest").read_text().strip() == f"step_{step:08d}"
    assert max(row["step"] for row in read_metrics(run)) == step
    assert match[4] == shlex.join(["edlm", *args])

    # The printed command resumes (here with a nearer end), reaching the uninterrupted run's weights.
    resume = shlex.split(match[4])
    assert resume[0] == "edlm" and resume[-1] == "--no-progress"
    done = subprocess.run([PYTHON, "-m", "edlm", *resume[1:-1], f"train.steps={step + 2}", "--no-progress"],
                          env=subprocess_env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert f"trained to step {step + 2}" in done.stdout

    straight = tmp_path / "uninterrupted"
    train(load_config("text8-tiny", tiny_overrides(text8_dir, straight, **{**SETTINGS, "steps": step + 2})),
          progress=False)
    assert_same_tensors(tensors(run, step + 2), tensors(straight, step + 2))


def test_sigint_exits_130_after_a_checkpoint(tmp_path, text8_dir):  # noqa: F811
    run = tmp_path / "run"
    proc = start([PYTHON, "-m", "edlm", "train", "text8-tiny", *tiny_overrides(text8_dir, run, **SETTINGS)],
                 subprocess_env())
    wait_for_metrics(proc, run)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    match = stop_message(stderr)
    assert match[1] == "SIGINT" and Path(match[3]).is_dir()


def rank_process(launcher: int, rank: int) -> int:
    """The pid of the torchrun worker with RANK=`rank` among the children of `launcher` (Linux)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for child in Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split():
            try:
                environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"RANK={rank}".encode() in environ:
                return int(child)
        time.sleep(0.1)
    raise AssertionError(f"no worker with RANK={rank}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker processes through /proc")
def test_ddp_ranks_stop_at_the_same_step_when_one_is_signalled(tmp_path, text8_dir):  # noqa: F811
    """Only rank 1 gets SIGTERM; both ranks agree on the step, and rank 0 writes its checkpoint."""
    run = tmp_path / "ddp"
    command = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "edlm", "train",
               "text8-tiny", *tiny_overrides(text8_dir, run, **SETTINGS), "--no-progress"]
    proc = start(command, subprocess_env() | {"OMP_NUM_THREADS": "1"})
    wait_for_metrics(proc, run)
    os.kill(rank_process(proc.pid, 1), signal.SIGTERM)
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode != 0  # torchrun reports the workers' status 143 as a failure
    match = stop_message(stderr)
    step = int(match[2])
    assert match[1] == "SIGTERM" and match[4].startswith("torchrun --nproc_per_node=2 -m edlm train text8-tiny ")
    assert (run / "checkpoints" / "latest").read_text().strip() == f"step_{step:08d}"
    assert re.search(r"exitcode\s*:\s*143", stderr), stderr
