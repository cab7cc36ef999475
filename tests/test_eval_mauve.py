"""MAUVE end to end on a tiny local featurizer: near 1 for two samples of the same text distribution,
clearly lower for a word-order scrambled one; spans, pooling and the `edlm eval mauve` command."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from conftest import SHARED, require_corpus

pytest.importorskip("mauve", reason="MAUVE needs the eval extra: pip install 'edlm[eval]'")

from edlm.cli import main  # noqa: E402
from edlm.errors import EdlmError  # noqa: E402
from edlm.metrics.mauve import featurize, mauve_eval, mauve_from_features, reference_windows, span_tokens
from edlm.metrics.samples import Sample
from edlm.models import ModelConfig, build_model
from edlm.models.hf import HFCausalLM
from test_eval_tinyhf import build_tiny_hf

FAST = dict(num_buckets=10, kmeans_num_redo=1, kmeans_max_iter=100)
WIKITEXT = SHARED / "wikitext-2" / "wiki.test.raw"


@pytest.fixture(autouse=True)
def no_grad():
    """Evaluation runs without gradients (the adapters leave that to the caller)."""
    with torch.no_grad():
        yield


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """WikiText-2 sentences (each ends with ' .'), a featurizer saved locally, and its path."""
    require_corpus(WIKITEXT, "the raw WikiText-2 test split")
    raw = WIKITEXT.read_text(encoding="utf-8")
    sentences = [s.strip() + " ." for s in raw.split(" . ") if 8 <= len(s.split()) <= 30 and "=" not in s][:700]
    path = tmp_path_factory.mktemp("featurizer")
    build_tiny_hf(path, texts=sentences, vocab_size=400, n_positions=128)
    return sentences, path


def scramble(sentence: str, rng: random.Random) -> str:
    words = sentence.split()
    rng.shuffle(words)
    return " ".join(words)


def test_same_distribution_near_one_and_scrambled_clearly_lower(corpus):
    sentences, path = corpus
    lm = HFCausalLM.from_pretrained(str(path))
    rng = random.Random(0)
    as_samples = lambda texts: [Sample(text=t) for t in texts]  # noqa: E731
    reference = as_samples(sentences[:300])
    groups = {"same": as_samples(sentences[300:500]),
              "scrambled": as_samples([scramble(s, rng) for s in sentences[500:700]])}
    report = mauve_eval(reference, groups, lm, prompt_len=0, cont_len=120, batch_size=64, **FAST)
    assert report.settings["pool"] == "last"
    assert report.scores["same"] > 0.9  # measured 0.97
    assert report.scores["scrambled"] < 0.5  # measured 0.03: sentence-final '.' lands mid-sentence
    values = list(report.scores.values())
    assert report.mean == pytest.approx(np.mean(values)) and report.std == pytest.approx(np.std(values, ddof=1))


def test_featurize_pools_and_batching(corpus):
    _, path = corpus
    lm = HFCausalLM.from_pretrained(str(path))
    seqs = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]
    last, mean = featurize(lm, seqs, pool="last", batch_size=2), featurize(lm, seqs, pool="mean", batch_size=3)
    for i, seq in enumerate(seqs):  # right-padded batches give the unpadded states
        h = lm.hidden_states(torch.tensor([seq]))[0]
        np.testing.assert_allclose(last[i], h[-1].numpy(), atol=1e-5)
        np.testing.assert_allclose(mean[i], h.mean(0).numpy(), atol=1e-5)
    denoiser = build_model(ModelConfig(vocab_size=20, n_layers=1, d_model=16, n_heads=2, max_seq_len=8))
    features = featurize(denoiser, seqs, batch_size=8)  # bidirectional: mean pooling, equal-length batches
    alone = featurize(denoiser, [seqs[1]], batch_size=1)
    assert features.shape == (3, 16) and np.allclose(features[1], alone[0], atol=1e-5)
    ar = build_model(ModelConfig(vocab_size=20, n_layers=1, d_model=16, n_heads=2, max_seq_len=8, causal=True))
    assert featurize(ar, seqs).shape == (3, 16)
    with pytest.raises(EdlmError, match="pool"):
        featurize(lm, seqs, pool="max")


def test_prompt_and_continuation_spans():
    sample = Sample(ids=[1, 2, 3, 4, 9, 5])  # prompt [1, 2], continuation [3, 4] then EOS 9
    tok = type("Tok", (), {"eos_id": 9, "name": "t"})()
    assert span_tokens(sample, prompt_len=2, cont_len=4, span="full", sample_tokenizer=tok) == [1, 2, 3, 4]
    assert span_tokens(sample, prompt_len=2, cont_len=1, span="continuation", sample_tokenizer=tok) == [3]
    assert reference_windows(list(range(10)), 3, 3) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    with pytest.raises(EdlmError, match="enough for 3 windows"):
        reference_windows(list(range(10)), 3, 4)
    with pytest.raises(EdlmError, match="span"):
        span_tokens(Sample(text="a b"), prompt_len=1, cont_len=1, span="continuation")


def test_precomputed_features_and_the_command(corpus, tmp_path):
    sentences, path = corpus
    rng = np.random.default_rng(0)
    same = mauve_from_features(rng.normal(size=(200, 8)), {"q": rng.normal(size=(200, 8))}, **FAST)
    shifted = mauve_from_features(rng.normal(size=(200, 8)), {"q": rng.normal(size=(200, 8)) + 2.0}, **FAST)
    assert same.scores["q"] > 0.9 and shifted.scores["q"] < 0.2 and np.isnan(same.std)
    # The command: a text reference cut into windows, two seeds in one file, the HF featurizer.
    reference = tmp_path / "ref.txt"
    reference.write_text(" ".join(sentences[:350]))
    lm = HFCausalLM.from_pretrained(str(path))
    ids = lm.tokenizer.encode(" ".join(sentences[350:700]))
    windows = reference_windows(ids, 12, 200)
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps({"ids": w, "seed": i % 2}) + "\n" for i, w in enumerate(windows)))
    out = tmp_path / "mauve"
    assert main(["eval", "mauve", "--reference", str(reference), "--samples", str(samples), "--featurizer",
                 f"hf:{path}", "--tokenizer", f"hf:{path}", "--prompt-len", "6", "--cont-len", "6", "--num-buckets", "5", "--kmeans-redo", "1",
                 "--kmeans-iter", "50", "--out", str(out)]) == 0
    results = json.loads((tmp_path / "mauve.json").read_text())["results"]
    assert set(results["scores"]) == {f"{samples}:seed=0", f"{samples}:seed=1"}
    assert results["num_reference"] == 100 and all(0 < v <= 1 for v in results["scores"].values())
    assert "mean over 2 groups" in (tmp_path / "mauve.md").read_text()
    np.save(tmp_path / "p.npy", rng.normal(size=(50, 4)))
    np.save(tmp_path / "q.npy", rng.normal(size=(50, 3)))
    assert main(["eval", "mauve", "--reference-features", str(tmp_path / "p.npy"), "--sample-features",
                 str(tmp_path / "q.npy"), "--out", str(out)]) == 2  # shape mismatch: exit 2
