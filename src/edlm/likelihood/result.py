"""What `edlm.nelbo` returns: per-sequence nats and what kind of number they are."""

from __future__ import annotations

from dataclasses import dataclass

import torch

KINDS = ("exact", "upper_bound", "estimate", "paper_eq13")


@dataclass
class NelboResult:
    """Per-sequence negative log-likelihood numbers.

    nats: Float64[B], total nats per sequence. stderr: Float64[B], Monte Carlo standard error of
    `nats` (0 for exact values). kind: one of "exact", "upper_bound", "estimate", "paper_eq13";
    only "exact" and "upper_bound" may be reported as likelihood bounds. num_tokens: tokens per sequence.
    """

    nats: torch.Tensor
    stderr: torch.Tensor
    kind: str
    num_tokens: int
    num_t: int = 0

    @property
    def nats_per_token(self) -> torch.Tensor:
        return self.nats / self.num_tokens
