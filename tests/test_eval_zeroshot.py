"""Detokenizers on hand-written examples, and zero-shot perplexity end to end on tiny models and a
slice of PTB (diffusion: an upper bound; AR: exact)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import SHARED, needs_corpus

from edlm.cli import main
from edlm.config import DataConfig
from edlm.data import CharTokenizer, build_tokenizer
from edlm.errors import EdlmError
from edlm.metrics.detokenizers import lambada_detokenizer, ptb_detokenizer, text8_normalize, wikitext_detokenizer
from edlm.likelihood.nelbo import split_likelihood
from edlm.metrics.zeroshot import corpus_documents, documents_to_rows, wikitext_articles, zeroshot_perplexity
from edlm.models import ModelConfig, build_model
from edlm.models.hf import HFCausalLM
from test_eval_tinyhf import build_tiny_hf

PTB_TEST = SHARED / "ptb" / "ptb.test.txt"
needs_ptb = needs_corpus(PTB_TEST, "the PTB test split")


def test_ptb_detokenizer():
    assert ptb_detokenizer("no it was n't black monday") == "no it wasn't black monday"
    assert ptb_detokenizer("the company 's N stock") == "the company's 1 stock"
    assert ptb_detokenizer("rose $ N billion or N N") == "rose $1 billion or 1 1"
    assert ptb_detokenizer("investors ' money # N 1\\/2 <unk>") == "investors' money #1 1/2 ?"
    assert ptb_detokenizer("Nancy said N.") == "Nancy said N."  # only the whole word N is a number
    assert ptb_detokenizer("they 're here") == "they 're here"  # other clitics are left alone


def test_wikitext_detokenizer():
    raw = (" = = Life cycle = = \n Robert Boulter is an English film , television and theatre actor . He had a "
           "guest @-@ starring role . It weighs 0 @.@ 7 – 2 @.@ 2 kg ( 1 @,@ 500 lb ) . The larger one is "
           "the \" crusher \" , and Teddy 's Story ; the players ' union ! \n")
    assert wikitext_detokenizer(raw) == (
        " == Life cycle ==\nRobert Boulter is an English film, television and theatre actor. He had a "
        "guest-starring role. It weighs 0.7 – 2.2 kg (1,500 lb). The larger one is "
        "the \"crusher\", and Teddy's Story; the players' union!\n")
    assert wikitext_detokenizer("a = b and [ x ] { y } N items") == "a = b and [x] {y} 1 items"
    assert wikitext_detokenizer("N.") == "N."  # only a spaced N is the number placeholder


def test_lambada_detokenizer_and_text8_normalize():
    assert lambada_detokenizer("  \u201cHello,\u201d she said. \u2018Hi\u2019 \n") == "\"Hello,\" she said. 'Hi'"
    assert text8_normalize("Hello, World! 123 it's") == "hello world it s"


def test_wikitext_articles():
    text = " = A = \n one \n \n = = Sub = = \n two \n = B = \n three \n"
    assert wikitext_articles(text) == [" = A = \n one \n = = Sub = = \n two ", " = B = \n three "]


@pytest.fixture(scope="module")
def ptb_slice(tmp_path_factory):
    root = tmp_path_factory.mktemp("ptb")
    lines = PTB_TEST.read_text().splitlines()[:120] if PTB_TEST.is_file() else []
    (root / "slice.txt").write_text("\n".join(lines) + "\n")
    return root / "slice.txt", lines


@needs_ptb
def test_zeroshot_diffusion_on_a_ptb_slice(ptb_slice, tmp_path):
    path, lines = ptb_slice
    build_tiny_hf(tmp_path, texts=[ptb_detokenizer(l) for l in lines], vocab_size=300)
    tokenizer = build_tokenizer(DataConfig(tokenizer=f"hf:{tmp_path}"))
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=tokenizer.vocab_size, n_layers=1, d_model=32, n_heads=2,
                                    max_seq_len=32)).eval()
    result = zeroshot_perplexity(model, tokenizer, "ptb", path=str(path), seq_len=32, num_t=4, batch_size=8,
                                 max_sequences=12, seed=3)
    assert result.kind == "upper_bound" and result.ppl_label == "PPL (upper bound)"
    assert result.num_documents == len(lines) and result.num_sequences == 12 and result.num_tokens == 12 * 32
    # The same number by hand: detokenize each line, wrap with EOS as training data, split_likelihood.
    docs = [ptb_detokenizer(l) for l in lines if l.strip()]
    rows = documents_to_rows(docs, tokenizer, 32)[:12]
    assert (rows[:, 0] == tokenizer.eos_id).all() and (rows[:, -1] == tokenizer.eos_id).all()
    want = split_likelihood(model, rows, num_t=4, batch_size=8, generator=torch.Generator().manual_seed(3))
    assert result.nats_per_token == pytest.approx(want.nats_per_token)
    assert result.ppl == pytest.approx(math.exp(want.nats_per_token))


@needs_ptb
def test_zeroshot_char_model_and_exact_ar_through_the_cli(ptb_slice, tmp_path, capsys):
    path, lines = ptb_slice
    # A character model reads text8-normalized text in plain rows.
    char_model = build_model(ModelConfig(vocab_size=27, n_layers=1, d_model=16, n_heads=2, max_seq_len=64))
    result = zeroshot_perplexity(char_model, CharTokenizer(), "ptb", path=str(path), seq_len=64, num_t=2,
                                 max_sequences=3)
    assert result.num_tokens == 3 * 64 and result.kind == "upper_bound"
    # An HF causal LM through the command: exact, labelled PPL.
    tok, _ = build_tiny_hf(tmp_path / "gpt2", texts=[ptb_detokenizer(l) for l in lines], vocab_size=300)
    out = tmp_path / "zs"
    assert main(["eval", "zeroshot", f"hf:{tmp_path / 'gpt2'}", "--corpus", "ptb", "--data", str(path),
                 "--seq-len", "32", "--max-sequences", "4", "--out", str(out)]) == 0
    results = json.loads((tmp_path / "zs.json").read_text())["results"]
    assert results["kind"] == "exact" and results["ppl_label"] == "PPL" and results["num_tokens"] == 4 * 32
    lm = HFCausalLM.from_pretrained(str(tmp_path / "gpt2"))
    rows = documents_to_rows([ptb_detokenizer(l) for l in lines], lm.tokenizer, 32)[:4]
    with torch.no_grad():
        want = -float(lm.token_logprobs(rows).double().mean())
    assert results["nats_per_token"] == pytest.approx(want, rel=1e-5)
    assert "| PPL |" in (tmp_path / "zs.md").read_text()
    # Bad input: exit status 2 with one sentence.
    assert main(["eval", "zeroshot", f"hf:{tmp_path / 'gpt2'}", "--corpus", "nope", "--out", str(out)]) == 2
    assert "neither one of" in capsys.readouterr().err


def test_local_and_hf_file_corpora(tmp_path):
    jsonl = tmp_path / "lambada.jsonl"
    jsonl.write_text(json.dumps({"text": "\u201cHi\u201d she said"}) + "\n" + json.dumps({"text": "two"}) + "\n")
    docs, detok = corpus_documents("lambada", path=str(jsonl))
    assert docs == ["\u201cHi\u201d she said", "two"] and detok == "lambada"
    docs, detok = corpus_documents("hf:json", split="train", path=str(jsonl))
    assert docs == ["\u201cHi\u201d she said", "two"] and detok == "none"
    (tmp_path / "bad.jsonl").write_text('{"x": 1}\n')
    with pytest.raises(EdlmError, match="not a JSON object with a 'text' field"):
        corpus_documents(str(tmp_path / "bad.jsonl"))
    with pytest.raises(EdlmError, match="fewer than one sequence"):
        documents_to_rows(["ab"], CharTokenizer(), 8)


def test_data_names_a_corpus_file_or_the_data_directory(tmp_path):
    (tmp_path / "ptb").mkdir()
    file = tmp_path / "ptb" / "ptb.valid.txt"
    file.write_text(" the cat sat \n a dog ran \n")
    (tmp_path / "wikitext-2").mkdir()
    (tmp_path / "wikitext-2" / "valid.txt").write_text(" = A = \n the text \n")
    by_dir = corpus_documents("ptb", "valid", path=str(tmp_path))
    assert by_dir == corpus_documents("ptb", "valid", path=str(file)) and len(by_dir[0]) == 2
    assert corpus_documents("wikitext2", "valid", path=str(tmp_path))[1] == "wikitext"
    with pytest.raises(EdlmError, match="ptb.test.txt does not exist"):
        corpus_documents("ptb", "test", path=str(tmp_path))
