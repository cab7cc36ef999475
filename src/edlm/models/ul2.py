"""The UL2-style model of Glauber diffusion: one set of weights, two modes (docs/glauber.md, Glauber diffusion).

- **Infill mode** (the denoiser protocol, docs/contracts.md): `model(xt: Long[B, L], t: Float[B] | None)
  -> Float[B, L, V]` logits over the data ids at every position, bidirectional attention, mask id V.
- **Causal mode** (the causal LM and incremental-decoding protocols): `token_logprobs`, `bos_id`,
  `new_cache`, `next_logits`, with causal attention over BOS (id V) followed by the data.

The mode input is a learned vector added to every position's token embedding (`mode_embed`, one row
per mode, zero at initialisation: the attention pattern and the inputs tell the modes apart from the
start). The time input of the infill mode is `time_proj(SiLU(TimestepEmbedder(t)))`, also added to
the embeddings; `time_proj` starts at zero, so a freshly initialised time pathway leaves the model
exactly what it was at every t: a model pre-trained on the mixture of denoisers (`train.objective=ul2`,
which never feeds t) starts Glauber training (`train.objective=glauber`) as itself. `t=None` skips the
time pathway. The backbone's own adaLN, when `model.adaln` is on, is fed t = 0 (as MDLM without time
conditioning), so `model.time_conditioning` must stay false.

Kinds "ul2" and "glauber" (`edlm.models.registry`) are this class: the same weights before and after
Glauber training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edlm.errors import require
from edlm.models.config import ModelConfig
from edlm.models.layers import TimestepEmbedder
from edlm.models.lms import BackboneModel
from edlm.models.transformer import KVCache

INFILL, CAUSAL = 0, 1  # rows of mode_embed


class UL2Model(BackboneModel):
    """Causal generation and mask infilling with shared weights (see the module doc)."""

    time_conditioned = True

    def __init__(self, config: ModelConfig) -> None:
        require(not config.causal, "a UL2-style model chooses its attention per call; set model.causal=false.")
        require(not config.time_conditioning, "a UL2-style model has its own zero-initialised time input; set "
                "model.time_conditioning=false.")
        super().__init__(config)
        self.mode_embed = nn.Embedding(2, config.d_model)
        self.time_embed = TimestepEmbedder(config.cond_dim)
        self.time_proj = nn.Linear(config.cond_dim, config.d_model)
        nn.init.zeros_(self.mode_embed.weight)
        nn.init.zeros_(self.time_proj.weight)
        nn.init.zeros_(self.time_proj.bias)

    @property
    def mask_id(self) -> int:
        return self.config.vocab_size

    @property
    def bos_id(self) -> int:
        return self.config.vocab_size

    def _extra(self, mode: int, t: torch.Tensor | None, batch: int) -> torch.Tensor:
        """Float[B or 1, 1, D]: the mode vector plus, for t given, the time vector."""
        extra = self.mode_embed.weight[mode][None, None]
        if t is None:
            return extra
        t = torch.as_tensor(t, device=extra.device).float().expand(batch)
        return extra + self.time_proj(F.silu(self.time_embed(t)))[:, None]

    def forward(self, xt: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """Infill mode: xt Long[B, L] (mask id V), t Float[B] in [0, 1] or None -> logits Float[B, L, V]."""
        return self.backbone(xt, causal=False, extra=self._extra(INFILL, t, xt.shape[0]))

    def causal_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Causal mode: x Long[B, L] data ids -> logits Float[B, L, V] of x_i given x_<i (BOS before x_0)."""
        inputs = torch.cat([torch.full_like(x[:, :1], self.bos_id), x[:, :-1]], dim=1)
        return self.backbone(inputs, causal=True, extra=self._extra(CAUSAL, None, x.shape[0]))

    def token_logprobs(self, x: torch.Tensor) -> torch.Tensor:
        """x: Long[B, L] -> Float[B, L] log p(x_i | x_<i) of the causal mode, computed in float32."""
        logp = torch.log_softmax(self.causal_logits(x).float(), dim=-1)
        return logp.gather(-1, x[..., None]).squeeze(-1)

    def new_cache(self, batch: int, max_len: int, device=None, dtype=None) -> KVCache:
        """An empty KV cache of the causal mode for `batch` sequences of up to `max_len` inputs (BOS included)."""
        param = next(self.parameters())
        return KVCache(self.config, batch, max_len, device or param.device, dtype or param.dtype)

    def next_logits(self, inputs: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Causal mode, incremental: feed `inputs` Long[B, n] (BOS first on an empty cache) -> Float[B, V]."""
        return self.backbone(inputs, None, cache, causal=True, extra=self._extra(CAUSAL, None, inputs.shape[0]))[:, -1]
