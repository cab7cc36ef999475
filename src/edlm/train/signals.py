"""Stopping a training run cleanly on SIGINT (Ctrl-C) or SIGTERM (a scheduler, `kill`).

While `StopSignals` is entered (in the main thread, where Python delivers signals), either signal
only sets a flag; the loop asks `agreed()` at every optimizer-step boundary. Under `torchrun` the
processes combine their flags with one all-reduce of two integers on a CPU (gloo) group, so every
rank stops after the same step even when the signal reaches them at different moments, and the GPU
is never synchronised for it. The loop then writes a checkpoint of that step and raises
`TrainingStopped`. A second Ctrl-C while stopping raises KeyboardInterrupt at once (the checkpoint
writes are atomic, so nothing half written is left); other repeated signals are ignored.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import torch
import torch.distributed as dist

from edlm.train.runtime import Runtime

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(KeyboardInterrupt):
    """Training stopped on signal `signum` after optimizer step `step`; `checkpoint` is the checkpoint
    of that step (on rank 0; None on the other ranks). `exit_code` is 128 + signum (130, 143)."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None, rank: int) -> None:
        self.signum, self.step, self.checkpoint, self.rank = signum, step, checkpoint, rank
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(f"training stopped by {self.signal_name} after step {step}; its checkpoint is "
                         f"{checkpoint}; training the same config again resumes from it.")


class StopSignals:
    """Context manager: catch SIGINT/SIGTERM while training (see the module docstring)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.received: int | None = None
        self.previous: dict = {}
        self.group = None

    def __enter__(self) -> "StopSignals":
        if self.rt.distributed:  # a collective: every rank creates the group
            self.group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}
        if self.group is not None and self.group is not dist.group.WORLD:
            dist.destroy_process_group(self.group)

    def _handle(self, signum: int, frame) -> None:
        if self.received is None:
            self.received = signum
        elif signum == signal.SIGINT == self.received:
            raise KeyboardInterrupt

    def agreed(self) -> int | None:
        """The signal to stop on, the same on every process (SIGTERM if any process got one, else
        SIGINT if any did), or None to go on. Call it on every rank at the same step."""
        flags = torch.tensor([self.received == signal.SIGINT, self.received == signal.SIGTERM], dtype=torch.int64)
        if self.group is not None:
            dist.all_reduce(flags, group=self.group)
        if flags[1]:
            return signal.SIGTERM
        return signal.SIGINT if flags[0] else None
