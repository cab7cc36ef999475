"""Load SEDD checkpoints published on the Hugging Face hub into edlm's own backbone.

The checkpoints of `louaaron/Score-Entropy-Discrete-Diffusion` (`louaaron/sedd-small`,
`louaaron/sedd-medium`) were written by `PyTorchModelHubMixin.save_pretrained` of its `SEDD` module:
`config.json` is the run's Hydra config that `SEDD(config)` took (`tokens`, `graph.type`,
`noise.type` / `sigma_min` / `sigma_max`, `model.hidden_size` / `cond_dim` / `length` / `n_blocks` /
`n_heads` / `scale_by_sigma` / `dropout`, and training settings that do not matter here), and the
weights (`model.safetensors`, or `pytorch_model.bin` from older writers) carry SEDD's own module
names without a prefix. SEDD's network is the DIT that MDLM's was taken from, so the state dict is
mapped onto `edlm.models.sedd.SEDDScoreModel` with the MDLM loader's strict pieces; no remote code,
no flash-attn, nothing unpickled. docs/sedd-hub-mapping.md has the table and where each detail comes from.

- `load_sedd_hub(id_or_path)`: local directory or hub id -> `SEDDScoreModel` in eval mode, with its graph,
  `scale_by_sigma` and noise (log-linear with eps 1e-3, SEDD's `LogLinearNoise()`, or geometric).
- `is_sedd_config(config_json)`: whether a config.json is SEDD's.
- `sedd_model_config(config_json)`: -> (ModelConfig, graph, scale_by_sigma, noise).
- `map_sedd_state_dict(state, config, graph)`: strict mapping; every source tensor used, every target filled.

Vocabulary: `tokens` = V data ids (GPT-2's 50257). On the absorbing graph the embedding and the output
layer have N = V + 1 rows (id V absorbing), exactly edlm's; on the uniform graph they have V rows, and
the embedding gets a zero row V (edlm's backbone always has the mask input id V; the uniform process
never feeds it).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from edlm.diffusion.sedd.noise import GeometricNoise, LogLinearNoise
from edlm.errors import require
from edlm.loading.mdlm_hub import (MLP_RATIO, ROPE_BASE, check_layout, load_mapped, mdlm_key_map, read_mdlm_checkpoint,
                                   resolve_hub_dir, torch_dtype)
from edlm.models.config import ModelConfig
from edlm.models.sedd import GRAPHS, SEDDScoreModel

_REQUIRED_MODEL = ("hidden_size", "cond_dim", "length", "n_blocks", "n_heads")
EMBED, OUT_WEIGHT, OUT_BIAS = "vocab_embed.embedding", "output_layer.linear.weight", "output_layer.linear.bias"


def is_sedd_config(raw: dict | None) -> bool:
    """True for the config.json of a SEDD checkpoint: a Hydra config with `tokens`, `graph` and `model`."""
    return bool(raw) and "tokens" in raw and isinstance(raw.get("graph"), dict) and isinstance(raw.get("model"), dict)


def _section(hf_config: Mapping, name: str) -> Mapping:
    value = hf_config.get(name)
    require(isinstance(value, Mapping), f"config.json has no {name!r} section; a SEDD config.json holds tokens, "
            "graph, noise and model.")
    return value


def _positive_int(where: str, value) -> int:
    require(isinstance(value, int) and not isinstance(value, bool) and value > 0,
            f"config.json has {where}={value!r}; it must be a positive integer.")
    return value


def sedd_noise(noise: Mapping):
    """The edlm noise of SEDD's `noise` section (noise_lib.get_noise): loglinear -> `LogLinearNoise()`
    (SEDD's eps 1e-3 whatever the config says), geometric -> `GeometricNoise(sigma_min, sigma_max)`."""
    kind = noise.get("type")
    require(kind in ("loglinear", "geometric"),
            f"config.json has noise.type={kind!r}; SEDD's noises are 'loglinear' and 'geometric'.")
    if kind == "loglinear":
        return LogLinearNoise()
    low, high = noise.get("sigma_min"), noise.get("sigma_max")
    require(all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)),
            f"config.json has noise.sigma_min={low!r}, noise.sigma_max={high!r}; geometric noise needs both as "
            "numbers.")
    return GeometricNoise(float(low), float(high))


