"""Configuration of the one transformer backbone every edlm model uses."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

INITS = ("torch", "normal")
ACTIVATIONS = {"gelu_tanh": "tanh", "gelu": "none"}  # name -> torch.nn.GELU(approximate=...)


@dataclass
class ModelConfig:
    """Shape and behaviour of a transformer.

    vocab_size: data vocabulary V. Inputs use V + 1 ids: id V is the mask token for diffusion models
        and the beginning-of-sequence token for causal models. Outputs are logits over the V data ids.
    causal: causal (autoregressive) attention instead of bidirectional.
    adaln: blocks carry adaLN modulation (DiT style) from a conditioning vector.
    time_conditioning: the conditioning vector is an embedding of t; if False while `adaln` is on,
        the model is fed t = 0 (as MDLM does) and ignores t, which lets samplers cache outputs.
    init: "torch" (PyTorch's defaults: Linear weights uniform with a 1/sqrt(fan_in) bound, embeddings
        N(0, 1)) or "normal" (GPT-2's N(0, 0.02^2) for every Linear and embedding, zero biases). At
        width 128 "normal" leaves the attention logits near zero and training on the unigram plateau
        for hundreds of steps (benchmarks/results/recipe_text8.md). adaLN modulations start at zero
        under both.
    activation: the MLP's nonlinearity: "gelu_tanh" (GELU's tanh approximation, as MDLM's DiT; the
        default, which every checkpoint written before this field existed used) or "gelu" (exact,
        erf-based; the same function to within 1e-3 and about 3x cheaper on CPU).
    """

    vocab_size: int = 27
    n_layers: int = 4
    d_model: int = 128
    n_heads: int = 4
    mlp_ratio: int = 4
    max_seq_len: int = 256
    causal: bool = False
    adaln: bool = True
    time_conditioning: bool = False
    cond_dim: int = 128
    dropout: float = 0.0
    rope_base: float = 10000.0
    init: str = "torch"
    activation: str = "gelu_tanh"

    def __post_init__(self) -> None:
        from edlm.errors import require

        require(self.vocab_size >= 2, f"model.vocab_size={self.vocab_size} must be at least 2.")
        for key in ("n_layers", "d_model", "n_heads", "mlp_ratio", "cond_dim", "max_seq_len"):
            require(getattr(self, key) >= 1, f"model.{key}={getattr(self, key)} must be at least 1.")
        require(self.rope_base > 0 and math.isfinite(self.rope_base),
                f"model.rope_base={self.rope_base} must be a positive number.")
        require(
            self.d_model % self.n_heads == 0 and (self.d_model // self.n_heads) % 2 == 0,
            f"model.d_model={self.d_model} must split into n_heads={self.n_heads} heads of even width.",
        )
        require(not (self.time_conditioning and not self.adaln),
                "model.time_conditioning=true needs model.adaln=true; set both or neither.")
        require(0.0 <= self.dropout < 1.0, f"model.dropout={self.dropout} must lie in [0, 1).")
        require(self.init in INITS, f"model.init={self.init!r} is unknown; use one of {', '.join(INITS)}.")
        require(self.activation in ACTIVATIONS,
                f"model.activation={self.activation!r} is unknown; use one of {', '.join(ACTIVATIONS)}.")

    @property
    def mask_id(self) -> int:
        """Id of the mask (diffusion) or BOS (causal) input token: one past the data vocabulary."""
        return self.vocab_size


def config_differences(a: ModelConfig, b: ModelConfig) -> str:
    """'model.k=a_value vs b_value, ...' for the fields where two model configs differ."""
    diffs = [f"model.{f.name}={getattr(a, f.name)!r} vs {getattr(b, f.name)!r}"
             for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]
    return ", ".join(diffs) or "nothing"
