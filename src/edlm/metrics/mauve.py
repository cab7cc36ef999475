"""MAUVE between human text and model samples, through the `mauve-text` package.

Protocol (the SEDD-vs-GPT-2 evaluation's): human reference texts are cut into windows of `prompt_len + cont_len` tokens
(50 + 50) in the samples' tokenizer; the first `prompt_len` tokens of each window are the prompts
the model continues (`prompt_ids`; `edlm sample --prompts FILE`). A sample may be longer than
`prompt_len + cont_len` (generated at the model's full length): only its first `prompt_len + cont_len`
tokens are read, the variant that generates the full length and keeps the first 100 tokens. Every sample (one JSONL file or `seed` value per sampling seed) holds the prompt
and its continuation; its continuation is cut at the first EOS (the EOS rule of
`edlm.metrics.samples`). `span` picks what is featurized: "full" (prompt + continuation, the default)
or "continuation". MAUVE is computed for each seed against the same reference features, and the
mean and the sample standard deviation (ddof = 1) over seeds are reported.

Features: precomputed arrays, or the last-layer hidden states of a local featurizer model, pooled
over the span's tokens: "last" (the state at the final token, as MAUVE does with GPT-2 large; the
default for causal models) or "mean" (the average over tokens; the default for bidirectional edlm
denoisers, whose last state is no summary). An `HFCausalLM` gives the states after its final norm
with BOS prepended; an edlm `CausalLM` gives its residual stream after the final norm with BOS (id V)
prepended; an edlm denoiser reads the clean tokens at t = 0. Text is retokenised into the
featurizer's tokenizer when it differs from the samples'.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from edlm.errors import EdlmError, require
from edlm.loading.tokenizer_specs import same_tokenizer
from edlm.metrics.samples import Sample, encode_text
from edlm.util.progress import progress_bar

POOLS = ("last", "mean")
SPANS = ("full", "continuation")


def default_pool(model) -> str:
    """'last' for causal featurizers, 'mean' for bidirectional ones."""
    return "last" if hasattr(model, "token_logprobs") else "mean"


def _states(model, x: torch.Tensor) -> torch.Tensor:
    """Last-layer states Float[B, L, D] of token ids x: Long[B, L] (see the module docstring)."""
    if hasattr(model, "hidden_states"):
        return model.hidden_states(x)
    backbone = model.backbone
    if hasattr(model, "token_logprobs"):  # edlm CausalLM: BOS (id V) first, its state dropped
        inputs = torch.cat([torch.full_like(x[:, :1], model.vocab_size), x], dim=1)
        h, _ = backbone.features(inputs)
        return backbone.output.norm_final(h)[:, 1:]
    h, _ = backbone.features(x, torch.zeros(x.shape[0], device=x.device))
    return backbone.output.norm_final(h)


@torch.no_grad()
def featurize(model, sequences: list[list[int]], *, pool: str | None = None, batch_size: int = 32,
              progress: bool = False) -> np.ndarray:
    """Pooled features float32[N, D] of non-empty token sequences. Causal models read right-padded
    batches (later positions cannot change earlier states); bidirectional ones batch equal lengths.
    progress: report the sequences done (`edlm.util.progress`)."""
    pool = pool or default_pool(model)
    require(pool in POOLS, f"pool={pool!r} is unknown; use one of {POOLS}.")
    require(all(sequences), "a sequence to featurize is empty; drop empty samples first.")
    causal = hasattr(model, "token_logprobs")
    params = getattr(model, "parameters", None)
    device = next(params()).device if params is not None else torch.device("cpu")
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    batches, current = [], []
    for i in order:
        if current and (len(current) == batch_size or (not causal and len(sequences[i]) != len(sequences[current[0]]))):
            batches.append(current)
            current = []
        current.append(i)
    batches.append(current)
    out = [None] * len(sequences)
    for idx in progress_bar(batches, enabled=progress, desc="features", unit="batch"):
        lengths = torch.tensor([len(sequences[i]) for i in idx])
        x = torch.zeros(len(idx), int(lengths.max()), dtype=torch.long)
        for r, i in enumerate(idx):
            x[r, : lengths[r]] = torch.tensor(sequences[i])
        h = _states(model, x.to(device)).float().cpu()
        valid = torch.arange(x.shape[1])[None, :] < lengths[:, None]
        pooled = h[torch.arange(len(idx)), lengths - 1] if pool == "last" else \
            (h * valid[..., None]).sum(1) / lengths[:, None]
        for r, i in enumerate(idx):
            out[i] = pooled[r].numpy()
    return np.stack(out).astype(np.float32)


def reference_windows(ids: list[int], length: int, num: int) -> list[list[int]]:
    """The first `num` disjoint windows of `length` tokens of a tokenized reference text."""
    require(length >= 1 and num >= 1, f"length={length} and num={num} must be at least 1.")
    windows = [ids[i:i + length] for i in range(0, len(ids) - length + 1, length)][:num]
    require(len(windows) == num, f"the reference text has {len(ids)} tokens, enough for {len(windows)} windows of "
            f"{length}, not {num}; use fewer samples or a longer reference.")
    return windows


def prompt_ids(path: str, tokenizer, prompt_len: int, cont_len: int, num: int) -> torch.Tensor:
    """Long[num, prompt_len]: the prompts of the first `num` windows of `prompt_len + cont_len` tokens of a
    text file, the windows `load_reference` cuts the same file into, so that sample i continues the
    prompt of reference window i (`edlm sample --prompts`)."""
    from pathlib import Path

    require(Path(path).suffix != ".jsonl", f"prompts file {path!r} is a JSONL file; pass the human text file that "
            "edlm eval mauve --reference reads.")
    require(prompt_len >= 1, f"prompt_len={prompt_len} must be at least 1.")
    windows = load_reference(path, tokenizer, prompt_len + cont_len, num)
    return torch.tensor([w.ids[:prompt_len] for w in windows], dtype=torch.long)


def load_reference(path: str, tokenizer, length: int, num: int) -> list[Sample]:
    """Reference samples: the first `num` lines of a JSONL sample file, or the first `num` disjoint
    windows of `length` tokens of a plain text file tokenized with `tokenizer`."""
    from pathlib import Path

    from edlm.metrics.samples import read_samples

    file = Path(path)
    require(file.is_file(), f"reference file {path!r} does not exist; pass a JSONL sample file or a text file.")
    if file.suffix == ".jsonl":
        samples = read_samples(file)
        require(len(samples) >= num, f"the reference file {path} has {len(samples)} samples, fewer than {num}; "
                "use fewer samples or a longer reference.")
        return samples[:num]
    require(tokenizer is not None, "a text reference needs a tokenizer; pass --tokenizer or a featurizer with one.")
    ids = encode_text(tokenizer, file.read_text(encoding="utf-8"))
    return [Sample(ids=w) for w in reference_windows(ids, length, num)]


def group_samples(paths: list[str]) -> dict[str, list[Sample]]:
    """Sample groups (one per sampling seed): one per file, split further by a `seed` field when present."""
    from edlm.metrics.samples import read_samples

    groups: dict[str, list[Sample]] = {}
    for path in paths:
        for sample in read_samples(path):
            key = path if "seed" not in sample.meta else f"{path}:seed={sample.meta['seed']}"
            groups.setdefault(key, []).append(sample)
    return groups


def span_tokens(sample: Sample, *, prompt_len: int, cont_len: int, span: str, sample_tokenizer=None,
                target_tokenizer=None) -> list[int]:
    """The tokens of one sample (or reference window) to featurize, in the featurizer's tokenizer:
    prompt = ids[:prompt_len], continuation = ids[prompt_len:prompt_len + cont_len] cut at its first EOS.
    A text-only sample (span "full" only) gives the first prompt_len + cont_len featurizer tokens."""
    require(span in SPANS, f"span={span!r} is unknown; use one of {SPANS}.")
    if sample.ids is None:
        require(span == "full" and target_tokenizer is not None,
                "a text-only sample has no token boundary between prompt and continuation; "
                "write 'ids' or use span=full.")
        return encode_text(target_tokenizer, sample.text)[: prompt_len + cont_len]
    require(len(sample.ids) >= prompt_len + 1, f"a sample has {len(sample.ids)} tokens, not more than the prompt's "
            f"{prompt_len}; check --prompt-len.")
    eos = getattr(sample_tokenizer or target_tokenizer, "eos_id", None)
    prompt, continuation = list(sample.ids[:prompt_len]), list(sample.ids[prompt_len:prompt_len + cont_len])
    if eos is not None and eos in continuation:
        continuation = continuation[: continuation.index(eos)]
    ids = continuation if span == "continuation" else prompt + continuation
    if same_tokenizer(sample_tokenizer, target_tokenizer) is None:
        return ids
    return encode_text(target_tokenizer, sample_tokenizer.decode(ids))


@dataclass
class MauveReport:
    """MAUVE of each sample group (seed) against the reference, and their mean and std (ddof = 1)."""

    scores: dict[str, float]
    frontier_integrals: dict[str, float]
    mean: float
    std: float
    num_reference: int
    num_per_group: dict[str, int]
    num_buckets: int | str
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def mauve_from_features(reference: np.ndarray, groups: dict[str, np.ndarray], *, num_buckets: int | str = "auto",
                        kmeans_num_redo: int = 5, kmeans_max_iter: int = 500, scaling: float = 5.0,
                        seed: int = 25, settings: dict | None = None) -> MauveReport:
    """MAUVE (mauve.compute_mauve) of each group's features float[N, D] against `reference` float[M, D]."""
    try:
        import mauve
    except ImportError:
        raise EdlmError("MAUVE needs the mauve-text package; install it with pip install 'edlm[eval]'.") from None
    require(bool(groups), "there are no sample groups to score; pass at least one sample file.")
    scores, frontiers = {}, {}
    for name, features in groups.items():
        require(features.ndim == 2 and features.shape[1] == reference.shape[1],
                f"features of {name!r} have shape {features.shape}, not [N, {reference.shape[1]}] "
                "like the reference's.")
        out = mauve.compute_mauve(p_features=reference, q_features=features, num_buckets=num_buckets,
                                  kmeans_num_redo=kmeans_num_redo, kmeans_max_iter=kmeans_max_iter,
                                  mauve_scaling_factor=scaling, seed=seed, verbose=False)
        scores[name], frontiers[name] = float(out.mauve), float(out.frontier_integral)
    values = list(scores.values())
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else float("nan")
    return MauveReport(scores, frontiers, mean, std, int(reference.shape[0]),
                       {k: int(v.shape[0]) for k, v in groups.items()}, num_buckets, dict(settings or {}))


