"""The SEDD-vs-GPT-2 evaluation through the `edlm eval` commands, on a tiny SEDD score model with random weights
saved locally (and a tiny AR model as the oracle, featurizer and latency baseline): zero-shot perplexity in both
dataset-level orders (exact on a toy with known per-sequence NLLs), prompted samples and MAUVE over seeds
(prompt + continuation, and the full-length variant), generative perplexity and diversity across steps, and
latency against AR with a KV cache. The lm-eval adapter on SEDD models is in test_sedd_lm_eval.py."""

from __future__ import annotations

import json
import math

import pytest
import torch
from test_sedd_model import randomised
from test_train_support import WORDS

from edlm.cli import main
from edlm.config import load_config
from edlm.likelihood.nelbo import split_likelihood, summarize
from edlm.likelihood.result import NelboResult
from edlm.loading.pretrained import build_run_model, save_pretrained
from edlm.loading.specs import load_spec
from edlm.metrics.generative import repetition_rate, unigram_entropy, unique_fraction
from edlm.metrics.zeroshot import documents_to_rows, zeroshot_perplexity
from edlm.toy import ExactCausalLM, ToyDistribution
from edlm.util.device import cpu_threads

TINY = ["model.n_layers=1", "model.d_model=32", "model.n_heads=2", "model.cond_dim=32", "model.max_seq_len=32",
        "data.seq_len=32"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with cpu_threads(1):
        yield


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{"sedd": dir, "ar": dir, "human": text file}: a random absorbing SEDD model and a random AR model (char
    tokenizer, 32 positions) saved as exported directories, and 4,000 characters of text8-like words."""
    root = tmp_path_factory.mktemp("sedd_eval")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sedd_cfg = load_config("text8-tiny", TINY + ["train.objective=sedd", "train.graph=absorb"])
        save_pretrained(randomised(build_run_model(sedd_cfg), seed=1), root / "sedd", config=sedd_cfg)
        ar_cfg = load_config("text8-tiny", TINY + ["train.objective=ar", "model.causal=true", "model.adaln=false"])
        save_pretrained(build_run_model(ar_cfg), root / "ar", config=ar_cfg)
    generator = torch.Generator().manual_seed(0)
    text = " ".join(WORDS[i] for i in torch.randint(len(WORDS), (1200,), generator=generator).tolist())[:4000]
    (root / "human.txt").write_text(text)
    return {"sedd": str(root / "sedd"), "ar": str(root / "ar"), "human": root / "human.txt"}


def results(stem) -> dict:
    return json.loads(stem.with_suffix(".json").read_text())["results"]


# ---------------------------------------------------------------- zero-shot perplexity, both orders
class Abcs:
    """Characters a, b, c and space as ids 0..3 (no EOS)."""

    name, vocab_size, eos_id = "abcs", 4, None

    def encode(self, text):
        return ["abc ".index(c) for c in text]

    def decode(self, ids):
        return "".join("abc "[i] for i in ids)


def test_both_perplexity_orders_are_exact_on_a_toy_with_known_nlls(tmp_path):
    dist = ToyDistribution.random(4, 4, torch.Generator().manual_seed(0), temperature=1.5)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abc cab\nbca\naabb c cc\n")  # joined by spaces: rows "abc ", "cab ", "bca ", "aabb", " c c"
    result = zeroshot_perplexity(ExactCausalLM(dist), Abcs(), str(corpus), seq_len=4)
    rows = documents_to_rows(corpus.read_text().splitlines(), Abcs(), 4)
    nll = dist.nll(rows)  # the exact per-sequence NLLs
    assert result.kind == "exact" and result.num_sequences == 5 and result.num_tokens == 20
    assert result.nats_per_token == pytest.approx(float(nll.sum()) / 20, rel=1e-6)
    assert result.ppl == pytest.approx(math.exp(float(nll.sum()) / 20), rel=1e-6)  # mean NLL, then exp
    assert result.ppl_mean_of_sequences == pytest.approx(float((nll / 4).exp().mean()), rel=1e-6)  # exp, then mean
    assert result.ppl_mean_of_sequences > result.ppl  # Jensen: the SEDD order is never lower
    # the two orders from per-sequence results by hand: sequences of 2 tokens with 1 and 3 nats
    split = summarize([NelboResult(torch.tensor([1.0], dtype=torch.float64), torch.zeros(1), "upper_bound", 2, 4),
                       NelboResult(torch.tensor([3.0], dtype=torch.float64), torch.zeros(1), "upper_bound", 2, 4)])
    assert split.nats_per_token == 1.0 and split.ppl == pytest.approx(math.e)
    assert split.ppl_mean_of_sequences == pytest.approx((math.exp(0.5) + math.exp(1.5)) / 2)
    assert split.num_sequences == 2 and split.num_tokens == 4 and split.kind == "upper_bound"


def test_zeroshot_command_on_a_sedd_model(models, tmp_path):
    out = tmp_path / "zs"
    assert main(["eval", "zeroshot", models["sedd"], "--corpus", str(models["human"]), "--seq-len", "16",
                 "--num-t", "2", "--max-sequences", "4", "--device", "cpu", "--out", str(out)]) == 0
    got = results(out)
    assert got["kind"] == "upper_bound" and got["ppl_label"] == "PPL (upper bound)" and got["num_tokens"] == 64
    # the same numbers by hand: the score-entropy bound of the same rows with the same generator
    loaded = load_spec(models["sedd"], device="cpu")
    rows = documents_to_rows(models["human"].read_text().splitlines(), loaded.tokenizer, 16)[:4]
    want = split_likelihood(loaded.model, rows, num_t=2, batch_size=16, generator=torch.Generator().manual_seed(0))
    assert got["nats_per_token"] == pytest.approx(want.nats_per_token, rel=1e-9)
    assert got["ppl"] == pytest.approx(want.ppl, rel=1e-9)
    assert got["ppl_mean_of_sequences"] == pytest.approx(want.ppl_mean_of_sequences, rel=1e-9)
    assert got["ppl_mean_of_sequences"] >= got["ppl"]
    assert "ppl_mean_of_sequences" in out.with_suffix(".md").read_text()


# ---------------------------------------------------------------- prompted samples and MAUVE
def sample_argv(models, out, *extra):
    return ["sample", "--denoiser", models["sedd"], "--num-samples", "8", "--steps", "8", "--device", "cpu",
            "--out", str(out), *extra]


def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_prompted_samples_and_mauve_over_five_seeds(models, tmp_path):
    pytest.importorskip("mauve", reason="MAUVE needs the eval extra: pip install 'edlm[eval]'")
    prompts = ["--prompts", str(models["human"]), "--prompt-len", "8", "--cont-len", "8"]
    human = models["human"].read_text()
    for seed in range(5):  # prompts of 8 characters, continuations of 8: samples of 16
        assert main(sample_argv(models, tmp_path / f"s{seed}.jsonl", *prompts, "--seed", str(seed))) == 0
    lines = read_lines(tmp_path / "s0.jsonl")
    assert [line["text"][:8] for line in lines] == [human[16 * i:16 * i + 8] for i in range(8)]  # window i's prompt
    assert all(len(line["ids"]) == 16 and line["sampler"] == "sedd" and line["predictor"] == "analytic"
               and line["prompt_len"] == 8 and line["cont_len"] == 8 for line in lines)
    # the full-length variant: 32 characters from the same prompts (SEDD's euler predictor); MAUVE reads 16
    assert main(sample_argv(models, tmp_path / "full.jsonl", *prompts, "--seq-len", "32", "--predictor", "euler")) == 0
    full = read_lines(tmp_path / "full.jsonl")
    assert all(len(line["ids"]) == 32 and line["text"][:8] == human[16 * i:16 * i + 8] for i, line in enumerate(full))
    mauve = ["eval", "mauve", "--reference", str(models["human"]), "--featurizer", models["ar"], "--prompt-len", "8",
             "--cont-len", "8", "--num-buckets", "2", "--kmeans-redo", "1", "--kmeans-iter", "20", "--device", "cpu"]
    out = tmp_path / "mauve"
    assert main([*mauve, "--samples", *[str(tmp_path / f"s{seed}.jsonl") for seed in range(5)],
                 "--out", str(out)]) == 0
    report = results(out)
    assert len(report["scores"]) == 5 and report["num_reference"] == 8 and report["settings"]["cont_len"] == 8
    scores = list(report["scores"].values())
    assert report["mean"] == pytest.approx(sum(scores) / 5) and all(0 < s <= 1 for s in scores)
    assert report["std"] == pytest.approx(torch.tensor(scores, dtype=torch.float64).std().item())
    assert main([*mauve, "--samples", str(tmp_path / "full.jsonl"), "--out", str(tmp_path / "mauve_full")]) == 0
    assert 0 < results(tmp_path / "mauve_full")["mean"] <= 1


@pytest.mark.parametrize("extra, message", [
    (["--prompts", "H", "--prefix", "the"], "--prompts and --prefix both fix the first tokens"),
    (["--prompt-len", "8"], "--prompt-len needs --prompts FILE"),
    (["--prompts", "H", "--prompt-len", "8", "--cont-len", "8", "--seq-len", "12"], "--seq-len 12 is shorter than"),
    (["--prompts", "H", "--sampler", "glauber", "--energy", "ar:bundled:text8-small-ar"],
     "--prompts applies to --sampler mdlm only"),
    (["--prompts", "H", "--num-samples", "400", "--prompt-len", "8", "--cont-len", "8"],
     "enough for 250 windows of 16, not 400"),
])
def test_prompt_options_refuse_what_does_not_apply(models, tmp_path, capsys, extra, message):
    extra = [str(models["human"]) if word == "H" else word for word in extra]
    assert main(["sample", "--denoiser", models["sedd"], "--device", "cpu", "--out", str(tmp_path / "x.jsonl"),
                 *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


# ---------------------------------------------------------------- generative perplexity and diversity across steps
def test_generative_perplexity_and_diversity_across_steps(models, tmp_path):
    for steps in (2, 8):
        samples = tmp_path / f"T{steps}.jsonl"
        assert main(["sample", "--denoiser", models["sedd"], "--num-samples", "4", "--seq-len", "32", "--steps",
                     str(steps), "--device", "cpu", "--out", str(samples)]) == 0
        out = tmp_path / f"gen{steps}"
        assert main(["eval", "gen", str(samples), "--oracle", models["ar"], "--device", "cpu", "--out", str(out)]) == 0
        got, ids = results(out), [line["ids"] for line in read_lines(samples)]
        assert got["diversity_tokens"] == "samples" and got["num_scored_tokens"] == 4 * 32
        assert got["entropy_nats"] == pytest.approx(sum(map(unigram_entropy, ids)) / 4)
        assert got["unique_fraction"] == pytest.approx(sum(map(unique_fraction, ids)) / 4)
        assert got["repetition_rate"] == pytest.approx(sum(repetition_rate(x, 100) for x in ids) / 4)
        assert math.isfinite(got["ppl"]) and got["ppl"] == pytest.approx(math.exp(got["nll_per_token"]))


# ---------------------------------------------------------------- latency against AR with a KV cache
def test_latency_of_sedd_against_ar_across_steps(models, tmp_path, capsys):
    out = tmp_path / "lat"
    assert main(["eval", "latency", "--denoiser", models["sedd"], "--ar", models["ar"], "--steps", "2,4",
                 "--predictor", "euler", "--num-samples", "2", "--seq-len", "16", "--repeats", "1", "--warmup", "0",
                 "--device", "cpu", "--out", str(out)]) == 0
    rows = results(out)["measurements"]
    assert [(r["method"], r["label"]) for r in rows] == [("ar", "AR (KV cache)"), ("sedd", "SEDD-euler T=2"),
                                                         ("sedd", "SEDD-euler T=4")]
    assert rows[0]["passes_per_sample"]["ar_kv_step"] == 16
    assert all(1 <= r["passes_per_sample"]["denoiser"] <= r["steps"] + 1 and r["predictor"] == "euler"
               for r in rows[1:])
    capsys.readouterr()
    for extra, message in [
        (["--denoiser", models["sedd"], "--methods", "mdlm"], "--methods mdlm does not apply"),
        (["--random-init", "--seq-len", "8", "--predictor", "euler"], "--predictor applies to SEDD's sampler only"),
        (["--ar", models["ar"], "--predictor", "euler"], "--predictor applies to SEDD's sampler only"),
    ]:
        assert main(["eval", "latency", *extra, "--device", "cpu", "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
