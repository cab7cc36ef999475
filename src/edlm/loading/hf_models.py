"""`hf:ID_OR_PATH` model specs: a Hugging Face checkpoint (local directory or hub id).

Its config.json decides how it loads: an MDLM checkpoint (`model_type: mdlm`, or architecture `MDLM`:
the kuleshov-group/mdlm layout) as an edlm `MaskedDiffusionLM` through `edlm.loading.mdlm_hub`; a
SEDD checkpoint (a Hydra config with `tokens`, `graph` and `model`: louaaron/sedd-small) as an edlm
`SEDDScoreModel` through `edlm.loading.sedd_hub`; anything else as a causal LM through
`edlm.models.hf.HFCausalLM`. An MDLM or SEDD checkpoint's tokenizer is the one saved beside it when
there is one, else edlm's `gpt2` tokenizer when its data vocabulary has GPT-2's 50,257 ids (as
mdlm-owt and sedd-small), else unknown (None).
"""

from __future__ import annotations

import json
from pathlib import Path

from edlm.loading.mdlm_hub import load_mdlm_hub
from edlm.loading.sedd_hub import is_sedd_config, load_sedd_hub
from edlm.models.hf import HFCausalLM

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
    """The tokenizer of an MDLM or SEDD hub checkpoint: one saved in its local directory, else edlm's `gpt2`
    when the data vocabulary is GPT-2's; None when neither applies."""
    from edlm.data import build_tokenizer

    path = Path(id_or_path).expanduser()
    if path.is_dir() and any((path / name).is_file() for name in TOKENIZER_FILES):
        return build_tokenizer(f"hf:{path}")
    if vocab_size == GPT2_VOCAB:
        return build_tokenizer("gpt2")
    return None


def load_hf(id_or_path: str, *, device, dtype=None, trust_remote_code: bool = False):
    """(model in eval mode, its tokenizer or None, its sequence length or None) of an `hf:` checkpoint."""
    raw = hf_config_json(id_or_path)
    if is_mdlm_config(raw) or is_sedd_config(raw):
        load = load_mdlm_hub if is_mdlm_config(raw) else load_sedd_hub
        model = load(id_or_path, device=device, dtype=dtype)
        return model, mdlm_tokenizer(id_or_path, model.vocab_size), model.config.max_seq_len
    lm = HFCausalLM.from_pretrained(id_or_path, trust_remote_code=trust_remote_code, dtype=dtype, device=device)
    return lm.eval(), lm.tokenizer, lm.max_length
