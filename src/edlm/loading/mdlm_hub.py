"""Load MDLM checkpoints published on the Hugging Face hub into edlm's own backbone.

The checkpoints of `kuleshov-group/mdlm` (e.g. `kuleshov-group/mdlm-owt`) are a `config.json`
(`MDLMConfig`: vocab_size, model_length, hidden_dim, cond_dim, n_blocks, n_heads, dropout,
time_conditioning) and `model.safetensors` whose keys are `backbone.<DIT module path>`. Loading them
through `transformers` needs `trust_remote_code` and flash-attn; here the state dict is mapped onto
`edlm.models.MaskedDiffusionLM` instead, tensor by tensor, and the mapped model gives the same logits
over the data vocabulary (see docs/mdlm-hub-mapping.md for the table and where each detail comes from).

- `load_mdlm_hub(id_or_path)`: local directory or hub id -> `MaskedDiffusionLM` in eval mode.
- `mdlm_model_config(config_json)`: MDLMConfig fields -> `ModelConfig`.
- `map_mdlm_state_dict(state, config)`: strict mapping; every source tensor used, every target filled.

SEDD's checkpoints share the DIT layout; `edlm.loading.sedd_hub` maps them with the pieces here
(`check_layout`, `load_mapped`, `read_mdlm_checkpoint`, `resolve_hub_dir`, `torch_dtype`).

Their vocabulary includes the mask token as its last id (MDLM appends it to GPT-2's 50257 ids), so
their `vocab_size` 50258 is edlm's V = 50257 with mask id V. Their output layer has V + 1 rows; MDLM's
SUBS parameterisation sets the mask logit to -inf, so the mask row is dropped and edlm outputs V logits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from edlm.errors import EdlmError, require
from edlm.models.config import ModelConfig
from edlm.models.lms import MaskedDiffusionLM

SOURCE_PREFIX = "backbone."  # MDLM(PreTrainedModel).backbone = DITBackbone(config)
ROPE_BASE = 10000.0  # models/dit.py Rotary(dim, base=10_000); DIT never passes another base
TIME_FEATURES = 256  # TimestepEmbedder(frequency_embedding_size=256)
MLP_RATIO = 4  # DDiTBlock(mlp_ratio=4); DIT never passes another ratio
INV_FREQ = "rotary_emb.inv_freq"  # a buffer: checked against the formula, not copied
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
HUB_PATTERNS = ["config.json", "model.safetensors", "model.safetensors.index.json", "model-*.safetensors"]
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
_REQUIRED = ("vocab_size", "hidden_dim", "n_blocks", "n_heads", "cond_dim", "model_length")
EXAMPLES = {"MDLM": "kuleshov-group/mdlm-owt", "SEDD": "louaaron/sedd-small"}  # a hub id of each family, for messages


def mdlm_model_config(hf_config: Mapping) -> ModelConfig:
    """The `ModelConfig` of an MDLM `config.json` (a dict with the fields of MDLMConfig).

    Shape fields are required; `dropout` (0.1) and `time_conditioning` (False) default as in
    MDLMConfig. A time-conditioned checkpoint is refused: MDLM feeds its time embedding the noise
    level sigma(t) of a schedule that config.json does not record, while edlm feeds t.
    """
    model_type = hf_config.get("model_type", "mdlm")
    require(model_type == "mdlm", f"config.json has model_type={model_type!r}; load_mdlm_hub reads only "
            "MDLM checkpoints (model_type 'mdlm'); load other models with their own loader.")
    missing = [k for k in _REQUIRED if k not in hf_config]
    require(not missing, f"config.json lacks {', '.join(missing)}; an MDLM config.json needs all of "
            f"{', '.join(_REQUIRED)}.")
    for key in _REQUIRED:
        value = hf_config[key]
        require(isinstance(value, int) and not isinstance(value, bool) and value > 0,
                f"config.json has {key}={value!r}; it must be a positive integer.")
    require(hf_config["vocab_size"] >= 3, f"config.json has vocab_size={hf_config['vocab_size']}; MDLM's "
            "vocab_size counts the data ids plus the mask id, so it must be at least 3.")
    mask_id = hf_config.get("mask_token_id", hf_config["vocab_size"] - 1)
    require(mask_id == hf_config["vocab_size"] - 1,
            f"config.json has mask_token_id={mask_id}, but edlm needs the mask to be the last id "
            f"({hf_config['vocab_size'] - 1}); this checkpoint's vocabulary cannot be mapped.")
    time_conditioning = hf_config.get("time_conditioning", False)
    require(time_conditioning is False,
            f"config.json has time_conditioning={time_conditioning!r}; only MDLM checkpoints trained "
            "without time conditioning (like kuleshov-group/mdlm-owt) can be mapped exactly, because "
            "MDLM conditions on sigma(t) of a noise schedule that config.json does not record.")
    dropout = hf_config.get("dropout", 0.1)
    require(isinstance(dropout, (int, float)) and 0 <= dropout < 1,
            f"config.json has dropout={dropout!r}; it must be a number in [0, 1).")
    return ModelConfig(
        vocab_size=hf_config["vocab_size"] - 1,
        n_layers=hf_config["n_blocks"],
        d_model=hf_config["hidden_dim"],
        n_heads=hf_config["n_heads"],
        mlp_ratio=MLP_RATIO,
        max_seq_len=hf_config["model_length"],
        causal=False,
        adaln=True,
        time_conditioning=False,
        cond_dim=hf_config["cond_dim"],
        dropout=float(dropout),
        rope_base=ROPE_BASE,
    )


def mdlm_key_map(config: ModelConfig) -> dict[str, tuple[str | None, tuple[int, ...]]]:
    """Source key (without the `backbone.` prefix) -> (edlm state-dict key or None, source shape)."""
    v1, d, c, h = config.vocab_size + 1, config.d_model, config.cond_dim, config.mlp_ratio * config.d_model
    table: dict[str, tuple[str | None, tuple[int, ...]]] = {
        "vocab_embed.embedding": ("backbone.embed.weight", (v1, d)),
        "sigma_map.mlp.0.weight": ("backbone.time_embed.mlp.0.weight", (c, TIME_FEATURES)),
        "sigma_map.mlp.0.bias": ("backbone.time_embed.mlp.0.bias", (c,)),
        "sigma_map.mlp.2.weight": ("backbone.time_embed.mlp.2.weight", (c, c)),
        "sigma_map.mlp.2.bias": ("backbone.time_embed.mlp.2.bias", (c,)),
        INV_FREQ: (None, (d // config.n_heads // 2,)),
    }
    block = {"norm1.weight": (d,), "attn_qkv.weight": (3 * d, d), "attn_out.weight": (d, d),
             "norm2.weight": (d,), "mlp.0.weight": (h, d), "mlp.0.bias": (h,), "mlp.2.weight": (d, h),
             "mlp.2.bias": (d,), "adaLN_modulation.weight": (6 * d, c), "adaLN_modulation.bias": (6 * d,)}
    for i in range(config.n_layers):
        for name, shape in block.items():
            table[f"blocks.{i}.{name}"] = (f"backbone.blocks.{i}.{name}", shape)
    table.update({
        "output_layer.norm_final.weight": ("backbone.output.norm_final.weight", (d,)),
        "output_layer.linear.weight": ("backbone.output.linear.weight", (v1, d)),  # mask row dropped
        "output_layer.linear.bias": ("backbone.output.linear.bias", (v1,)),  # mask entry dropped
        "output_layer.adaLN_modulation.weight": ("backbone.output.adaLN_modulation.weight", (2 * d, c)),
        "output_layer.adaLN_modulation.bias": ("backbone.output.adaLN_modulation.bias", (2 * d,)),
    })
    return table


def _listing(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def map_mdlm_state_dict(state: Mapping[str, torch.Tensor], config: ModelConfig,
                        source: str = "the checkpoint") -> dict[str, torch.Tensor]:
    """MDLM tensors -> the state dict of `MaskedDiffusionLM(config)`, strictly.

    Keys carry the `backbone.` prefix (the hub layout; any other key is then unexpected) or none (a
    bare DIT state dict). Raises `EdlmError` naming every missing, unexpected or wrongly shaped tensor, or a rotary
    table that is not MDLM's. Values are not copied: the result holds the source tensors (the two
    output-layer tensors as slices without the mask row).
    """
    table = mdlm_key_map(config)
    layout = (f"the MDLM layout of config.json (vocab_size={config.vocab_size + 1}, hidden_dim={config.d_model}, "
              f"n_heads={config.n_heads}, n_blocks={config.n_layers}, cond_dim={config.cond_dim})")
    names = check_layout(state, table, config, source=source, layout=layout, family="MDLM")
    v = config.vocab_size
    mapped = {}
    for name, (target, _) in table.items():
        if target is None:
            continue
        tensor = state[names[name]]
        mapped[target] = tensor[:v] if name.startswith("output_layer.linear.") else tensor
    return mapped


def check_layout(state: Mapping[str, torch.Tensor], table: Mapping[str, tuple[str | None, tuple[int, ...]]],
                 config: ModelConfig, *, source: str, layout: str, family: str) -> dict[str, str]:
    """{source name in `table`: its key in `state`} after the strict checks of a DIT state dict (MDLM's
    and SEDD's share the layout): keys with the `backbone.` prefix or none, every tensor of `table`
    present (the rotary buffer may be absent) with its shape, nothing else, and a rotary buffer equal
    to the DIT's table. `layout` (the expected layout in words) and `family` name them in the EdlmError."""
    prefixed = any(k.startswith(SOURCE_PREFIX) for k in state)
    outside = [k for k in state if prefixed and not k.startswith(SOURCE_PREFIX)]
    names = {(k[len(SOURCE_PREFIX):] if prefixed else k): k for k in state if k not in outside}
    missing = [k for k in table if k not in names and k != INV_FREQ]
    unexpected = outside + [names[k] for k in names if k not in table]
    wrong = [f"{names[k]} {tuple(state[names[k]].shape)} (expected {table[k][1]})"
             for k in names if k in table and tuple(state[names[k]].shape) != table[k][1]]
    problems = ([f"missing {_listing([(SOURCE_PREFIX if prefixed else '') + k for k in missing])}"]
                if missing else [])
    problems += [f"unexpected {_listing(unexpected)}"] if unexpected else []
    problems += [f"wrong shapes {_listing(wrong)}"] if wrong else []
    require(not problems, f"{source} does not match {layout}: {'; '.join(problems)}; "
            "use the config.json that was saved with these weights.")
    if INV_FREQ in names and not state[names[INV_FREQ]].is_meta:
        stored = state[names[INV_FREQ]].detach().cpu()
        head_dim = config.d_model // config.n_heads
        expected = 1.0 / (ROPE_BASE ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        require(torch.allclose(stored.float(), expected.to(stored.dtype).float(), rtol=1e-6, atol=0.0),
                f"{names[INV_FREQ]} in {source} is not {family}'s rotary table 1/{ROPE_BASE:g}^(2i/{head_dim}); "
                "this checkpoint uses another rotary base or layout and cannot be mapped exactly.")
    return names


def load_mapped(model: nn.Module, mapped: Mapping[str, torch.Tensor], family: str = "MDLM") -> None:
    """Copy `mapped` into `model`, refusing unless it fills every tensor of the model exactly."""
    own = model.state_dict()
    unfilled = [k for k in own if k not in mapped]
    extra = [k for k in mapped if k not in own]
    wrong = [k for k in mapped if k in own and mapped[k].shape != own[k].shape]
    require(not (unfilled or extra or wrong),
            f"the {family} mapping does not fit edlm's {type(model).__name__} (unfilled: {_listing(unfilled)}; "
            f"extra: {_listing(extra)}; wrong shapes: {_listing(wrong)}); the backbone has changed, so "
            f"update edlm/loading/{family.lower()}_hub.py.")
    model.load_state_dict(dict(mapped), strict=True)


def read_mdlm_checkpoint(directory: str | Path, family: str = "MDLM") -> tuple[dict, dict[str, torch.Tensor]]:
    """(config.json as a dict, state dict on CPU) of a local checkpoint directory of `family` (MDLM or
    SEDD: both are a config.json beside Hugging Face weight files).

    Weights come from `model.safetensors`, a sharded `model.safetensors.index.json`, or (only when no
    safetensors exist) `pytorch_model.bin` through `torch.load(weights_only=True)`; nothing is unpickled.
    """
    directory = Path(directory)
    require(directory.is_dir(), f"{family} checkpoint {str(directory)!r} is not a directory; pass a directory "
            f"with config.json and model.safetensors, or a hub id such as {EXAMPLES[family]}.")
    config_path = directory / "config.json"
    require(config_path.is_file(), f"{str(directory)!r} has no config.json; {family} checkpoint directories "
            "hold config.json and model.safetensors.")
    try:
        hf_config = json.loads(config_path.read_text())
    except (OSError, ValueError) as err:
        raise EdlmError(f"could not read {config_path}: {err}; the file must be the JSON saved with the "
                        "checkpoint.") from err
    require(isinstance(hf_config, dict), f"{config_path} holds no JSON object; it must be {family}'s config.json.")
    found = [name for name in WEIGHT_FILES if (directory / name).is_file()]
    require(bool(found), f"{str(directory)!r} has none of {', '.join(WEIGHT_FILES)}; download the "
            "checkpoint's weights into it.")
    path = directory / found[0]
    try:
        if path.name == "pytorch_model.bin":
            state = torch.load(path, map_location="cpu", weights_only=True)
        elif path.name.endswith(".index.json"):
            state = _read_shards(directory, json.loads(path.read_text()))
        else:
            state = _read_safetensors(path)
    except EdlmError:
        raise
    except Exception as err:  # corrupt file, or a pickle that weights_only refuses
        raise EdlmError(f"could not read the weights in {path}: {str(err).splitlines()[0] if str(err) else err!r}"
                        "; the file is corrupt or not a plain state dict, so download it again.") from err
    require(isinstance(state, dict) and all(isinstance(t, torch.Tensor) for t in state.values()),
            f"{path} does not hold a flat state dict of tensors, as {family} checkpoints do; pass one of them.")
    return hf_config, state


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")


def _read_shards(directory: Path, index: dict) -> dict[str, torch.Tensor]:
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    require(isinstance(weight_map, dict) and bool(weight_map),
            f"{directory / 'model.safetensors.index.json'} has no weight_map; it is not a sharded "
            "checkpoint index.")
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        require((directory / shard).is_file(), f"shard {shard} listed in model.safetensors.index.json is "
                f"missing from {str(directory)!r}; download it too.")
        state.update(_read_safetensors(directory / shard))
    listed, read = set(weight_map), set(state)
    require(listed == read, f"the shards in {str(directory)!r} disagree with model.safetensors.index.json "
            f"(listed only: {_listing(sorted(listed - read))}; stored only: {_listing(sorted(read - listed))}).")
    return state


def resolve_hub_dir(id_or_path: str | Path, revision: str | None, family: str = "MDLM") -> Path:
    """A local checkpoint directory: the path itself, or a snapshot of the hub repo `id_or_path`
    (config.json and the weight files only)."""
    path = Path(id_or_path).expanduser()
    if path.exists():
        return path
    text = str(id_or_path)
    require(text.count("/") == 1 and not text.startswith((".", "/", "~")) and " " not in text,
            f"{family} checkpoint {text!r} is neither an existing directory nor a hub id like "
            f"{EXAMPLES[family]}; check the path.")
    try:
        import huggingface_hub
    except ImportError as err:
        raise EdlmError(f"loading {text!r} from the hub needs huggingface_hub; install edlm[hf] or pass a "
                        "local directory.") from err
    try:
        local = Path(huggingface_hub.snapshot_download(text, revision=revision, allow_patterns=HUB_PATTERNS))
        if not any((local / name).is_file() for name in WEIGHT_FILES):
            patterns = ["config.json", "pytorch_model.bin"]
            local = Path(huggingface_hub.snapshot_download(text, revision=revision, allow_patterns=patterns))
    except Exception as err:  # network, authentication, unknown repo or revision
        raise EdlmError(f"could not download {text!r} (revision {revision or 'main'}) from the hub: "
                        f"{str(err).splitlines()[0] if str(err) else err!r}; check the id, the network "
                        "and HF_TOKEN, or pass a local directory.") from err
    return local


def torch_dtype(dtype) -> torch.dtype | None:
    """None, a torch dtype, or one of the names of DTYPES -> None or the torch dtype."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    require(isinstance(dtype, str) and dtype.lower() in DTYPES,
            f"dtype={dtype!r} is not one of {', '.join(DTYPES)}; pass one of them or a torch.dtype.")
    return DTYPES[dtype.lower()]


def load_mdlm_hub(id_or_path: str | Path, *, device=None, dtype=None,
                  revision: str | None = None) -> MaskedDiffusionLM:
    """An MDLM checkpoint (local directory or hub id, e.g. `kuleshov-group/mdlm-owt`) as an edlm denoiser.

    Returns `MaskedDiffusionLM` in eval mode with V = config vocab_size - 1 (mask id V, as in MDLM),
    `model(xt, t)` -> logits [B, L, V] equal to MDLM's logits without the mask column. Parameters are
    float32 unless `dtype` says otherwise; `revision` pins a hub commit. No remote code is run.
    """
    target_dtype = torch_dtype(dtype)
    directory = resolve_hub_dir(id_or_path, revision)
    hf_config, state = read_mdlm_checkpoint(directory)
    config = mdlm_model_config(hf_config)
    mapped = map_mdlm_state_dict(state, config, source=f"MDLM checkpoint {str(id_or_path)!r}")
    model = MaskedDiffusionLM(config)
    load_mapped(model, mapped)
    del state, mapped
    model.to(device=device, dtype=target_dtype)
    return model.eval()