def sedd_model_config(hf_config: Mapping) -> tuple[ModelConfig, str, bool, object]:
    """(ModelConfig, graph, scale_by_sigma, noise) of a SEDD `config.json` (a dict; see the module doc).

    `tokens`, `graph.type`, `noise.type`, `model.scale_by_sigma` and the model's shape fields are
    required; `model.dropout` defaults to 0.1 (SEDD's configs). The network is time-conditioned (SEDD
    always feeds sigma to its embedding), with SEDD's fixed MLP ratio 4 and rotary base 10000.
    """
    require(is_sedd_config(hf_config), "config.json is not SEDD's (it needs tokens, graph and model); load other "
            "checkpoints with their own loader.")
    model, graph = _section(hf_config, "model"), _section(hf_config, "graph").get("type")
    require(graph in GRAPHS, f"config.json has graph.type={graph!r}; SEDD's graphs are {', '.join(GRAPHS)}.")
    noise = sedd_noise(_section(hf_config, "noise"))
    require(model.get("type", "ddit") == "ddit", f"config.json has model.type={model.get('type')!r}; only SEDD's "
            "'ddit' transformer can be mapped.")
    missing = [f"model.{k}" for k in (*_REQUIRED_MODEL, "scale_by_sigma") if k not in model]
    require(not missing, f"config.json lacks {', '.join(missing)}; a SEDD config.json needs all of them.")
    shape = {k: _positive_int(f"model.{k}", model[k]) for k in _REQUIRED_MODEL}
    scale_by_sigma = model["scale_by_sigma"]
    require(isinstance(scale_by_sigma, bool), f"config.json has model.scale_by_sigma={scale_by_sigma!r}; it must be "
            "true or false.")
    require(graph == "absorb" or not scale_by_sigma, f"config.json has model.scale_by_sigma=true with graph.type="
            f"{graph!r}; SEDD scales by sigma on the absorbing graph only (its forward asserts it).")
    dropout = model.get("dropout", 0.1)
    require(isinstance(dropout, (int, float)) and not isinstance(dropout, bool) and 0 <= dropout < 1,
            f"config.json has model.dropout={dropout!r}; it must be a number in [0, 1).")
    config = ModelConfig(
        vocab_size=_positive_int("tokens", hf_config["tokens"]), n_layers=shape["n_blocks"],
        d_model=shape["hidden_size"], n_heads=shape["n_heads"], mlp_ratio=MLP_RATIO, max_seq_len=shape["length"],
        causal=False, adaln=True, time_conditioning=True, cond_dim=shape["cond_dim"], dropout=float(dropout),
        rope_base=ROPE_BASE)
    return config, graph, scale_by_sigma, noise


def sedd_key_map(config: ModelConfig, graph: str) -> dict[str, tuple[str | None, tuple[int, ...]]]:
    """Source key -> (edlm state-dict key or None, source shape): MDLM's DIT table (`mdlm_key_map`,
    whose N = V + 1 rows are the absorbing graph's), with N = V rows on the uniform graph."""
    table = mdlm_key_map(config)
    if graph == "uniform":
        v, d = config.vocab_size, config.d_model
        for name, shape in ((EMBED, (v, d)), (OUT_WEIGHT, (v, d)), (OUT_BIAS, (v,))):
            table[name] = (table[name][0], shape)
    return table


def map_sedd_state_dict(state: Mapping[str, torch.Tensor], config: ModelConfig, graph: str,
                        source: str = "the checkpoint") -> dict[str, torch.Tensor]:
    """SEDD tensors -> the state dict of `SEDDScoreModel(config, graph)`, strictly (`check_layout`: every
    missing, unexpected or wrongly shaped tensor, or a rotary table that is not SEDD's, is an EdlmError).
    Values are not copied, except the uniform graph's embedding, which gains a zero row V."""
    table = sedd_key_map(config, graph)
    layout = (f"the SEDD layout of config.json (tokens={config.vocab_size}, graph {graph}, hidden_size="
              f"{config.d_model}, n_heads={config.n_heads}, n_blocks={config.n_layers}, cond_dim={config.cond_dim})")
    names = check_layout(state, table, config, source=source, layout=layout, family="SEDD")
    mapped = {}
    for name, (target, _) in table.items():
        if target is None:
            continue
        tensor = state[names[name]]
        if name == EMBED and graph == "uniform":
            tensor = torch.cat([tensor, tensor.new_zeros((1, tensor.shape[1]))])
        mapped[target] = tensor
    return mapped


def load_sedd_hub(id_or_path: str | Path, *, device=None, dtype=None, revision: str | None = None) -> SEDDScoreModel:
    """A SEDD checkpoint (local directory or hub id, e.g. `louaaron/sedd-small`) as an edlm score model.

    Returns `SEDDScoreModel` in eval mode: `model(xt, sigma)` -> log scores [B, L, N] equal to SEDD's
    `model(indices, sigma)`, with `graph`, `scale_by_sigma` and `noise` from config.json. Parameters
    are float32 unless `dtype` says otherwise; `revision` pins a hub commit. No remote code is run.
    """
    target_dtype = torch_dtype(dtype)
    directory = resolve_hub_dir(id_or_path, revision, family="SEDD")
    hf_config, state = read_mdlm_checkpoint(directory, family="SEDD")
    config, graph, scale_by_sigma, noise = sedd_model_config(hf_config)
    mapped = map_sedd_state_dict(state, config, graph, source=f"SEDD checkpoint {str(id_or_path)!r}")
    model = SEDDScoreModel(config, graph=graph, scale_by_sigma=scale_by_sigma)
    load_mapped(model, mapped, family="SEDD")
    model.noise = noise
    del state, mapped
    model.to(device=device, dtype=target_dtype)
    return model.eval()
