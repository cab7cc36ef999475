"""Generative metrics against hand-computed values: perplexities, the EOS rule, retokenisation,
unigram entropy, unique unigrams and the repetition rate; and the `edlm eval gen` command."""

from __future__ import annotations

import json
import math

import pytest
import torch

from edlm.cli import main
from edlm.errors import EdlmError
from edlm.metrics.generative import _windows, bits_per_char, bits_per_token, generative_metrics, repetition_rate, \
    sequence_nll, unigram_entropy, unique_fraction
from edlm.metrics.samples import Sample, cut_at_eos, cut_text_at_eos, prepare, read_samples
from test_eval_tinyhf import build_tiny_hf

P = [0.4, 0.3, 0.2, 0.05, 0.05]  # unigram oracle over ids 0..3 and EOS = 4


class Letters:
    """Tokenizer over `alphabet` (last symbol is EOS)."""

    def __init__(self, alphabet: str, name: str) -> None:
        self.alphabet, self.name = alphabet, name
        self.vocab_size, self.eos_id = len(alphabet), len(alphabet) - 1

    def encode(self, text):
        return [self.alphabet.index(c) for c in text]

    def decode(self, ids):
        return "".join(self.alphabet[i] for i in ids)


class UnigramLM:
    """token_logprobs = log P[x_i], whatever the context; reads at most `max_length` tokens."""

    vocab_size, eos_id, name = 5, 4, "unigram"

    def __init__(self, max_length=None, tokenizer=None):
        self.max_length, self.tokenizer, self.widths = max_length, tokenizer, []

    def token_logprobs(self, x):
        assert self.max_length is None or x.shape[1] <= self.max_length
        self.widths.append(x.shape[1])
        return torch.tensor(P).log()[x]


def nll(ids):
    return -sum(math.log(P[i]) for i in ids)


def test_eos_rule_on_ids_and_text():
    # A leading EOS is dropped, the sample ends at the next EOS, what follows is ignored.
    assert cut_at_eos([4, 0, 1, 4, 3, 3], 4) == ([0, 1], True)
    assert cut_at_eos([0, 1, 2], 4) == ([0, 1, 2], False)
    assert cut_at_eos([4, 4, 1], 4) == ([], True)
    assert cut_at_eos([0, 4, 1], None) == ([0, 4, 1], False)
    assert cut_text_at_eos("|ab|cd", "|") == ("ab", True)
    assert cut_text_at_eos("abc", "|") == ("abc", False)


def test_hand_computed_metrics_and_eos_rule():
    samples = [Sample(ids=[4, 0, 1, 0, 2, 4, 3, 3]), Sample(ids=[1, 1, 1])]
    tok = Letters("abcd|", "letters")
    report = generative_metrics(samples, UnigramLM(), oracle_tokenizer=tok)
    nll_a, nll_b = nll([0, 1, 0, 2, 4]), nll([1, 1, 1])  # EOS of sample A scored, [3, 3] after it ignored
    assert report.num_scored_tokens == 8 and report.num_ended_by_eos == 1 and not report.retokenized
    assert report.ppl == pytest.approx(math.exp((nll_a + nll_b) / 8))
    assert report.ppl_mean_of_samples == pytest.approx((math.exp(nll_a / 5) + math.exp(nll_b / 3)) / 2)
    # Diversity on the content [0, 1, 0, 2] and [1, 1, 1]: EOS excluded.
    assert report.entropy_nats == pytest.approx((1.5 * math.log(2) + 0.0) / 2)
    assert report.entropy_bits == pytest.approx(0.75)
    assert report.unique_fraction == pytest.approx((3 / 4 + 1 / 3) / 2)
    assert report.repetition_rate == pytest.approx((1 / 4 + 2 / 3) / 2)
    no_eos = generative_metrics(samples, UnigramLM(), oracle_tokenizer=tok, count_eos=False)
    assert no_eos.num_scored_tokens == 7
    assert no_eos.ppl == pytest.approx(math.exp((nll([0, 1, 0, 2]) + nll_b) / 7))


def test_single_metrics_by_hand():
    assert unigram_entropy([0, 0, 1, 2]) == pytest.approx(1.5 * math.log(2))
    assert unigram_entropy([5, 5, 5]) == 0.0
    assert unique_fraction([0, 0, 1, 2]) == 0.75
    # x = 0 1 2 0 1 0: with window 2 only the last 0 (previous 0 two tokens back) repeats.
    assert repetition_rate([0, 1, 2, 0, 1, 0], window=2) == pytest.approx(1 / 6)
    assert repetition_rate([0, 1, 2, 0, 1, 0], window=3) == pytest.approx(3 / 6)
    assert repetition_rate([7] + [1, 2] * 60 + [7], window=100) == pytest.approx(118 / 122)  # first 7 is 121 back
    with pytest.raises(EdlmError):
        repetition_rate([1], window=0)


