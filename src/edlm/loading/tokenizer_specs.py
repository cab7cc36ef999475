"""Tokenizer specs and the question every pairing of models asks: do two tokenizers give the same ids?

A tokenizer spec is any `data.tokenizer` value (`char`, `gpt2`, `tiktoken:FILE`, `hf:NAME_OR_PATH`).
"""

from __future__ import annotations

from edlm.data import build_tokenizer
from edlm.errors import EdlmError
from edlm.models.hf import PROBE_TEXT


def load_tokenizer_spec(spec: str | None):
    """The tokenizer a `data.tokenizer` spec names, or None for None / ''."""
    return build_tokenizer(spec) if spec else None


def tokenizer_label(tokenizer) -> str:
    """A tokenizer's name for messages ('?' when it has none)."""
    return str(getattr(tokenizer, "name", None) or "?")


def _probe(tokenizer) -> list[int] | None:
    try:
        return list(tokenizer.encode(PROBE_TEXT))
    except (EdlmError, ValueError, KeyError):  # e.g. text8 characters cannot encode capitals or digits
        return None


def same_tokenizer(ours, theirs) -> str | None:
    """None when two tokenizers give the same ids (identical fingerprints, or the same ids for a probe
    text and the same EOS id) or when either is None (unknown), else a phrase saying how they differ.
    Fingerprints alone are not compared: edlm's tiktoken `gpt2` and Hugging Face's GPT-2 tokenizer
    differ in fingerprint but not in ids."""
    if ours is None or theirs is None or ours is theirs:
        return None
    fp_ours, fp_theirs = getattr(ours, "fingerprint", None), getattr(theirs, "fingerprint", None)
    if fp_ours is not None and fp_ours == fp_theirs:
        return None
    a, b = _probe(ours), _probe(theirs)
    if a is None or b is None:
        which = tokenizer_label(ours if a is None else theirs)
        return f"{which} cannot encode a probe text that the other one can" if a != b else \
            "neither can encode the probe text"
    if a != b:
        return f"they encode a probe text differently ({a[:6]}... vs {b[:6]}...)"
    eos_a, eos_b = getattr(ours, "eos_id", None), getattr(theirs, "eos_id", None)
    if eos_a is not None and eos_b is not None and eos_a != eos_b:
        return f"their end-of-sequence ids differ ({eos_a} vs {eos_b})"
    return None
