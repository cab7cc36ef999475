"""Models: one transformer backbone and the model kinds built on it (`edlm.models.registry`)."""

from edlm.models.config import ModelConfig
from edlm.models.lms import CausalLM, MaskedDiffusionLM
from edlm.models.registry import KINDS, build_model
from edlm.models.transformer import KVCache, Transformer

__all__ = ["KINDS", "ModelConfig", "CausalLM", "MaskedDiffusionLM", "KVCache", "Transformer", "build_model"]
