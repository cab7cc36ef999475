"""edlm's two model kinds on the shared backbone, each satisfying a public protocol (docs/contracts.md).

- `MaskedDiffusionLM`: the denoiser protocol, `model(xt: Long[B, L], t: Float[B]) -> Float[B, L, V]`
  logits for x0 over the data vocabulary (SUBS is applied by the library, not here).
- `CausalLM`: the causal LM protocol, `lm.token_logprobs(x: Long[B, L]) -> Float[B, L]` with
  `log p(x_i | x_<i)`; position 0 is conditioned on the BOS id V.
"""

from __future__ import annotations

import torch
from torch import nn

from edlm.errors import require
from edlm.models.config import ModelConfig
from edlm.models.transformer import KVCache, Transformer


class BackboneModel(nn.Module):
    """What every edlm model kind shares: its `config` and the one `backbone`; `vocab_size` data ids."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = Transformer(config)

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size


class MaskedDiffusionLM(BackboneModel):
    """Bidirectional denoiser mu_theta(x0 | xt, t). Mask id is `vocab_size`."""

    def __init__(self, config: ModelConfig) -> None:
        require(not config.causal, "a masked diffusion model needs model.causal=false.")
        super().__init__(config)

    @property
    def mask_id(self) -> int:
        return self.config.vocab_size

    @property
    def time_conditioned(self) -> bool:
        """False when outputs do not depend on t. Informational: edlm's sampler only calls the denoiser for
        sequences that reveal a token at the current step, which is exact whether or not outputs depend on t."""
        return self.config.time_conditioning

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """xt: Long[B, L] with mask id V; t: Float[B] in [0, 1] -> logits Float[B, L, V]."""
        return self.backbone(xt, t)


class CausalLM(BackboneModel):
    """Autoregressive LM on the backbone with causal attention; id V is the BOS input."""

    def __init__(self, config: ModelConfig) -> None:
        require(config.causal, "an autoregressive model needs model.causal=true.")
        super().__init__(config)

    @property
    def bos_id(self) -> int:
        return self.config.vocab_size

    def with_bos(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L] -> [B, L] inputs: BOS followed by x[:, :-1]."""
        bos = torch.full_like(x[:, :1], self.bos_id)
        return torch.cat([bos, x[:, :-1]], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: Long[B, L] data ids -> logits Float[B, L, V] of x_i given x_<i (BOS before x_0)."""
        return self.backbone(self.with_bos(x))

    def token_logprobs(self, x: torch.Tensor) -> torch.Tensor:
        """x: Long[B, L] -> Float[B, L] log p(x_i | x_<i), computed in float32."""
        logp = torch.log_softmax(self.forward(x).float(), dim=-1)
        return logp.gather(-1, x[..., None]).squeeze(-1)

    def new_cache(self, batch: int, max_len: int, device=None, dtype=None) -> KVCache:
        """An empty KV cache for `batch` sequences of up to `max_len` inputs (BOS included)."""
        param = next(self.parameters())
        return KVCache(self.config, batch, max_len, device or param.device, dtype or param.dtype)

    def next_logits(self, inputs: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Feed `inputs`: Long[B, n] (BOS first on an empty cache) -> logits Float[B, V] for the next token."""
        return self.backbone(inputs, None, cache)[:, -1]
