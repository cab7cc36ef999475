"""Sample files and the rules that turn a sample into the tokens an evaluator reads.

A sample file is JSONL: one JSON object per line with `ids` (a list of token ids in the tokenizer
that produced the sample) and/or `text` (a string). Other keys (`seed`, ...) are kept in `meta`;
`edlm sample` records there the `tokenizer` spec of the ids (`recorded_tokenizer`).

The EOS rule (used by generative perplexity, the diversity metrics and MAUVE):
1. On token ids with an EOS id: one leading EOS is dropped (it is the BOS of the "EOS at both ends"
   layout, not generated content); the sample then ends at the first remaining EOS. Tokens before it
   are the content; the EOS itself is not content, but the sample is marked `ended`; everything
   after it is ignored.
2. On text only: the same, with the tokenizer's EOS string (e.g. "<|endoftext|>") as the marker.
3. A tokenizer without an EOS id (text8 characters) cuts nothing.
Whether the EOS itself is scored by an oracle is the caller's choice (`count_eos` in generative.py).

Retokenisation: samples are read in the target tokenizer (the oracle's or the featurizer's). If the
samples' tokenizer gives the target's ids (`edlm.loading.tokenizer_specs.same_tokenizer`; no samples'
tokenizer given means the samples were made with the target's tokenizer), ids are used as they are.
Otherwise the content is decoded to text with the samples' tokenizer (or the sample's `text` is used
when it has no ids) and encoded with the target's. Callers that cannot know the samples' tokenizer
score the text instead (`text_only`), never ids of one tokenizer read as ids of another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edlm.errors import EdlmError, require
from edlm.loading.tokenizer_specs import load_tokenizer_spec, same_tokenizer


@dataclass
class Sample:
    """One sample: token ids and/or text, plus any other fields of its JSONL line."""

    ids: list[int] | None = None
    text: str | None = None
    meta: dict = field(default_factory=dict)


@dataclass
class Prepared:
    """A sample after the EOS rule. sample_tokens: content in the samples' tokenizer (None when the
    sample had only text); target_tokens: content in the target tokenizer; ended: an EOS ended it;
    text: the content as text (None when no tokenizer can decode it); retokenized: target_tokens were
    encoded from text rather than taken from the sample's ids."""

    sample_tokens: list[int] | None
    target_tokens: list[int]
    ended: bool
    text: str | None = None
    retokenized: bool = False


def read_samples(path: str | Path) -> list[Sample]:
    """Samples of a JSONL file (see the module docstring)."""
    path = Path(path)
    require(path.is_file(), f"sample file {str(path)!r} does not exist; pass a JSONL file with 'ids' and/or 'text'.")
    samples = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise EdlmError(f"{path}:{number} is not valid JSON ({err.msg}); "
                                "write one JSON object per line.") from None
            require(isinstance(row, dict) and ("ids" in row or "text" in row),
                    f"{path}:{number} has neither 'ids' nor 'text'; write objects like "
                    '{"ids": [...], "text": "..."}.')
            ids = row.pop("ids", None)
            text = row.pop("text", None)
            require(ids is None or (isinstance(ids, list) and all(isinstance(i, int) for i in ids)),
                    f"{path}:{number}: 'ids' must be a list of integers.")
            require(text is None or isinstance(text, str), f"{path}:{number}: 'text' must be a string.")
            samples.append(Sample(ids, text, row))
    require(bool(samples), f"sample file {str(path)!r} holds no samples; write one JSON object per line.")
    return samples


def cut_at_eos(ids: list[int], eos_id: int | None) -> tuple[list[int], bool]:
    """Rule 1: (content, ended) of token ids."""
    if eos_id is None:
        return list(ids), False
    ids = list(ids[1:]) if ids and ids[0] == eos_id else list(ids)
    if eos_id in ids:
        return ids[: ids.index(eos_id)], True
    return ids, False


def cut_text_at_eos(text: str, eos_text: str | None) -> tuple[str, bool]:
    """Rule 2: (content, ended) of a text."""
    if not eos_text:
        return text, False
    if text.startswith(eos_text):
        text = text[len(eos_text):]
    if eos_text in text:
        return text[: text.index(eos_text)], True
    return text, False


def eos_text(tokenizer) -> str | None:
    """The EOS marker string of a tokenizer, or None without an EOS id."""
    eos = getattr(tokenizer, "eos_id", None) if tokenizer is not None else None
    return tokenizer.decode([eos]) if eos is not None else None


def recorded_tokenizer(samples: list[Sample], path="the sample file") -> str | None:
    """The `tokenizer` spec the samples record (every sample the same), or None when none records one."""
    specs = {s.meta.get("tokenizer") for s in samples} - {None}
    require(len(specs) <= 1, f"{path} mixes samples of tokenizers {sorted(map(str, specs))}; score each "
            "tokenizer's samples on their own.")
    return specs.pop() if specs else None


def samples_tokenizer(samples: list[Sample], spec: str | None = None, path="the sample file"):
    """(samples, their tokenizer) ready for `prepare`: the tokenizer `spec` names (e.g. --tokenizer),
    else the one the samples record; when neither is known, the samples without their ids (`text_only`:
    their text is scored) and None."""
    spec = spec or recorded_tokenizer(samples, path)
    if spec:
        return samples, load_tokenizer_spec(spec)
    return text_only(samples, path), None


def text_only(samples: list[Sample], path="the sample file") -> list[Sample]:
    """The samples with their ids dropped, for scoring their text when the ids' tokenizer is unknown;
    EdlmError when a sample has ids but no text."""
    missing = sum(s.text is None for s in samples)
    require(not missing, f"{path} records no tokenizer and {missing} of its samples have token ids without "
            "text, so they cannot be read in another tokenizer; pass --tokenizer SPEC (the samples' tokenizer).")
    return [Sample(None, s.text, s.meta) for s in samples]


def encode_text(tokenizer, text: str) -> list[int]:
    """tokenizer.encode(text), with an EdlmError when the tokenizer cannot encode it."""
    try:
        return list(tokenizer.encode(text))
    except (ValueError, KeyError) as err:
        raise EdlmError(f"tokenizer {getattr(tokenizer, 'name', '?')!r} cannot encode sample text {text[:40]!r} "
                        f"({err}); use a tokenizer that covers the samples' characters.") from None


def prepare(sample: Sample, sample_tokenizer=None, target_tokenizer=None) -> Prepared:
    """Apply the EOS rule and retokenise one sample into the target tokenizer."""
    if same_tokenizer(sample_tokenizer, target_tokenizer) is None:
        tokenizer = target_tokenizer or sample_tokenizer
        if sample.ids is not None:
            content, ended = cut_at_eos(sample.ids, getattr(tokenizer, "eos_id", None))
            return Prepared(content, content, ended, tokenizer.decode(content) if tokenizer is not None else None)
        require(tokenizer is not None, "a sample has only text and no tokenizer is known; give the samples' "
                "or the target's tokenizer, or write 'ids' into the sample file.")
        text, ended = cut_text_at_eos(sample.text, eos_text(tokenizer))
        return Prepared(None, encode_text(tokenizer, text), ended, text, True)
    if sample.ids is not None:
        content, ended = cut_at_eos(sample.ids, sample_tokenizer.eos_id)
        text = sample_tokenizer.decode(content)
        return Prepared(content, encode_text(target_tokenizer, text), ended, text, True)
    text, ended = cut_text_at_eos(sample.text, eos_text(sample_tokenizer))
    return Prepared(None, encode_text(target_tokenizer, text), ended, text, True)
