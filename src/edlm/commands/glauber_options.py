"""Command-line glue for `edlm sample --sampler glauber`: the flags, their checks, the call, and the
per-sample fields written to the JSONL output. `edlm.commands.sample` wires these in; the AR model
that is the energy comes from its `--energy ar:SPEC`, the infill model is its `--denoiser`.
"""

from __future__ import annotations

import argparse

import torch

from edlm.errors import require
from edlm.sampling.glauber import PARALLEL_TESTS, GlauberStats, glauber

# Effective defaults of the Glauber flags; their parser default is None, so a flag the user gave is known
# (and refused without --sampler glauber).
GLAUBER_DEFAULTS = {"rounds": 1, "block": 1, "parallel": 1, "parallel_test": "joint", "metropolis": True}
GLAUBER_FLAGS = {"rounds": "--rounds", "block": "--block", "parallel": "--parallel", "parallel_test": "--parallel-test",
                 "metropolis": "--no-metropolis"}


def add_glauber_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --rounds, --block, --parallel, --parallel-test and --no-metropolis (used with --sampler glauber)."""
    group = parser.add_argument_group("Glauber dynamics (--sampler glauber; the AR model of --energy is the target)")
    group.add_argument("--rounds", type=int, default=None,
                       help="Glauber rounds after the causal initialisation; each visits every position (default 1)")
    group.add_argument("--block", type=int, default=None,
                       help="positions masked together per infill call, updated one at a time (default 1)")
    group.add_argument("--parallel", type=int, default=None,
                       help="positions updated at once per infill call and LM call (default 1; excludes --block)")
    group.add_argument("--parallel-test", choices=PARALLEL_TESTS, default=None,
                       help="with --parallel: one joint Metropolis test (exact) or one per site (approximate) "
                            "(default joint)")
    group.add_argument("--no-metropolis", dest="metropolis", action="store_false", default=None,
                       help="accept every infill proposal (the AR model is then not the stationary distribution)")


def check_glauber_args(args) -> None:
    """Checks of the Glauber flags that need no model; raise EdlmError with one sentence."""
    require(args.rounds >= 0, f"--rounds {args.rounds} must be at least 0.")
    require(args.block >= 1, f"--block {args.block} must be at least 1.")
    require(args.parallel >= 1, f"--parallel {args.parallel} must be at least 1.")
    require(args.block == 1 or args.parallel == 1,
            f"--block {args.block} and --parallel {args.parallel} are different variants; set one of them to 1.")


def run_glauber_from_args(args, lm, denoiser, *, num_samples: int, seq_len: int, prefix=None,
                          generator: torch.Generator | None = None, batch_size: int | None = None,
                          progress: bool = False) -> tuple[torch.Tensor, GlauberStats]:
    """`edlm.glauber` with the flags of `add_glauber_arguments`: returns (samples Long[N, L], stats)."""
    check_glauber_args(args)
    return glauber(lm, denoiser, num_samples, seq_len, args.rounds, metropolis=args.metropolis, block=args.block,
                   parallel=args.parallel, parallel_test=args.parallel_test, prefix=prefix, generator=generator,
                   batch_size=batch_size, return_stats=True, progress=progress)


def glauber_settings(args) -> dict:
    """The Glauber flags as JSONL settings."""
    return dict(sampler="glauber", rounds=args.rounds, block=args.block, parallel=args.parallel,
                parallel_test=args.parallel_test if args.parallel > 1 else None, metropolis=args.metropolis)


def glauber_sample_fields(stats: GlauberStats) -> list[dict]:
    """Per-sample JSONL fields: `acceptance` (accepted / proposed over all rounds; null with no
    proposals) and `energy_initial` / `energy_final` (-log p_AR of the free tokens, nats)."""
    accepted, proposed = stats.accepted.sum(1).tolist(), stats.proposed.sum(1).tolist()
    out = []
    for i in range(stats.energy.shape[0]):
        out.append(dict(acceptance=accepted[i] / proposed[i] if proposed[i] else None,
                        energy_initial=float(stats.energy[i, 0]), energy_final=float(stats.energy[i, -1])))
    return out
