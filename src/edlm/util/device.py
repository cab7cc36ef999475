"""Which device to use, where a model lives, and where random numbers are drawn."""

from __future__ import annotations

import contextlib

import torch

from edlm.errors import EdlmError, require

PRECISIONS = ("auto", "bf16", "fp32")


def module_device(model) -> torch.device:
    """Device of the first parameter of `model` (CPU for parameter-free callables)."""
    params = getattr(model, "parameters", None)
    if params is not None:
        for p in params():
            return p.device
    return torch.device("cpu")


def uniform(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """Float64 uniforms in [0, 1) of `shape`, drawn on the generator's device, returned on `device`."""
    noise_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, dtype=torch.float64, device=noise_device).to(device)


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


@contextlib.contextmanager
def cpu_threads(count: int | None):
    """Run the body with `count` intra-op CPU threads (None or 0: leave the setting), restoring the
    previous count afterwards, so a command run in-process (tests, notebooks) does not change its caller."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
