"""What a benchmark records beside its numbers: the machine and the git revision of the code."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[3]  # src/edlm/reports/provenance.py -> the checkout, when edlm is one


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
    """HEAD of the checkout edlm runs from, with "+dirty" when tracked or untracked files differ from it;
    "unknown" for an installed (non-checkout) edlm or without git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True).stdout
        return rev + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
