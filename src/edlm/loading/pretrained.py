"""Self-contained model directories: `save_pretrained` / `from_pretrained`.

A pretrained directory holds one set of weights and everything needed to rebuild the model:

    model.safetensors     the weights (parameter names as in `model.state_dict()`)
    edlm_config.json      {"format": "edlm-pretrained", "version": 2, "config": RunConfig as a dict,
                           "objective": ..., "files": {"model.safetensors": {"bytes": N, "sha256": HEX}},
                           versions}; loading checks the size and hash (`edlm.loading.integrity`;
                           version 1 recorded the byte size only, which is still read)

It is written atomically (under a temporary name, fsynced, renamed into place; see
`edlm.util.atomic`) and read without unpickling anything. The model kind is
`config.train.objective` (`edlm.models.registry`: mdlm, ar, nce, sedd, ...; a sedd model also takes its graph and
noise from `config.train`: `build_run_model`), exactly as for training checkpoints, so any model that `edlm train`
builds can be exported and reloaded.

`from_pretrained` takes a local directory or a Hugging Face hub id (`org/name`, downloaded with
`huggingface_hub.snapshot_download`, only the two files above). Model specs (`edlm.loading.specs`)
name such a directory as `pretrained:DIR_OR_ID` or, for a local directory, bare (it is recognised by
`edlm_config.json`).

Bundled models: the package ships a few such directories under `edlm/checkpoints/<name>/` (see its
README.md); the spec `bundled:NAME` names one (`bundled_dir`). `EDLM_BUNDLED_DIR` replaces that root
directory.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from edlm.config import RunConfig, read_run_json
from edlm.diffusion.sedd import is_score_model, make_noise
from edlm.errors import EdlmError, require
from edlm.loading.integrity import check_file, file_record
from edlm.models import build_model
from edlm.util.atomic import atomic_directory

FORMAT = "edlm-pretrained"
VERSION = 2
READ_VERSIONS = (1, 2)
CONFIG_FILE = "edlm_config.json"
WEIGHTS_FILE = "model.safetensors"
BUNDLED_ROOT = Path(__file__).resolve().parent.parent / "checkpoints"
BUNDLED_ENV = "EDLM_BUNDLED_DIR"
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def build_run_model(config: RunConfig) -> nn.Module:
    """A fresh model of the kind `config.train.objective` (`edlm.models.registry`) built from `config`; a
    score model (kind sedd) takes its graph and noise from `config.train` (`train.graph`, `train.noise`)."""
    model = build_model(config.model, config.train.objective, config.train)
    if is_score_model(model):
        model.noise = make_noise(config.train.noise, config.train.eps)
    return model


def save_pretrained(model: nn.Module, directory, *, config: RunConfig) -> Path:
    """Write `model`'s weights and `config` to `directory` (replaced atomically if it exists).

    The weights must fit the model that `config` describes (same names and shapes), so the directory
    always loads; otherwise EdlmError. Tensors are saved in their own dtype, on the CPU. Returns the path.
    """
    require(isinstance(config, RunConfig), f"save_pretrained needs config=RunConfig, got {type(config).__name__}.")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with torch.device("meta"):
        reference = build_run_model(config).state_dict()
    missing = sorted(set(reference) - set(state))
    unexpected = sorted(set(state) - set(reference))
    wrong = sorted(k for k in set(state) & set(reference) if tuple(state[k].shape) != tuple(reference[k].shape))
    require(not (missing or unexpected or wrong),
            f"the model's weights do not fit the model config (train.objective={config.train.objective}): missing "
            f"{missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]}; "
            "pass the RunConfig the model was built from.")
    final = Path(directory).expanduser()
    from edlm.version import __version__

    with atomic_directory(final) as tmp:
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        meta = {
            "format": FORMAT, "version": VERSION, "objective": config.train.objective,
            "config": config.to_dict(), "files": {WEIGHTS_FILE: file_record(tmp / WEIGHTS_FILE)},
            "edlm_version": __version__, "torch_version": torch.__version__,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=1))
    return final


def is_pretrained_dir(path) -> bool:
    """True when `path` is a local directory holding an `edlm_config.json`."""
    try:
        return (Path(str(path)).expanduser() / CONFIG_FILE).is_file()
    except OSError:
        return False


def bundled_root() -> Path:
    """The directory holding the bundled models: `$EDLM_BUNDLED_DIR` when set, else `BUNDLED_ROOT`."""
    return Path(os.environ.get(BUNDLED_ENV) or BUNDLED_ROOT).expanduser()


def bundled_names() -> list[str]:
    """Sorted names of the bundled models (subdirectories of `bundled_root()` with edlm_config.json)."""
    root = bundled_root()
    return sorted(p.name for p in root.iterdir() if is_pretrained_dir(p)) if root.is_dir() else []


def bundled_dir(name: str) -> Path:
    """The directory of bundled model `name`; EdlmError when there is none of that name."""
    names = bundled_names()
    require(bool(names), f"bundled model {name!r} is not available because {bundled_root()} holds no bundled "
            f"models; reinstall edlm with its checkpoints, set {BUNDLED_ENV}, or pass a model directory instead.")
    require(name in names, f"bundled model {name!r} does not exist; use one of {', '.join(names)}.")
    return bundled_root() / name


def _resolve(id_or_dir, revision: str | None) -> Path:
    path = Path(str(id_or_dir)).expanduser()
    if path.exists():
        require(path.is_dir() and (path / CONFIG_FILE).is_file(),
                f"{path} is not an edlm pretrained directory (no {CONFIG_FILE}); pass a directory written by "
                "save_pretrained or `edlm export`.")
        return path
    text = str(id_or_dir)
    require(text.count("/") == 1 and not text.startswith((".", "/", "~")) and " " not in text,
            f"pretrained model {text!r} is neither an existing directory nor a hub id like org/name; check the path.")
    try:
        import huggingface_hub
    except ImportError:
        raise EdlmError(f"loading {text!r} from the hub needs huggingface_hub; install edlm[hf] or pass a "
                        "local directory.") from None
    try:
        local = Path(huggingface_hub.snapshot_download(text, revision=revision,
                                                       allow_patterns=[CONFIG_FILE, WEIGHTS_FILE]))
    except Exception as err:  # network, authentication, unknown repo or revision
        raise EdlmError(f"could not download {text!r} (revision {revision or 'main'}) from the hub: "
                        f"{str(err).splitlines()[0] if str(err) else repr(err)}; check the id, the network and "
                        "HF_TOKEN, or pass a local directory.") from None
    require((local / CONFIG_FILE).is_file(), f"hub repo {text!r} has no {CONFIG_FILE}; it is not an edlm "
            "pretrained model (for MDLM hub checkpoints use hf:ID, for causal LMs hf:ID).")
    return local


def read_pretrained_config(id_or_dir, *, revision: str | None = None) -> tuple[Path, dict, RunConfig]:
    """(local directory, edlm_config.json contents, RunConfig) of a pretrained directory or hub id."""
    path = _resolve(id_or_dir, revision)
    meta, config = read_run_json(path / CONFIG_FILE, fmt=FORMAT, versions=READ_VERSIONS, required=(),
                                 what="pretrained config", writer="save_pretrained (edlm export)")
    return path, meta, config


def load_pretrained_state(id_or_dir, *, revision: str | None = None) -> tuple[dict[str, torch.Tensor], RunConfig]:
    """(weights on the CPU, RunConfig) of a pretrained directory or hub id, after checking the weights'
    size and sha256 against edlm_config.json."""
    path, meta, config = read_pretrained_config(id_or_dir, revision=revision)
    file = path / WEIGHTS_FILE
    check_file(file, (meta.get("files") or {}).get(WEIGHTS_FILE), version=meta["version"],
               listed_in=path / CONFIG_FILE, fix="export or download the model again (reinstall edlm for a "
               "bundled model)")
    try:
        return load_file(str(file), device="cpu"), config
    except SafetensorError as err:
        raise EdlmError(f"{file} is corrupt ({err}); export the model again.") from None


def from_pretrained(id_or_dir, *, device=None, dtype=None,
                    revision: str | None = None) -> tuple[nn.Module, RunConfig]:
    """(model in eval mode, RunConfig) from a directory written by `save_pretrained` or a hub id.

    device: where to put the model (None: CUDA when available, else the CPU). dtype: None keeps float32
    parameters (the weights' values are copied exactly; bf16 weights are widened without rounding), or
    a torch dtype / name such as "bf16".
    revision: a hub branch, tag or commit (hub ids only).
    """
    from edlm.util.device import select_device

    if isinstance(dtype, str):
        require(dtype.lower() in DTYPES, f"dtype={dtype!r} is not one of {', '.join(DTYPES)}.")
        dtype = DTYPES[dtype.lower()]
    spec = str(id_or_dir)
    state, config = load_pretrained_state(spec, revision=revision)
    model = build_run_model(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise EdlmError(f"the weights in {spec} do not fit the model its config describes ({first}); "
                        "the directory is corrupt or was written by an incompatible edlm.") from None
    model.to(device=device if device is not None else select_device(), dtype=dtype)
    return model.eval(), config
