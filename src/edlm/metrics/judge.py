"""A causal LM that judges samples in bits per character, whatever its tokenizer.

- `load_judge(spec, device, option)`: the `LoadedModel` of a causal-LM spec (any spec kind of
  `edlm.loading.specs`, e.g. `bundled:text8-small-oracle` or `gguf:smollm2-135m`) that has a known
  tokenizer; `option` names the command-line option in the error.
- `judge_bits_per_char(judge, samples, tokenizer) -> (bits, retokenized)`: each sample's NLL under the
  judge in bits per character of its text (nats / characters / ln 2), so models of any tokenizer are
  comparable. `samples` are id lists of `tokenizer` (the sampler's); when the judge has another
  tokenizer the decoded texts are encoded by the judge's own (`retokenized` True).
- `judge_text_bits_per_char(judge, texts)`: the same for texts, each encoded by the judge's tokenizer.
"""

from __future__ import annotations


def load_judge(spec: str, device, option: str = "--oracle"):
    """The `LoadedModel` of a judging causal LM with a known tokenizer; EdlmError otherwise."""
    from edlm.errors import require
    from edlm.loading.specs import load_spec

    loaded = load_spec(spec, device=device, role="causal", what=option)
    require(loaded.tokenizer is not None, f"{option} {spec!r} has no known tokenizer, so the samples cannot be "
            f"retokenized for it; save its tokenizer beside it or pass {option} none.")
    return loaded


def judge_bits_per_char(judge, samples: list[list[int]], tokenizer) -> tuple[list[float], bool]:
    """(bits per character of each sample's text under the judge's `LoadedModel`, retokenized): the
    samples' ids when the judge shares `tokenizer`, else their decoded texts encoded by the judge's."""
    from edlm.loading.tokenizer_specs import same_tokenizer
    from edlm.metrics.generative import bits_per_char

    texts = [tokenizer.decode(ids) for ids in samples]
    if same_tokenizer(tokenizer, judge.tokenizer) is not None:
        return judge_text_bits_per_char(judge, texts), True
    return bits_per_char(judge.model, samples, texts), False


def judge_text_bits_per_char(judge, texts: list[str]) -> list[float]:
    """Bits per character of each text under the judge's `LoadedModel`, encoded by the judge's tokenizer."""
    from edlm.metrics.generative import bits_per_char
    from edlm.metrics.samples import encode_text

    return bits_per_char(judge.model, [encode_text(judge.tokenizer, t) for t in texts], texts)
