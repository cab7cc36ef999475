"""Models: one transformer backbone and the model kinds built on it."""

from edlm.models.config import ModelConfig
from edlm.models.lms import CausalLM, MaskedDiffusionLM
from edlm.models.transformer import KVCache, Transformer


def build_model(config: ModelConfig):
    """The model kind that `config.causal` asks for."""
    return CausalLM(config) if config.causal else MaskedDiffusionLM(config)


__all__ = ["ModelConfig", "CausalLM", "MaskedDiffusionLM", "KVCache", "Transformer", "build_model"]
