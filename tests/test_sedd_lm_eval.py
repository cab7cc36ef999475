"""The lm-eval adapter on SEDD score models: the continuation bound with exact scores is the exact conditional
log-likelihood within Monte Carlo error and its greedy check is the exact one (LAMBADA's accuracy); unnormalised
scores lose exactly n (c - 1 - log c) per continuation of n tokens; a LAMBADA-style task through
`lm_eval.simple_evaluate` on a saved tiny SEDD model."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("lm_eval", reason="the lm-eval adapter needs the eval extra: pip install 'edlm[eval]'")

import lm_eval  # noqa: E402
from test_eval_lm_eval import PAIRS, Abc, dist, exact, exact_greedy, requests  # noqa: E402, F401
from test_sedd_eval import models, one_thread  # noqa: E402, F401

from edlm.errors import EdlmError  # noqa: E402
from edlm.metrics.lm_eval_adapter import EdlmLM  # noqa: E402
from edlm.toy import ExactScoreModel  # noqa: E402


class ScaledScores:
    """An absorbing score model whose scores are c times the exact ones: unnormalised (sum M = c), time-free."""

    graph = "absorb"
    time_conditioned = False

    def __init__(self, exact, c: float) -> None:
        self.exact, self.log_c, self.vocab_size = exact, math.log(c), exact.vocab_size

    def __call__(self, xt, sigma):
        return self.exact(xt, sigma) + self.log_c


def test_sedd_continuation_bound_with_exact_scores_is_the_exact_loglikelihood(dist):  # noqa: F811
    exact_scores = ExactScoreModel(dist, "absorb")
    lm = EdlmLM(model=exact_scores, tokenizer=Abc(), num_mc=64, seq_len=4, batch_size=130)
    assert not lm.causal
    out = lm.loglikelihood(requests(PAIRS), disable_tqdm=True)
    scores = lm.score_tokens([lm._encode_pair(*p) for p in PAIRS])
    for (context, continuation), score, (logprob, greedy) in zip(PAIRS, scores, out):
        want = exact(dist, context, continuation)
        assert abs(logprob - want) <= 4 * score.stderr + 1e-4, (context, continuation, logprob, want)
        assert greedy == exact_greedy(dist, context, continuation)  # LAMBADA's accuracy: one-step greedy decoding
    assert out[3][0] == pytest.approx(exact(dist, "cca", "b"), abs=1e-4)  # one token: no variance
    # Scores c times too large: every masked token adds M - 1 - log m = c - 1 - log c more (weights n / k, k
    # tokens), so each continuation of n tokens loses exactly n (c - 1 - log c) against the exact scores.
    c = 1.7
    scaled = EdlmLM(model=ScaledScores(exact_scores, c), tokenizer=Abc(), num_mc=64, seq_len=4, batch_size=130)
    for (context, continuation), (logprob, _), (got, greedy) in zip(
            PAIRS, out, scaled.loglikelihood(requests(PAIRS), disable_tqdm=True)):
        assert got == pytest.approx(logprob - len(continuation) * (c - 1 - math.log(c)), abs=1e-4)
        assert greedy == exact_greedy(dist, context, continuation)
    with pytest.raises(EdlmError, match="absorbing graph only"):
        EdlmLM(model=ExactScoreModel(dist, "uniform"), tokenizer=Abc(), seq_len=4).loglikelihood(
            requests(PAIRS[:1]), disable_tqdm=True)


def test_lambada_style_greedy_task_on_a_saved_sedd_model(models, tmp_path):
    from lm_eval.tasks import TaskManager

    docs = [{"text": "the cat sat on a mat"}, {"text": "one two three four"}, {"text": "zero nine eight"}]
    data = tmp_path / "toy_lambada.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tmp_path / "toy_lambada.yaml").write_text(  # lambada_openai's task (accuracy = greedy), on local data
        "task: toy_lambada\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n  cache_dir: {tmp_path / 'hf_cache'}\n"
        "test_split: test\n"
        "output_type: loglikelihood\n"
        "doc_to_text: \"{{text.split(' ')[:-1]|join(' ')}}\"\n"
        "doc_to_target: \"{{' '+text.split(' ')[-1]}}\"\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n")
    lm = EdlmLM(pretrained=models["sedd"], device="cpu", num_mc=4, batch_size=20)
    assert lm.max_len == 32 and lm.prefix == []  # the model's length; the char tokenizer has no EOS
    out = lm_eval.simple_evaluate(model=lm, tasks=["toy_lambada"], task_manager=TaskManager(
        include_path=str(tmp_path), include_defaults=False), verbosity="ERROR", bootstrap_iters=0)
    pairs = [lm._encode_pair(d["text"].rsplit(" ", 1)[0], " " + d["text"].rsplit(" ", 1)[1]) for d in docs]
    scores = lm.score_tokens(pairs)
    got = out["results"]["toy_lambada"]
    assert got["acc,none"] == pytest.approx(sum(s.greedy for s in scores) / len(docs))
    assert all(math.isfinite(s.logprob) and s.logprob < 0 for s in scores)
