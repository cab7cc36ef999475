"""Where training runs: this process's rank, world size and device under `torchrun`.

One process and N processes share one code path. Under `torchrun` (which sets RANK, WORLD_SIZE
and LOCAL_RANK) the process group is initialised with NCCL on CUDA and gloo on CPU; alone, the
"world" has size 1 and every collective below is a no-op.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from edlm.util.device import select_device


@dataclass(frozen=True)
class Runtime:
    """This process's place in the job: rank of world_size, and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum `tensor` over all processes, in place; returns it."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


@contextlib.contextmanager
def runtime(device_name: str = "auto"):
    """Yield this process's Runtime, joining the `torchrun` process group (and leaving it at the end)
    when WORLD_SIZE > 1 and no group exists yet."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = select_device(device_name, int(os.environ.get("LOCAL_RANK", "0")))
    owns_group = world_size > 1 and not dist.is_initialized()
    if owns_group:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        yield Runtime(rank, world_size, device)
    finally:
        if owns_group:
            dist.destroy_process_group()
