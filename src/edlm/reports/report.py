"""Evaluation reports: one JSON file and one short Markdown table per command (`--out STEM`).

Both are written atomically (`STEM.json`, `STEM.md`); NaN and infinities become JSON null. The
JSON records the command line, the edlm version and the time next to the results.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from edlm.util.atomic import write_text_atomic


def jsonable(value):
    """`value` with NaN / inf floats replaced by None, recursively (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def fmt(value) -> str:
    """A table cell: 4 significant digits for floats, '-' for missing values."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table of `rows` with the given column keys as headers."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_report(prefix: str | Path, title: str, results: dict, rows: list[dict], columns: list[str],
                 notes: str = "") -> tuple[Path, Path]:
    """Write STEM.json ({"command", "edlm_version", "time", "results"}) and STEM.md (title, table,
    notes). Returns both paths."""
    from edlm.version import __version__

    prefix = Path(prefix)
    payload = {"command": sys.argv, "edlm_version": __version__,
               "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": jsonable(results)}
    json_path, md_path = prefix.with_name(prefix.name + ".json"), prefix.with_name(prefix.name + ".md")
    write_text_atomic(json_path, json.dumps(payload, indent=1, allow_nan=False) + "\n")
    body = f"# {title}\n\n" + markdown_table(rows, columns) + (f"\n{notes.strip()}\n" if notes else "")
    write_text_atomic(md_path, body)
    return json_path, md_path
