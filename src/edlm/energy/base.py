"""The Energy protocol (docs/contracts.md, Energy) and the compatibility check samplers run at entry.

An energy corrects a denoiser's factorised proposal `mu(x0 | xt)` into the kernel
`p(x0 | xt) ∝ mu(x0 | xt) exp(-E(x0, xt, t))`: lower energy = more probable.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from edlm.errors import require


@runtime_checkable
class Energy(Protocol):
    """`energy(x0, xt, t, proposal_logp) -> Float64[B]`.

    x0: Long[B, L] candidate clean sequences (data ids). xt: Long[B, L] the noisy sequences they
    complete (mask id = V at masked positions). t: Float[B] diffusion times. proposal_logp:
    Float64[B], `sum over masked i of log mu^i(x0^i | xt)` in nats (log-probabilities, never
    probabilities: docs/pitfalls.md, item 2), supplied by the caller. Returns energies in nats, float64.

    Optional attributes an energy may expose:
    - `vocab_size` (V) and `mask_id` (V): checked against the denoiser before sampling;
    - `unit_partition = True` when `Z(xt) = E_{x0 ~ mu}[exp(-E)] = 1` exactly for every xt and every
      proposal (the carry-over AR energy), so likelihood estimators need no estimate of log Z.
    """

    def __call__(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor,
                 proposal_logp: torch.Tensor) -> torch.Tensor: ...


def check_compatible(denoiser, energy) -> None:
    """Raise EdlmError unless the energy's vocabulary and mask id (where it states them) match the denoiser's."""
    vocab = denoiser.vocab_size
    energy_vocab = getattr(energy, "vocab_size", None)
    require(energy_vocab is None or energy_vocab == vocab,
            f"the energy has vocab_size={energy_vocab} but the denoiser has vocab_size={vocab}; "
            "use an energy model built on the denoiser's tokenizer.")
    energy_mask = getattr(energy, "mask_id", None)
    require(energy_mask is None or energy_mask == vocab,
            f"the energy expects mask id {energy_mask} but the denoiser's mask id is {vocab}; "
            "use an energy and a denoiser that share the vocabulary and mask id.")
