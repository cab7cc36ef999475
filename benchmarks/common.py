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


def provenance(started: float) -> dict:
    """Command line, git revision (with a dirty flag), machine, library versions and wall time (s)."""
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True).stdout.strip())
    except OSError:
        rev, dirty = "unknown", False
    return dict(command=" ".join([Path(sys.executable).name, *sys.argv]), git_revision=rev + ("-dirty" if dirty else ""),
                machine=f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".strip(),
                torch=torch.__version__, threads=torch.get_num_threads(),
                device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                wall_time_s=round(time.perf_counter() - started, 1), date=time.strftime("%Y-%m-%d"))


def write_results(name: str, payload: dict, markdown: str) -> None:
    """benchmarks/results/<name>.json and .md."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)
