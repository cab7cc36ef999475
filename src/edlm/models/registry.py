"""Model kinds by name: how a stored model config becomes an `nn.Module`.

A kind is a class whose constructor takes a `ModelConfig` (and builds a fresh, randomly initialised
model; it must not load anything). `KINDS` maps each name to "module:Class", imported on first use,
so this table is the one registration a new kind needs. Kinds share their names with the training
objectives that train them (`train.objective`), so a stored run config names its model's kind and
loading a model never imports training code.
"""

from __future__ import annotations

import importlib

from torch import nn

from edlm.errors import require
from edlm.models.config import ModelConfig

KINDS = {
    "mdlm": "edlm.models.lms:MaskedDiffusionLM",
    "ar": "edlm.models.lms:CausalLM",
    "nce": "edlm.models.nce:NCEEnergy",
    "sedd": "edlm.models.sedd:SEDDScoreModel",
    "ul2": "edlm.models.ul2:UL2Model",
    "glauber": "edlm.models.ul2:UL2Model",
}


def kind_class(kind: str) -> type:
    """The class registered as model kind `kind`."""
    require(kind in KINDS, f"model kind {kind!r} is unknown; use one of {', '.join(sorted(KINDS))}.")
    module, name = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def build_model(config: ModelConfig, kind: str | None = None, train=None) -> nn.Module:
    """A fresh model of `kind` built from `config`; kind None: "ar" when `config.causal`, else "mdlm".

    train: the run's `TrainConfig`, for kinds whose model depends on training settings: their class
    has `from_train(config, train)` (sedd: the graph, `train.graph`); None builds the kind's default."""
    cls = kind_class(kind or ("ar" if config.causal else "mdlm"))
    return cls.from_train(config, train) if train is not None and hasattr(cls, "from_train") else cls(config)
