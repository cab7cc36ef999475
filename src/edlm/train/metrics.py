"""Training metrics: one JSON object per line in `<out_dir>/metrics.jsonl`, and TensorBoard scalars
under `<out_dir>/tensorboard` when the `tensorboard` package is installed.

Every row has a "step" (optimizer steps completed). A resumed run first drops the rows of steps
after its checkpoint (they are about to be recomputed), so the file of a run that was killed and
resumed reads exactly like the file of an uninterrupted run.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from edlm.util.atomic import write_text_atomic

METRICS_FILE = "metrics.jsonl"


def read_metrics(out_dir) -> list[dict]:
    """All rows of a run's metrics.jsonl (an empty list when there is none)."""
    path = Path(out_dir) / METRICS_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a kill: nothing after it was written
            break
    return rows


class MetricsLog:
    """Appends metric rows for the run in `out_dir`, starting after step `start_step`."""

    def __init__(self, out_dir, start_step: int) -> None:
        self.path = Path(out_dir) / METRICS_FILE
        kept = [row for row in read_metrics(out_dir) if row.get("step", 0) <= start_step]
        write_text_atomic(self.path, "".join(json.dumps(row) + "\n" for row in kept))
        self.file = open(self.path, "a")
        self.tensorboard = None
        if importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(Path(out_dir) / "tensorboard"), purge_step=start_step + 1)

    def write(self, row: dict) -> None:
        """Append one row (it must hold "step") and flush it to the file."""
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.tensorboard is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(key, value, row["step"])

    def close(self) -> None:
        self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
