"""What every benchmark records beside its numbers: the command, git revision, machine and wall time."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """CPU model and core count, GPU name (or None), platform, Python and torch versions, torch threads."""
    cpu = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                    if line.startswith("model name")), "")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return dict(platform=platform.platform(), python=platform.python_version(), torch=torch.__version__, cpu=cpu,
                cores=os.cpu_count(), gpu=gpu, torch_threads=torch.get_num_threads())


def git_revision() -> str:
    """HEAD of the checkout, with "+dirty" when tracked or untracked files differ from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(started: float) -> dict:
    """Command line, git revision, machine and wall time (s)."""
    return dict(command=" ".join([Path(sys.executable).name, *sys.argv]), git_revision=git_revision(),
                machine=machine(), wall_time_s=round(time.perf_counter() - started, 1), date=time.strftime("%Y-%m-%d"))


def write_results(name: str, payload: dict, markdown: str) -> None:
    """benchmarks/results/<name>.json and .md."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)
