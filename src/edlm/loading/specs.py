"""Model and tokenizer specs of the evaluation commands.

A model spec is one of
- `hf:ID_OR_PATH`: a Hugging Face checkpoint (local directory or hub id). Its config.json decides how:
  an MDLM checkpoint (`model_type: mdlm`, the kuleshov-group/mdlm layout) loads as an edlm
  `MaskedDiffusionLM` through `edlm.loading.mdlm_hub.load_mdlm_hub`; anything else as a causal LM
  through `HFCausalLM`. An MDLM checkpoint's tokenizer is the one saved beside it when there is one,
  else edlm's `gpt2` tokenizer when its data vocabulary has GPT-2's 50,257 ids (as mdlm-owt).
- `pretrained:DIR_OR_ID`, or a bare local directory holding edlm_config.json: a directory written by
  `edlm.loading.pretrained.save_pretrained` / `edlm export` (a hub id downloads one).
- `bundled:NAME`: one of the pretrained directories shipped with edlm (`edlm.loading.pretrained.bundled_names()`).
- `ckpt:PATH` or a bare path: an edlm training checkpoint (`edlm.loading.checkpoint.load_model`).
A tokenizer spec is any `data.tokenizer` value (`char`, `gpt2`, `tiktoken:FILE`, `hf:NAME_OR_PATH`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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


GPT2_VOCAB = 50257
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json")


def hf_config_json(id_or_path: str, revision: str | None = None) -> dict | None:
    """The config.json of a Hugging Face checkpoint (local directory or hub id), or None when it has none
    or it cannot be fetched (the loader that runs next then says what is wrong)."""
    path = Path(id_or_path).expanduser()
    if path.exists():
        file = path / "config.json"
    else:
        try:
            import huggingface_hub

            file = Path(huggingface_hub.hf_hub_download(id_or_path, "config.json", revision=revision))
        except Exception:  # no huggingface_hub, no network, unknown repo: let the causal-LM loader report it
            return None
    try:
        raw = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return raw if isinstance(raw, dict) else None


def is_mdlm_config(raw: dict | None) -> bool:
    """True for the config.json of a kuleshov-group/mdlm checkpoint (model_type mdlm or architecture MDLM)."""
    if not raw:
        return False
    return raw.get("model_type") == "mdlm" or "MDLM" in (raw.get("architectures") or [])


def mdlm_tokenizer(id_or_path: str, vocab_size: int):
    """The tokenizer of an MDLM hub checkpoint: one saved in its local directory, else edlm's `gpt2` when
    the data vocabulary is GPT-2's; None when neither applies."""
    from edlm.config import DataConfig
    from edlm.data import build_tokenizer

    path = Path(id_or_path).expanduser()
    if path.is_dir() and any((path / name).is_file() for name in TOKENIZER_FILES):
        return build_tokenizer(DataConfig(tokenizer=f"hf:{path}"))
    if vocab_size == GPT2_VOCAB:
        return build_tokenizer(DataConfig(tokenizer="gpt2"))
    return None


def load_model_spec(spec: str, *, device: str = "auto", dtype: str | None = None,
                    trust_remote_code: bool = False, ema: bool = True) -> LoadedModel:
    """Load the model a spec names (see the module docstring) onto `device` in eval mode.
    ema=False loads an edlm training checkpoint's trained weights instead of its EMA weights."""
    from edlm.loading.pretrained import from_pretrained, pretrained_spec
    from edlm.util.device import select_device

    torch_device = select_device(device)
    name = hf_spec(spec)
    if name is not None:
        if is_mdlm_config(hf_config_json(name)):
            from edlm.loading.mdlm_hub import load_mdlm_hub

            model = load_mdlm_hub(name, device=torch_device, dtype=dtype)
            return LoadedModel(model, mdlm_tokenizer(name, model.vocab_size), model.config.max_seq_len, spec)
        lm = HFCausalLM.from_pretrained(name, trust_remote_code=trust_remote_code, dtype=dtype, device=torch_device)
        return LoadedModel(lm, lm.tokenizer, lm.max_length, spec)
    require(not trust_remote_code, f"--trust-remote-code applies to hf: models only, not to {spec!r}; drop the flag.")
    from edlm.data import build_tokenizer

    pretrained = pretrained_spec(spec)
    if pretrained is not None:
        model, config = from_pretrained(pretrained, device=torch_device, dtype=dtype)
        return LoadedModel(model, build_tokenizer(config.data), config.data.seq_len, spec)
    require(dtype in (None, "float32", "fp32"), f"dtype={dtype!r} applies to hf: and pretrained: models only; edlm "
            "checkpoints load in float32 (use autocast for lower precision).")
    from edlm.loading.checkpoint import load_model

    model, config = load_model(spec, ema=ema, device=torch_device)
    return LoadedModel(model, build_tokenizer(config.data), config.data.seq_len, spec)


def same_tokenizer(ours, theirs) -> str | None:
    """None when two tokenizers give the same ids (identical fingerprints, or the same ids for a probe
    text and the same EOS id), else a sentence saying how they differ. Fingerprints alone are not
    compared: edlm's tiktoken `gpt2` and Hugging Face's GPT-2 tokenizer differ in fingerprint but not in ids."""
    from edlm.models.hf import PROBE_TEXT

    if ours is None or theirs is None:
        return None
    fp_ours, fp_theirs = getattr(ours, "fingerprint", None), getattr(theirs, "fingerprint", None)
    if fp_ours is not None and fp_ours == fp_theirs:
        return None
    a, b = ours.encode(PROBE_TEXT), theirs.encode(PROBE_TEXT)
    if a != b:
        return f"they encode a probe text differently ({a[:6]}... vs {b[:6]}...)"
    eos_a, eos_b = getattr(ours, "eos_id", None), getattr(theirs, "eos_id", None)
    if eos_a is not None and eos_b is not None and eos_a != eos_b:
        return f"their end-of-sequence ids differ ({eos_a} vs {eos_b})"
    return None


def load_tokenizer_spec(spec: str | None):
    """The tokenizer a `data.tokenizer` spec names, or None for None / ''."""
    if not spec:
        return None
    from edlm.config import DataConfig
    from edlm.data import build_tokenizer

    return build_tokenizer(DataConfig(tokenizer=spec))
