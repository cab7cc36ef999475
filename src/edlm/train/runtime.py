"""Where training runs: device choice, the process group under `torchrun`, and precision.

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

from edlm.errors import EdlmError, require

PRECISIONS = ("auto", "bf16", "fp32")


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """`auto`: CUDA device `local_rank` when CUDA is available, else the CPU; otherwise the named device."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise EdlmError(f"device {name!r} is not a device name; use auto, cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda":
        require(torch.cuda.is_available(), f"device {name!r} was requested but CUDA is not available; use device=auto or cpu.")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        require(device.index < torch.cuda.device_count(),
                f"device {device} does not exist (this machine has {torch.cuda.device_count()} GPUs); "
                "start fewer processes per node.")
    return device


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


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype that `train.precision` asks for on `device` (None: plain fp32).

    "auto" is bf16 autocast on CUDA and fp32 elsewhere; "bf16" requires CUDA; "fp32" never autocasts.
    """
    require(precision in PRECISIONS, f"train.precision={precision!r} is unknown; use one of {PRECISIONS}.")
    require(precision != "bf16" or device.type == "cuda",
            f"train.precision=bf16 needs a CUDA device, not {device}; use precision=auto or fp32.")
    return torch.bfloat16 if device.type == "cuda" and precision != "fp32" else None


def autocast(dtype: torch.dtype | None, device: torch.device):
    """An autocast context for `dtype` on `device`, or a no-op context for None."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
