"""What every benchmark records beside its numbers (the command, git revision, machine and wall time), and
whether a training run a benchmark starts has already finished."""

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


def train_finished(argv: list[str]) -> bool:
    """Whether the run of `edlm train ARGV` (the recipe, its key=value overrides and any `--` options, which
    are ignored) already holds a checkpoint at its last step."""
    from edlm.config import load_config
    from edlm.loading.checkpoint import read_checkpoint
    from edlm.train.checkpointing import latest_checkpoint

    cfg = load_config(argv[0], [w for w in argv[1:] if not w.startswith("--")])
    latest = latest_checkpoint(cfg.train.out_dir)
    return latest is not None and read_checkpoint(latest).step >= cfg.train.steps


def write_results(name: str, payload: dict, markdown: str, directory: Path = RESULTS) -> None:
    """<directory>/<name>.json and .md (default directory: benchmarks/results)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (directory / f"{name}.md").write_text(markdown)


def markdown_table(columns: list[str], rows: list[dict], number: str = "{:.4g}") -> list[str]:
    """The lines of a Markdown table: a header of `columns`, then one line per row dict, floats written with
    `number`, None as an empty cell."""
    def cell(value) -> str:
        return "" if value is None else number.format(value) if isinstance(value, float) else str(value)

    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
            *("| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows)]


def run_main(main, name: str) -> None:
    """Exit with the status main() returns; an EdlmError becomes one line `NAME: error: ...` on stderr and
    exit status 2."""
    from edlm.errors import EdlmError

    try:
        sys.exit(main())
    except EdlmError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(2)