def mauve_eval(reference: list[Sample], groups: dict[str, list[Sample]], featurizer, *, sample_tokenizer=None,
               featurizer_tokenizer=None, prompt_len: int = 50, cont_len: int = 50, span: str = "full",
               pool: str | None = None, batch_size: int = 32, progress: bool = False,
               **mauve_kwargs) -> MauveReport:
    """Featurize the reference and each group with `featurizer` and compute MAUVE (module docstring);
    progress: report the featurizer's batches (`edlm.util.progress`)."""
    require(prompt_len >= 0 and cont_len >= 1, f"prompt_len={prompt_len} must be >= 0 and cont_len={cont_len} >= 1.")
    featurizer_tokenizer = featurizer_tokenizer or getattr(featurizer, "tokenizer", None)
    pool = pool or default_pool(featurizer)

    def features(samples: list[Sample]) -> np.ndarray:
        seqs = [span_tokens(s, prompt_len=prompt_len, cont_len=cont_len, span=span, sample_tokenizer=sample_tokenizer,
                            target_tokenizer=featurizer_tokenizer) for s in samples]
        return featurize(featurizer, [s for s in seqs if s], pool=pool, batch_size=batch_size, progress=progress)

    settings = dict(prompt_len=prompt_len, cont_len=cont_len, span=span, pool=pool,
                    featurizer=getattr(featurizer, "name", type(featurizer).__name__))
    return mauve_from_features(features(reference), {k: features(v) for k, v in groups.items()},
                               settings=settings, **mauve_kwargs)
