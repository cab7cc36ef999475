"""Model and tokenizer specs of the evaluation commands.

A model spec is `hf:ID_OR_PATH` (a Hugging Face causal LM through `HFCausalLM`), `ckpt:PATH` or a
bare path (an edlm checkpoint through `edlm.train.checkpoint.load_model`). A tokenizer spec is any
`data.tokenizer` value (`char`, `gpt2`, `tiktoken:FILE`, `hf:NAME_OR_PATH`).
"""

from __future__ import annotations

from dataclasses import dataclass

from edlm.errors import require
from edlm.models.hf import HFCausalLM, hf_spec


@dataclass
class LoadedModel:
    """A model from a spec. tokenizer: its tokenizer (None when unknown); seq_len: the sequence length
    it was trained on (edlm) or its context length (HF), None when unknown; causal: has token_logprobs."""

    model: object
    tokenizer: object | None
    seq_len: int | None
    spec: str

    @property
    def causal(self) -> bool:
        return hasattr(self.model, "token_logprobs")


def load_model_spec(spec: str, *, device: str = "auto", dtype: str | None = None,
                    trust_remote_code: bool = False) -> LoadedModel:
    """Load the model a spec names (see the module docstring) onto `device` in eval mode."""
    from edlm.train.runtime import select_device

    torch_device = select_device(device)
    name = hf_spec(spec)
    if name is not None:
        lm = HFCausalLM.from_pretrained(name, trust_remote_code=trust_remote_code, dtype=dtype, device=torch_device)
        return LoadedModel(lm, lm.tokenizer, lm.max_length, spec)
    require(not trust_remote_code, f"--trust-remote-code applies to hf: models only, not to {spec!r}; drop the flag.")
    require(dtype in (None, "float32", "fp32"), f"dtype={dtype!r} applies to hf: models only; edlm checkpoints "
            "load in float32 (use autocast for lower precision).")
    from edlm.data import build_tokenizer
    from edlm.train.checkpoint import load_model

    model, config = load_model(spec, ema=True, device=torch_device)
    return LoadedModel(model, build_tokenizer(config.data), config.data.seq_len, spec)


def load_tokenizer_spec(spec: str | None):
    """The tokenizer a `data.tokenizer` spec names, or None for None / ''."""
    if not spec:
        return None
    from edlm.config import DataConfig
    from edlm.data import build_tokenizer

    return build_tokenizer(DataConfig(tokenizer=spec))
