"""The lm-eval adapter: exact conditional log-likelihoods on an enumerable toy within Monte Carlo
error, the greedy check, rolling log-likelihoods, and `lm_eval.simple_evaluate` on a local task."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("lm_eval", reason="the lm-eval adapter needs the eval extra: pip install 'edlm[eval]'")

from lm_eval.api.instance import Instance  # noqa: E402

from edlm.errors import EdlmError  # noqa: E402
from edlm.metrics.lm_eval_adapter import EdlmLM, register  # noqa: E402
from edlm.toy import ExactCausalLM, ExactDenoiser, ToyDistribution  # noqa: E402
from test_eval_tinyhf import build_tiny_hf  # noqa: E402

ALPHABET = "abc"


class Abc:
    """Characters a, b, c as ids 0, 1, 2 (no EOS)."""

    name, vocab_size, eos_id = "abc", 3, None

    def encode(self, text):
        return [ALPHABET.index(c) for c in text]

    def decode(self, ids):
        return "".join(ALPHABET[i] for i in ids)


class ToyAR(ExactCausalLM):
    """ExactCausalLM with next-token logits (for the greedy check): model(x)[b, j, v] = log p(v | x_<j)."""

    def __call__(self, x):
        out = torch.empty(*x.shape, self.vocab_size)
        for v in range(self.vocab_size):
            for j in range(x.shape[1]):
                y = x.clone()
                y[:, j] = v
                out[:, j, v] = self.token_logprobs(y)[:, j]
        return out


@pytest.fixture(scope="module")
def dist():
    return ToyDistribution.random(3, 4, torch.Generator().manual_seed(0), temperature=1.5)


def exact(dist, context: str, continuation: str) -> float:
    """log p(continuation | context) with both at the start of a length-4 sequence, by enumeration."""
    seqs, probs = dist.sequences, dist.probs
    ctx, whole = Abc().encode(context), Abc().encode(context + continuation)
    joint = probs[(seqs[:, :len(whole)] == torch.tensor(whole)).all(-1)].sum()
    marginal = probs[(seqs[:, :len(ctx)] == torch.tensor(ctx, dtype=torch.long)).all(-1)].sum()
    return math.log(joint) - math.log(marginal)


def exact_greedy(dist, context: str, continuation: str) -> bool:
    """Per-position argmax of p(x_i | context) with the whole continuation unknown."""
    seqs, probs = dist.sequences, dist.probs
    ctx = Abc().encode(context)
    keep = (seqs[:, :len(ctx)] == torch.tensor(ctx, dtype=torch.long)).all(-1)
    for i, c in enumerate(Abc().encode(continuation), start=len(ctx)):
        marginal = torch.stack([probs[keep & (seqs[:, i] == v)].sum() for v in range(3)])
        if int(marginal.argmax()) != c:
            return False
    return True


def requests(pairs):
    return [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]


PAIRS = [("ab", "ca"), ("a", "bc"), ("", "abca"), ("cca", "b"), ("", "c"), ("bb", "aa"), ("c", "aac")]


def test_diffusion_loglikelihood_is_exact_within_mc_error(dist):
    lm = EdlmLM(model=ExactDenoiser(dist), tokenizer=Abc(), num_mc=64, seq_len=4, batch_size=130)
    scores = lm.score_tokens([lm._encode_pair(*p) for p in PAIRS])
    out = lm.loglikelihood(requests(PAIRS), disable_tqdm=True)
    for (context, continuation), score, (logprob, greedy) in zip(PAIRS, scores, out):
        want = exact(dist, context, continuation)
        assert abs(score.logprob - want) <= 4 * score.stderr + 1e-6, (context, continuation, score, want)
        assert logprob == score.logprob and greedy == exact_greedy(dist, context, continuation)
    # A single continuation token is scored exactly: with k = n = 1 the estimator has no variance.
    assert out[3][0] == pytest.approx(exact(dist, "cca", "b"), abs=1e-5)
    # More samples shrink the error.
    many = EdlmLM(model=ExactDenoiser(dist), tokenizer=Abc(), num_mc=512, seq_len=4, batch_size=1026)
    for (context, continuation), (logprob, _) in zip(PAIRS, many.loglikelihood(requests(PAIRS), disable_tqdm=True)):
        assert logprob == pytest.approx(exact(dist, context, continuation), abs=0.25)


def test_ar_loglikelihood_and_greedy_are_exact(dist):
    lm = EdlmLM(model=ToyAR(dist), tokenizer=Abc())
    full = [p for p in PAIRS if len(p[0] + p[1]) == 4]
    for (context, continuation), (logprob, greedy) in zip(full, lm.loglikelihood(requests(full), disable_tqdm=True)):
        assert logprob == pytest.approx(exact(dist, context, continuation), abs=1e-5)
        seq = torch.tensor([Abc().encode(context + continuation)])
        argmax = ToyAR(dist)(seq)[0].argmax(-1)
        assert greedy == bool((argmax[len(context):] == seq[0, len(context):]).all())


def test_rolling_loglikelihood(dist, tmp_path):
    lm = EdlmLM(model=ExactDenoiser(dist), tokenizer=Abc(), num_mc=256, seq_len=4, batch_size=1028)
    # "abcabca": windows "abca" (no context), then "bca" after "a" (the context left in 4 positions).
    (one, two) = lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (t,), 0) for t in ("abca", "abcabca")],
                                         disable_tqdm=True)
    assert one == pytest.approx(exact(dist, "", "abca"), abs=0.3)
    assert two == pytest.approx(exact(dist, "", "abca") + exact(dist, "a", "bca"), abs=0.5)
    # An HF causal LM: the rolling log-likelihood of a short text is the sum of its token log-probs.
    tok, _ = build_tiny_hf(tmp_path)
    hf = EdlmLM(pretrained=f"hf:{tmp_path}", device="cpu")
    text = "the cat sat on the mat"
    [got] = hf.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (text,), 0)], disable_tqdm=True)
    with torch.no_grad():
        want = float(hf.model.token_logprobs(torch.tensor([tok.encode(text)])).sum())
    assert got == pytest.approx(want, abs=1e-4) and hf.prefix == []


def test_bad_arguments(dist):
    with pytest.raises(EdlmError, match="unknown model_args"):
        EdlmLM(model=ExactDenoiser(dist), tokenizer=Abc(), num_samples=3)
    with pytest.raises(EdlmError, match="exactly one"):
        EdlmLM(tokenizer=Abc())
    with pytest.raises(EdlmError, match="num_mc"):
        EdlmLM(model=ExactDenoiser(dist), tokenizer=Abc(), num_mc=0)
    lm = EdlmLM(model=ExactDenoiser(dist), tokenizer=Abc(), seq_len=4)
    with pytest.raises(EdlmError, match="at most 4"):
        lm.loglikelihood(requests([("a", "abcab")]), disable_tqdm=True)
    with pytest.raises(EdlmError, match="does not generate"):
        lm.generate_until([])


def test_registered_as_edlm():
    from lm_eval.api.registry import get_model, model_registry

    register()
    register()  # idempotent
    assert get_model("edlm") is EdlmLM and "hf" in model_registry  # lm-eval's own models stay registered


def write_task(root: Path, docs: list[dict]) -> None:
    """A local multiple-choice task `toy_mc` (no hub access): jsonl data and a YAML config."""
    data = root / "toy_mc.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "toy_mc.yaml").write_text(
        "task: toy_mc\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n  cache_dir: {root / 'hf_cache'}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        "doc_to_text: context\n"
        "doc_to_choice: choices\n"
        "doc_to_target: label\n"
        "target_delimiter: ''\n"
        "metric_list:\n  - metric: acc\n")


def test_simple_evaluate_runs_a_local_multiple_choice_task(dist, tmp_path):
    import lm_eval
    from lm_eval.tasks import TaskManager

    docs = []
    for context in ("ab", "ca", "bc", "aa", "cb", "ba"):
        choices = ["aa", "bc", "cb", "ab"]
        values = [exact(dist, context, c) for c in choices]
        best = max(range(4), key=values.__getitem__)
        if sorted(values)[-1] - sorted(values)[-2] > 0.5:  # clear winners only: MC error cannot flip them
            docs.append({"context": context, "choices": choices, "label": best})
    assert len(docs) >= 3
    write_task(tmp_path, docs)
    lm = EdlmLM(model=ExactDenoiser(dist), tokenizer=Abc(), num_mc=64, seq_len=4, batch_size=260)
    out = lm_eval.simple_evaluate(model=lm, tasks=["toy_mc"], task_manager=TaskManager(
        include_path=str(tmp_path), include_defaults=False), verbosity="ERROR")
    assert out["results"]["toy_mc"]["acc,none"] == 1.0
