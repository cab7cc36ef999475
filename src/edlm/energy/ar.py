"""Autoregressive energies: a causal LM corrects the denoiser's factorised proposal (section 4.2.1 of the EDLM paper;
docs/math.md, The corrected kernel).

- `carry_over=False`: `E = -log p_AR(x0) + log mu(x0 | xt)`; the corrected kernel is
  `∝ p_AR(x0)` restricted to the sequences that agree with xt, and `Z(xt) = p_AR(visible tokens of xt)`.
- `carry_over=True` (coAR): only masked positions count,
  `E = -sum_{i masked} log p_AR(x0^i | x0^{<i}) + log mu(x0 | xt)`. Summing the product of the masked
  conditionals over the masked tokens, last position first, gives `Z(xt) = 1` exactly, so likelihood
  estimators need no log Z (`unit_partition = True`).
"""

from __future__ import annotations

import torch

from edlm.errors import require
from edlm.util.device import module_device


class AREnergy:
    """Energy from any causal LM with `token_logprobs(x: Long[B, L]) -> Float[B, L]` and `vocab_size`.

    Call: `energy(x0 Long[B, L], xt Long[B, L], t Float[B], proposal_logp Float64[B]) -> Float64[B]`
    in nats, on the device of `proposal_logp`. The LM runs under `torch.no_grad` on its own device.
    """

    def __init__(self, lm, carry_over: bool = False) -> None:
        require(hasattr(lm, "token_logprobs") and hasattr(lm, "vocab_size"),
                f"{type(lm).__name__} is not a causal LM; pass an object with token_logprobs(x) and vocab_size.")
        self.lm = lm
        self.carry_over = bool(carry_over)
        self.vocab_size = lm.vocab_size
        self.mask_id = lm.vocab_size
        self.unit_partition = self.carry_over

    @torch.no_grad()
    def __call__(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor,
                 proposal_logp: torch.Tensor) -> torch.Tensor:
        logp = self.lm.token_logprobs(x0.to(module_device(self.lm))).double().to(proposal_logp.device)  # [B, L]
        if self.carry_over:
            masked = xt.to(logp.device) == self.mask_id
            logp = torch.where(masked, logp, torch.zeros_like(logp))
        return -logp.sum(dim=1) + proposal_logp.double()

    def __repr__(self) -> str:
        return f"AREnergy({type(self.lm).__name__}, carry_over={self.carry_over})"
