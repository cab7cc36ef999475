"""What every benchmark records beside its numbers: the command, git revision, machine and wall time."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from edlm.reports.provenance import git_revision, machine  # noqa: F401  (re-exported to the scripts)

RESULTS = Path(__file__).resolve().parent / "results"


def provenance(started: float) -> dict:
    """Command line, git revision, machine and wall time (s)."""
    return dict(command=" ".join([Path(sys.executable).name, *sys.argv]), git_revision=git_revision(),
                machine=machine(), wall_time_s=round(time.perf_counter() - started, 1), date=time.strftime("%Y-%m-%d"))


def write_results(name: str, payload: dict, markdown: str, directory: Path = RESULTS) -> None:
    """<directory>/<name>.json and .md (default directory: benchmarks/results)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (directory / f"{name}.md").write_text(markdown)


def run_main(main, name: str) -> None:
    """Exit with the status main() returns; an EdlmError becomes one line `NAME: error: ...` on stderr and
    exit status 2."""
    from edlm.errors import EdlmError

    try:
        sys.exit(main())
    except EdlmError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(2)
