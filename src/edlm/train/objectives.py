"""Training objectives, pluggable by name (`train.objective`).

An objective is a class registered with `@register_objective(name)`. It trains the model kind of the
same name (`edlm.models.registry`), which the loop builds from `cfg.model`. The class provides

- `__init__(cfg, model, device)`: everything the objective needs. This is where an objective
  loads extra frozen models or initial weights from `cfg.train.init_from` (the NCE objective builds
  its frozen denoiser here).
- `prepare(x0, generator) -> dict[str, Tensor]`: every random choice of one optimizer step, drawn
  for the whole **global** batch x0: Long[G, L] from the step's CPU generator. Each value has G
  rows; the loop hands each process and micro-batch its rows. Drawing the noise for the global batch
  (not per process) makes a run's losses independent of the number of processes and of gradient
  accumulation. Randomness too costly to draw for the global batch on every rank (e.g. sampling
  negatives from a large frozen model) should be drawn here as per-row seeds and expanded in `loss`.
- `loss(model, x0, batch) -> Tensor`: scalar float32 mean over the rows of x0: Long[b, L] (nats per
  token), given those rows of `prepare`'s output. Called inside the autocast context.
- `metric`: what the loss estimates, for logs ("nelbo", "nll", ...).
- optionally `use_ema(ema_model)`: called once by the loop with its EMA model (updated in place after
  every step, restored on resume), for an objective whose noise comes from it (Glauber diffusion's
  frozen copy).

An objective in a module of its own is listed in `OBJECTIVE_MODULES`, so that `objective_class`
(and with it `edlm train`) finds it without the caller importing anything.
"""

from __future__ import annotations

import importlib

import torch
from torch import nn

from edlm.diffusion import antithetic_times, ar_loss, forward_mask, make_schedule, masked_token_nll
from edlm.errors import require

OBJECTIVES: dict[str, type] = {}
# Objectives that live in their own modules, imported on first use (they import this module to register).
OBJECTIVE_MODULES = {"nce": "edlm.train.nce_objective", "sedd": "edlm.train.sedd_objective",
                     "glauber": "edlm.train.glauber_objective", "ul2": "edlm.train.ul2_objective"}


def register_objective(name: str):
    """Class decorator: make the objective available as `train.objective=name`."""
    def register(cls: type) -> type:
        OBJECTIVES[name] = cls
        return cls
    return register


def objective_class(name: str) -> type:
    """The objective class registered under `name` (importing its module if it has one of its own)."""
    if name not in OBJECTIVES and name in OBJECTIVE_MODULES:
        importlib.import_module(OBJECTIVE_MODULES[name])
    require(name in OBJECTIVES,
            f"train.objective={name!r} is unknown; use one of {sorted(set(OBJECTIVES) | set(OBJECTIVE_MODULES))}.")
    return OBJECTIVES[name]


def init_weights_from(model: nn.Module, spec: str) -> None:
    """Copy the (EMA) weights of the model that spec `spec` names (`edlm.loading.specs`: a checkpoint,
    an exported or bundled model, an hf: MDLM) into `model`, whose architecture must match."""
    from edlm.loading.specs import load_spec

    state = load_spec(spec, device="cpu", ema=True, what="train.init_from").model.state_dict()
    missing, unexpected = model.load_state_dict(state, strict=False)
    require(not missing and not unexpected,
            f"train.init_from={spec!r} holds a different architecture (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}); use a checkpoint with the same model config.")


@register_objective("mdlm")
class MDLMObjective:
    """Masked diffusion (MDLM): the continuous-time NELBO with antithetic times (docs/math.md, The NELBO and its units).

    Same estimator as `edlm.diffusion.mdlm_loss`, split into its random part (`prepare`: times
    stratified over the global batch, then the masks) and its deterministic part (`loss`).
    """

    metric = "nelbo"

    def __init__(self, cfg, model: nn.Module, device: torch.device) -> None:
        self.schedule = make_schedule(cfg.train.schedule, cfg.train.eps)
        self.t_min = cfg.train.t_min
        self.mask_id = model.mask_id
        if cfg.train.init_from:
            init_weights_from(model, cfg.train.init_from)

    def prepare(self, x0: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """x0: Long[G, L] -> {"t": Float[G], "xt": Long[G, L]}."""
        t = antithetic_times(x0.shape[0], generator, device=x0.device, t_min=self.t_min)
        return {"t": t, "xt": forward_mask(x0, self.schedule.alpha(t), self.mask_id, generator)}

    def loss(self, model, x0: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        t, xt = batch["t"], batch["xt"]
        nll = masked_token_nll(model(xt, t), x0, xt, self.mask_id)
        return (self.schedule.loss_weight(t).float() * nll.sum(dim=1)).mean() / x0.shape[1]


@register_objective("ar")
class ARObjective:
    """Autoregressive next-token cross-entropy on the causal backbone; no randomness."""

    metric = "nll"

    def __init__(self, cfg, model: nn.Module, device: torch.device) -> None:
        if cfg.train.init_from:
            init_weights_from(model, cfg.train.init_from)

    def prepare(self, x0: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {}

    def loss(self, model, x0: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return ar_loss(model, x0)
