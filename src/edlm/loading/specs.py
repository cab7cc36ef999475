"""Model specs: the one resolver of every string that names a model (`edlm.load`, every command option
that takes a model, `train.init_from`, the lm-eval adapter's `pretrained=`).

A model spec is one of
- `ckpt:PATH`: an edlm training checkpoint: a run directory (`train.out_dir`; its newest checkpoint),
  its `checkpoints/` directory or one `checkpoints/step_*` directory (`edlm.loading.checkpoint`).
- `pretrained:DIR_OR_ID`: a directory written by `edlm export` (`save_pretrained`), or a Hugging Face
  hub id `org/name` holding one (`edlm.loading.pretrained`).
- `bundled:NAME`: one of the pretrained directories shipped with edlm (`bundled_names()`).
- `hf:ID_OR_PATH`: a Hugging Face checkpoint: an MDLM one loads as an edlm `MaskedDiffusionLM`, a
  SEDD one (`louaaron/sedd-small`) as an edlm `SEDDScoreModel`, anything else as a causal LM
  (`edlm.loading.hf_models`).
- `gguf:PATH_OR_NAME`: a GGUF causal LM, a `.gguf` file or a named one such as `gguf:smollm2-135m`
  (`edlm.loading.gguf`); a bare path to a `.gguf` file is read the same way.
- a bare path: a directory holding edlm_config.json is `pretrained:`; one holding state.json,
  checkpoints/latest or latest is `ckpt:`.

Every loaded model has a role: "denoiser" (a masked diffusion model: `model(xt, t)` -> logits),
"score" (a SEDD score model: `model(xt, sigma)` -> log scores), "causal" (a causal LM:
`token_logprobs`) or "nce" (an NCE energy network). Energy specs (`ar:`,
`coar:`, `nce:`) are resolved on top of this by `edlm.loading.energy_specs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edlm.config import RunConfig
from edlm.data import build_tokenizer
from edlm.diffusion.sedd import is_score_model
from edlm.errors import EdlmError, require
from edlm.loading.checkpoint import is_checkpoint_dir, load_model, read_checkpoint
from edlm.loading.gguf import load_gguf
from edlm.loading.hf_models import load_hf
from edlm.loading.pretrained import bundled_dir, from_pretrained, is_pretrained_dir, read_pretrained_config
from edlm.models.nce import NCEEnergy
from edlm.util.device import select_device

FORMS = {"ckpt": "ckpt:PATH", "pretrained": "pretrained:DIR_OR_ID", "bundled": "bundled:NAME",
         "hf": "hf:ID_OR_PATH", "gguf": "gguf:PATH_OR_NAME"}
ENERGY_PREFIXES = ("ar", "coar", "nce")
ROLE_WORDS = {"denoiser": "a masked diffusion model (denoiser)", "causal": "a causal LM", "nce": "an NCE energy",
              "score": "a score model (SEDD)"}
ACCEPTED = ("ckpt:PATH, pretrained:DIR_OR_ID, bundled:NAME, hf:ID_OR_PATH, gguf:PATH_OR_NAME, or an existing "
            "run, checkpoint or exported model directory")


@dataclass
class LoadedModel:
    """A model from a spec, in eval mode.

    tokenizer: its tokenizer (None when unknown); seq_len: the sequence length it was trained on (edlm)
    or its context length (HF), None when unknown; config: its RunConfig (edlm checkpoints and exported
    directories; None for hf:); role: "denoiser", "score", "causal" or "nce"; kind: the spec's kind (ckpt,
    pretrained, bundled, hf, gguf); directory: the local directory it was read from (the checkpoint
    directory for ckpt:, the converted cache directory for gguf:; None for hub ids); step: the training
    step of a ckpt: model, else None.
    """

    model: object
    tokenizer: object | None
    seq_len: int | None
    spec: str
    config: RunConfig | None
    role: str
    kind: str
    directory: Path | None = None
    step: int | None = None

    @property
    def causal(self) -> bool:
        return self.role == "causal"

    @property
    def tokenizer_spec(self) -> str | None:
        """The tokenizer as a spec that `edlm.data.build_tokenizer` rebuilds (its `data.tokenizer` for
        edlm models, else the tokenizer's name), or None when unknown."""
        if self.config is not None:
            return self.config.data.tokenizer
        return getattr(self.tokenizer, "name", None)


def model_role(model) -> str:
    """"nce" for an NCE energy, "score" for a score model (it has `graph`: SEDD), "causal" for a causal
    LM (it has token_logprobs), else "denoiser"."""
    if isinstance(model, NCEEnergy):
        return "nce"
    if is_score_model(model):
        return "score"
    return "causal" if hasattr(model, "token_logprobs") else "denoiser"


def parse_model_spec(spec, what: str = "model spec") -> tuple[str, str]:
    """(kind, target) of a model spec without loading anything: kind is ckpt, pretrained, bundled, hf or gguf;
    target the path, hub id or bundled name after the prefix. `what` names the value in messages
    (e.g. "--denoiser"). EdlmError with one sentence for an empty value, an unknown prefix or a path
    that is not a model."""
    text = str(spec)
    prefix, colon, rest = text.partition(":")
    if colon and prefix in FORMS:
        require(bool(rest.strip()), f"{what} {text!r} names no model; write {FORMS[prefix]}.")
        return prefix, rest
    path = Path(text).expanduser()
    if text.strip() and path.is_dir():
        if is_pretrained_dir(path):
            return "pretrained", text
        if is_checkpoint_dir(path):
            return "ckpt", text
        raise EdlmError(f"{what} {text!r} is a directory but not an edlm model (no edlm_config.json, state.json "
                        f"or checkpoints/latest); pass {ACCEPTED}.")
    if text.strip() and path.is_file() and path.suffix == ".gguf":
        return "gguf", text
    if colon and prefix in ENERGY_PREFIXES and not path.exists():
        raise EdlmError(f"{what} {text!r} is an energy spec, not a model; pass a model spec ({ACCEPTED}).")
    if colon and prefix.isidentifier() and not path.exists():
        raise EdlmError(f"{what} {text!r} has the unknown prefix {prefix + ':'!r}; use one of "
                        f"{', '.join(FORMS.values())}, or a path.")
    require(bool(text.strip()), f"{what} is empty; pass {ACCEPTED}.")
    raise EdlmError(f"{what} {text!r} does not exist; pass {ACCEPTED}."
                    if not path.exists() else
                    f"{what} {text!r} is a file, not a model directory; pass {ACCEPTED}.")


def _check_dtype(dtype, kind: str, spec: str) -> None:
    require(dtype in (None, "float32", "fp32") or kind != "ckpt",
            f"dtype={dtype!r} does not apply to training checkpoint {spec!r}, which loads in float32; drop it "
            "(use autocast for lower precision) or export the model first.")


def load_spec(spec, *, device="auto", dtype=None, trust_remote_code: bool = False, ema: bool = True,
              role: str | tuple[str, ...] | None = None, what: str = "model spec") -> LoadedModel:
    """Load the model a spec names (see the module docstring) onto `device` in eval mode.

    dtype: parameter dtype for pretrained/bundled/hf/gguf models (None: float32). trust_remote_code: hf:
    models only. ema=False loads a training checkpoint's trained weights instead of its EMA weights
    (exported and hf: models hold one set of weights, so it does not apply to them). role: the role(s)
    the caller accepts; another role is an EdlmError naming `what` and the value.
    """
    kind, target = parse_model_spec(spec, what)
    spec = str(spec)
    require(not trust_remote_code or kind == "hf",
            f"--trust-remote-code applies to hf: models only, not to {what} {spec!r}; drop the flag.")
    _check_dtype(dtype, kind, spec)
    torch_device = select_device("auto" if device is None else device)
    if kind == "hf":
        model, tokenizer, seq_len = load_hf(target, device=torch_device, dtype=dtype,
                                            trust_remote_code=trust_remote_code)
        loaded = LoadedModel(model, tokenizer, seq_len, spec, None, model_role(model), kind,
                             Path(target).expanduser() if Path(target).expanduser().is_dir() else None)
    elif kind == "gguf":
        model, tokenizer, seq_len, directory = load_gguf(target, device=torch_device, dtype=dtype)
        loaded = LoadedModel(model, tokenizer, seq_len, spec, None, "causal", kind, directory)
    elif kind == "ckpt":
        ckpt = read_checkpoint(target)
        model, config = load_model(ckpt.path, ema=ema, device=torch_device)
        loaded = LoadedModel(model, build_tokenizer(config.data), config.data.seq_len, spec, config,
                             model_role(model), kind, ckpt.path, ckpt.step)
    else:
        source = bundled_dir(target) if kind == "bundled" else target
        directory, _, _ = read_pretrained_config(source)
        model, config = from_pretrained(directory, device=torch_device, dtype=dtype)
        loaded = LoadedModel(model, build_tokenizer(config.data), config.data.seq_len, spec, config,
                             model_role(model), kind, directory)
    if role is not None:
        check_role(loaded, role, what)
    return loaded


def check_role(loaded: LoadedModel, role: str | tuple[str, ...], what: str = "model spec") -> None:
    """EdlmError unless the loaded model's role is `role` (or one of them)."""
    roles = (role,) if isinstance(role, str) else tuple(role)
    wanted = " or ".join(ROLE_WORDS[r] for r in roles)
    require(loaded.role in roles, f"{what} {loaded.spec!r} is {ROLE_WORDS[loaded.role]}, not {wanted}; "
            f"pass {wanted} as {what}.")


def max_seq_len(model) -> int | None:
    """The most tokens a model takes at once (edlm: model.max_seq_len; HF: its positions), None when unknown."""
    return getattr(getattr(model, "config", None), "max_seq_len", None) or getattr(model, "max_length", None)


def check_seq_len(seq_len: int, model, what: str) -> None:
    """EdlmError unless `model` (named `what` in the message) takes sequences of `seq_len` tokens."""
    limit = max_seq_len(model)
    require(limit is None or seq_len <= limit,
            f"--seq-len {seq_len} exceeds the {what}'s max_seq_len={limit}; use a shorter --seq-len.")


def load(spec, **kwargs):
    """The model a spec names, in eval mode (`edlm.load`): see `load_spec` for the keywords."""
    return load_spec(spec, **kwargs).model