def test_retokenisation_through_text():
    samples_tok = Letters("abcd|", "letters")
    oracle_tok = Letters("dcba|", "reversed")  # same size, different ids: a -> 3, c -> 1
    with_ids = Sample(ids=[4, 0, 1, 0, 2, 4, 3])  # content "abac"
    text_only = Sample(text="|abac|dd")
    for sample in (with_ids, text_only):
        prepared = prepare(sample, samples_tok, oracle_tok)
        assert prepared.target_tokens == [3, 2, 3, 1] and prepared.ended
    report = generative_metrics([with_ids], UnigramLM(), oracle_tokenizer=oracle_tok, sample_tokenizer=samples_tok)
    assert report.retokenized and report.diversity_tokens == "samples"
    assert report.ppl == pytest.approx(math.exp(nll([3, 2, 3, 1, 4]) / 5))
    text_report = generative_metrics([text_only], UnigramLM(), oracle_tokenizer=oracle_tok,
                                     sample_tokenizer=samples_tok)
    assert text_report.diversity_tokens == "oracle" and text_report.ppl == pytest.approx(report.ppl)


def test_bits_per_token_and_per_char_by_hand():
    # Under the unigram oracle, bits = -sum log2 P[x_i], divided by the tokens or by the characters of the text.
    seqs = [[0, 1, 0, 2], [3]]
    abac = -(math.log2(0.4) + math.log2(0.3) + math.log2(0.4) + math.log2(0.2))  # 7.0931... bits
    assert bits_per_token(UnigramLM(), seqs) == pytest.approx([abac / 4, -math.log2(0.05)])
    assert bits_per_token(UnigramLM(), seqs)[1] == pytest.approx(4.321928094887363)
    per_char = bits_per_char(UnigramLM(), seqs + [[]], ["ab ab ab", "xy", ""])  # 8 and 2 characters
    assert per_char[:2] == pytest.approx([abac / 8, -math.log2(0.05) / 2]) and math.isnan(per_char[2])


def test_long_samples_are_scored_in_windows():
    assert _windows(10, 4) == [(0, 0, 4), (2, 4, 6), (4, 6, 8), (6, 8, 10)]
    assert _windows(3, 4) == [(0, 0, 3)]
    lm = UnigramLM(max_length=4)
    seqs = [[0, 1, 2, 3, 0, 1, 2, 3, 0, 1], [2], []]
    assert sequence_nll(lm, seqs, batch_size=2) == pytest.approx([nll(seqs[0]), nll([2]), 0.0])
    assert max(lm.widths) == 4


def test_bad_samples(tmp_path):
    with pytest.raises(EdlmError, match="outside the oracle's vocabulary"):
        generative_metrics([Sample(ids=[7])], UnigramLM())
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ids": [1]}\n{"oops": 1}\n')
    with pytest.raises(EdlmError, match="bad.jsonl:2 has neither"):
        read_samples(bad)
    bad.write_text("{not json\n")
    with pytest.raises(EdlmError, match="not valid JSON"):
        read_samples(bad)
    with pytest.raises(EdlmError, match="does not exist"):
        read_samples(tmp_path / "missing.jsonl")


def test_hf_oracle_end_to_end_through_the_cli(tmp_path, capsys):
    hf_dir = tmp_path / "oracle"
    tok, model = build_tiny_hf(hf_dir)
    eot = tok.eos_token_id
    texts = ["the cat sat on the mat", "a quick brown fox<|endoftext|>jumps over"]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    assert main(["eval", "gen", str(path), "--oracle", f"hf:{hf_dir}", "--out", str(tmp_path / "gen")]) == 0
    results = json.loads((tmp_path / "gen.json").read_text())["results"]
    assert "gen_ppl" in (tmp_path / "gen.md").read_text()
    # By hand: the oracle scores each text's tokens (the second cut before its EOS, with the EOS scored),
    # position 0 conditioned on BOS = <|endoftext|>.
    total, count = 0.0, 0
    for ids in (tok.encode("the cat sat on the mat"), tok.encode("a quick brown fox") + [eot]):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([[eot] + ids[:-1]])).logits[0]
        total -= float(torch.log_softmax(logits.double(), -1).gather(-1, torch.tensor(ids)[:, None]).sum())
        count += len(ids)
    assert results["num_scored_tokens"] == count and results["num_ended_by_eos"] == 1
    assert results["ppl"] == pytest.approx(math.exp(total / count), rel=1e-4)
    # Bad input exits with status 2 and one sentence.
    assert main(["eval", "gen", str(tmp_path / "missing.jsonl"), "--oracle", f"hf:{hf_dir}",
                 "--out", str(tmp_path / "x")]) == 2
    assert main(["eval", "gen", str(path), "--oracle", f"hf:{tmp_path / 'nope'}", "--out", str(tmp_path / "x")]) == 2
    assert "could not load" in capsys.readouterr().err
