"""The one transformer backbone: pre-norm blocks, rotary embeddings, SDPA attention, optional adaLN.

Every edlm model (MDLM denoiser, AR model, NCE energy) is this network with a different attention
mask and head. Attention goes through `torch.nn.functional.scaled_dot_product_attention`, which
picks flash or memory-efficient kernels on GPU and runs everywhere else; there is no flash-attn
dependency.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edlm.errors import require
from edlm.models.config import ACTIVATIONS, ModelConfig
from edlm.models.layers import LayerNorm, Rotary, TimestepEmbedder, apply_rotary, modulate


class KVCache:
    """Keys and values of every layer for incremental causal decoding.

    keys[i], values[i]: Tensor[B, H, max_len, head_dim]; `length` positions are filled.
    """

    def __init__(self, config: ModelConfig, batch: int, max_len: int, device, dtype) -> None:
        head_dim = config.d_model // config.n_heads
        shape = (batch, config.n_heads, max_len, head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]
        self.length = 0
        self.max_len = max_len


class Block(nn.Module):
    """Pre-norm transformer block with optional adaLN (shift, scale, gate) modulation."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.d_model
        self.n_heads = config.n_heads
        self.causal = config.causal
        self.dropout = config.dropout
        self.norm1 = LayerNorm(d)
        self.attn_qkv = nn.Linear(d, 3 * d, bias=False)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.norm2 = LayerNorm(d)
        self.mlp = nn.Sequential(
            nn.Linear(d, config.mlp_ratio * d), nn.GELU(approximate=ACTIVATIONS[config.activation]), nn.Linear(config.mlp_ratio * d, d)
        )
        self.adaLN_modulation = nn.Linear(config.cond_dim, 6 * d) if config.adaln else None

    def attention(self, x: torch.Tensor, cos, sin, cache: KVCache | None, layer: int,
                  causal: bool | None = None) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.attn_qkv(x).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        q, k, v = apply_rotary(qkv[0], cos, sin), apply_rotary(qkv[1], cos, sin), qkv[2]
        mask, is_causal = None, self.causal if causal is None else causal
        if cache is not None:
            start = cache.length
            cache.keys[layer][:, :, start:start + n] = k
            cache.values[layer][:, :, start:start + n] = v
            k, v = cache.keys[layer][:, :, :start + n], cache.values[layer][:, :, :start + n]
            if start > 0:
                is_causal = False
                if n > 1:
                    rows = torch.arange(start, start + n, device=x.device)[:, None]
                    mask = rows >= torch.arange(start + n, device=x.device)[None, :]
        # No dropout on attention probabilities (as MDLM): dropout acts on the residual branches only.
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
        return self.attn_out(out.transpose(1, 2).reshape(b, n, d))

    def forward(self, x, c, cos, sin, cache: KVCache | None = None, layer: int = 0,
                causal: bool | None = None) -> torch.Tensor:
        """causal: the attention pattern of this call (None: the config's)."""
        if self.adaLN_modulation is not None:
            shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c)[:, None].chunk(6, dim=2)
            h = self.attention(modulate(self.norm1(x), shift1, scale1), cos, sin, cache, layer, causal)
            x = x + gate1 * F.dropout(h, self.dropout, self.training)
            h = self.mlp(modulate(self.norm2(x), shift2, scale2))
            return x + gate2 * F.dropout(h, self.dropout, self.training)
        x = x + F.dropout(self.attention(self.norm1(x), cos, sin, cache, layer, causal), self.dropout, self.training)
        return x + F.dropout(self.mlp(self.norm2(x)), self.dropout, self.training)


class OutputLayer(nn.Module):
    """Final norm (adaLN-modulated when enabled) and projection to the V data logits."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.norm_final = LayerNorm(config.d_model)
        self.linear = nn.Linear(config.d_model, config.vocab_size)
        self.adaLN_modulation = nn.Linear(config.cond_dim, 2 * config.d_model) if config.adaln else None

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        x = self.norm_final(x)
        if self.adaLN_modulation is not None:
            shift, scale = self.adaLN_modulation(c)[:, None].chunk(2, dim=2)
            x = modulate(x, shift, scale)
        return self.linear(x)


class Transformer(nn.Module):
    """Token ids [B, L] (ids 0..V, V = mask/BOS) and times [B] -> logits [B, L, V] or features [B, L, D]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size + 1, config.d_model)
        self.time_embed = TimestepEmbedder(config.cond_dim) if config.adaln else None
        self.rotary = Rotary(config.d_model // config.n_heads, config.rope_base)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.output = OutputLayer(config)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise by `config.init` (ModelConfig); adaLN modulations start at zero so every block starts
        as plain pre-norm."""
        for module in self.modules():
            if not isinstance(module, (nn.Linear, nn.Embedding)):
                continue
            if self.config.init == "torch":
                module.reset_parameters()
                continue
            nn.init.normal_(module.weight, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            if block.adaLN_modulation is not None:
                nn.init.zeros_(block.adaLN_modulation.weight)
                nn.init.zeros_(block.adaLN_modulation.bias)

    def condition(self, t: torch.Tensor | None, batch: int, device) -> torch.Tensor | None:
        """Conditioning vector c: [B, cond_dim] (SiLU of the time embedding), or None without adaLN."""
        if self.time_embed is None:
            return None
        if t is None or not self.config.time_conditioning:
            t = torch.zeros(batch, device=device)
        return F.silu(self.time_embed(t))

    def features(self, x: torch.Tensor, t: torch.Tensor | None = None, cache: KVCache | None = None, *,
                 causal: bool | None = None, extra: torch.Tensor | None = None):
        """Residual stream after the last block: ([B, L, D], c). With `cache`, x holds new positions only.
        causal: the attention pattern of this call (None: `config.causal`); extra: Float[B, 1 or n, D]
        added to the token embeddings (a model's own inputs beyond the ids, e.g. a mode or a time)."""
        b, n = x.shape
        start = cache.length if cache is not None else 0
        require(start + n <= self.config.max_seq_len,
                f"sequence length {start + n} exceeds model.max_seq_len={self.config.max_seq_len}; "
                "use shorter sequences or a model built for longer ones.")
        c = self.condition(t, b, x.device)
        cos, sin = self.rotary(torch.arange(start, start + n, device=x.device))
        h = self.embed(x) if extra is None else self.embed(x) + extra
        for i, block in enumerate(self.blocks):
            h = block(h, c, cos, sin, cache, i, causal)
        if cache is not None:
            cache.length += n
        return h, c

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, cache: KVCache | None = None, *,
                causal: bool | None = None, extra: torch.Tensor | None = None):
        h, c = self.features(x, t, cache, causal=causal, extra=extra)
        return self.output(h, c)
