"""Progress of long loops, the one way every edlm loop reports it.

`progress_bar(...)` returns a bar-like object (`update(n)`, `set_postfix(**values)`, `write(text)`,
`close()`, a context manager, and an iterator when given an iterable):

- on a terminal (the stream is a TTY): a tqdm bar;
- elsewhere (a log file, a pipe, a notebook, a batch job): one plain line on the stream at most every
  `interval` seconds (10 by default), e.g. `sample: 640/2,048 seq-step (31%), 20 s elapsed, ~44 s left`;
- disabled (`enabled=False`): nothing at all.

The stream defaults to standard error, read when `progress_bar` is called (so a redirected stream counts).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Iterable

LOG_INTERVAL_S = 10.0


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
                 initial: int = 0, enabled: bool = True, unit_scale: bool = False,
                 interval: float = LOG_INTERVAL_S, stream=None, clock: Callable[[], float] | None = None):
    """A progress reporter for `total` units named `unit` (module docstring); `initial` units are done
    already. `unit_scale`: the bar shows k/M/G multiples (log lines show exact counts). `interval`:
    seconds between log lines when the stream is not a terminal; `clock`: seconds (default
    `time.monotonic`, looked up at each call so that tests can replace it)."""
    from tqdm import tqdm

    stream = sys.stderr if stream is None else stream
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if not enabled or _isatty(stream):
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, file=stream, disable=not enabled,
                    unit_scale=unit_scale, mininterval=1.0, dynamic_ncols=True)
    return LogProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, interval=interval,
                       stream=stream, clock=clock or time.monotonic)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LogProgress:
    """Plain log lines instead of a bar: at most one per `interval` seconds of `clock`, none for loops
    that end sooner. Same methods as the tqdm bar that edlm's loops use."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None, desc: str, unit: str, initial: int,
                 interval: float, stream, clock: Callable[[], float]) -> None:
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self.initial, self.interval, self.stream, self.clock = initial, initial, interval, stream, clock
        self.start = self.last = clock()
        self.postfix = ""

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float) -> str:
        """'desc: n/total unit (p%), E s elapsed, ~R s left, postfix' (the parts that are known)."""
        elapsed = now - self.start
        parts = [f"{self.n:,}/{self.total:,} {self.unit} ({100 * self.n / self.total:.0f}%)" if self.total
                 else f"{self.n:,} {self.unit}", f"{elapsed:.0f} s elapsed"]
        done = self.n - self.initial
        if self.total and done > 0:
            parts.append(f"~{elapsed * (self.total - self.n) / done:.0f} s left")
        if self.postfix:
            parts.append(self.postfix)
        return f"{self.desc + ': ' if self.desc else ''}{', '.join(parts)}"

    def set_postfix(self, refresh: bool = True, **values) -> None:
        self.postfix = ", ".join(f"{key} {value}" for key, value in values.items())

    def write(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None:
        pass
