"""edlm.data: text8 (local and download), tokenizers, token corpora, wrapping, errors, and `edlm data`."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import SHARED, needs_corpus

from edlm.cli import main as cli_main
from edlm.config import DataConfig
from edlm.data import (TEXT8_ALPHABET, CharTokenizer, build_tokenizer, check_vocab, find_text8, load_split,
                       load_text8, open_corpus, wrap_documents)
from edlm.data import text8 as text8_module
from edlm.data import tokenizers as tokenizers_module
from edlm.data.corpora import split_documents, text_corpus
from edlm.errors import EdlmError

needs_shared = needs_corpus(SHARED / "text8" / "text8_prefix.txt", "the text8 prefix")
GPT2_FILE = os.environ.get("EDLM_GPT2_TIKTOKEN") or str(tokenizers_module.gpt2_ranks_file() or "")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Every test gets its own cache and no ambient data or tokenizer locations."""
    monkeypatch.setenv("EDLM_CACHE", str(tmp_path / "cache"))
    for name in ("EDLM_DATA", "EDLM_GPT2_TIKTOKEN"):
        monkeypatch.delenv(name, raising=False)


def tiny_ranks(path: Path, extra_lines: list[bytes] = ()) -> Path:
    """A tiktoken ranks file: the 256 bytes (rank = byte value), then ' t' 256, 'he' 257, ' the' 258."""
    tokens = [bytes([b]) for b in range(256)] + [b" t", b"he", b" the"]
    lines = [base64.b64encode(t) + b" " + str(r).encode() for r, t in enumerate(tokens)] + list(extra_lines)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


# ---------------------------------------------------------------- characters and text8


def test_char_tokenizer_ids_and_round_trip():
    tok = CharTokenizer()
    assert (tok.vocab_size, tok.eos_id, TEXT8_ALPHABET[0], TEXT8_ALPHABET[26]) == (27, None, " ", "z")
    assert tok.encode(" az b") == [0, 1, 26, 0, 2]
    assert tok.decode(tok.encode("the quick brown fox")) == "the quick brown fox"
    assert tok.decode(torch.tensor([1, 27, 2])) == "a_b"  # the mask id renders as '_'
    with pytest.raises(EdlmError, match=r"'A' at offset 3"):
        tok.encode("ab A")
    with pytest.raises(EdlmError, match=r"'é' at offset 1"):
        tok.encode("aé")


@needs_shared
def test_text8_prefix_splits_known_chunks(monkeypatch):
    cfg = DataConfig(path=str(SHARED))
    tok = CharTokenizer()
    train = load_split(cfg, "train")
    assert train.shape == (10_000_000 // 256, 256) and train.dtype == torch.long
    assert tok.decode(train[0]).startswith(" anarchism originated as a term of abuse first used against ")
    assert tok.decode(train[1]).startswith("at used violent means to destroy the organization of society")
    valid, test = load_split(cfg, "valid"), load_split(cfg, "test")
    assert valid.shape == test.shape == (1_000_000 // 256, 256)
    assert tok.decode(valid[0]).startswith("inal one nine eight four mac os desktop with the radically n")
    assert tok.decode(test[0]).startswith("s troops capture baghdad saddam hussein s regime falls two d")
    # Chunks are consecutive: the last character of chunk 0 and the first of chunk 1 are neighbours in the file.
    raw = (SHARED / "text8" / "text8_prefix.txt").read_bytes()[:512]
    assert tok.decode(train[:2].reshape(-1)) == raw.decode()
    # $EDLM_DATA is used when data.path is empty, and a relative data.path is looked up under it.
    monkeypatch.setenv("EDLM_DATA", str(SHARED))
    assert torch.equal(load_split(DataConfig(), "valid"), valid)
    assert torch.equal(load_split(DataConfig(path="text8"), "valid"), valid)


@needs_shared
def test_text8_prefix_last_test_chunk():
    test = load_split(DataConfig(path=str(SHARED / "text8" / "text8_prefix.txt"), seq_len=1000), "test")
    raw = (SHARED / "text8" / "text8_prefix.txt").read_bytes()
    assert test.shape == (1000, 1000)
    assert CharTokenizer().decode(test[-1]) == raw[11_999_000:12_000_000].decode()


def test_text8_bad_character_and_small_split(tmp_path):
    prefix = tmp_path / "text8_prefix.txt"
    with open(prefix, "wb") as f:  # 12M characters: spaces, with one 'A' inside the valid range
        f.write(b" " * 12_000_000)
        f.seek(10_000_005)
        f.write(b"A")
    source = find_text8(str(tmp_path))
    assert not source.full and source.path == prefix
    assert load_text8(source, "test", 256).shape == (3906, 256)
    with pytest.raises(EdlmError, match=r"'A' at offset 10,000,005"):
        load_text8(source, "valid", 256)
    with pytest.raises(EdlmError, match=r"fewer than one chunk of data.seq_len=1,000,001"):
        load_text8(source, "test", 1_000_001)
    short = tmp_path / "short" / "text8_prefix.txt"
    short.parent.mkdir()
    short.write_bytes(b" abc" * 1000)
    with pytest.raises(EdlmError, match=r"has 4,000 characters, but its train split needs"):
        load_split(DataConfig(path=str(short.parent)), "train")


def test_text8_full_corpus_uses_standard_split(tmp_path):
    full = tmp_path / "text8"
    with open(full, "wb") as f:  # sparse 100M-byte file: NUL bytes except the valid split
        f.truncate(100_000_000)
        f.seek(90_000_000)
        f.write(b"hello world " * (5_000_000 // 12) + b"abcdefgh")
    valid = load_split(DataConfig(path=str(tmp_path), seq_len=12), "valid")
    assert valid.shape == (5_000_000 // 12, 12)
    assert CharTokenizer().decode(valid[0]) == "hello world "
    with pytest.raises(EdlmError, match=r"'\\x00' at offset 95,000,000"):
        load_split(DataConfig(path=str(full)), "test")
    truncated = tmp_path / "t" / "text8"
    truncated.parent.mkdir()
    truncated.write_bytes(b" abc")
    with pytest.raises(EdlmError, match="has 4 characters, but the full text8 has 100,000,000"):
        find_text8(str(truncated.parent))


def test_text8_missing_paths(tmp_path, monkeypatch):
    with pytest.raises(EdlmError, match="does not exist"):
        find_text8(str(tmp_path / "nope"))
    with pytest.raises(EdlmError, match="holds no text8 corpus"):
        find_text8(str(tmp_path))
    monkeypatch.setenv("EDLM_DATA", str(tmp_path / "nope"))
    with pytest.raises(EdlmError, match="EDLM_DATA=.* is not a directory"):
        find_text8("")


def tiny_zip(text: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("text8", text)
    return buffer.getvalue()


def test_text8_download_verifies_and_extracts(tmp_path, monkeypatch):
    payload = tiny_zip(b" anarchism originated as a term")
    calls = []

    def fake_fetch(url, dest):
        calls.append(url)
        Path(dest).write_bytes(payload)

    monkeypatch.setattr(text8_module, "fetch_url", fake_fetch)
    size, md5 = len(payload), hashlib.md5(payload).hexdigest()
    cache = tmp_path / "dl"
    with pytest.raises(EdlmError, match=rf"has md5 {md5}, not the expected 0+; try again later"):
        text8_module.download_text8(cache, size=size, md5="0" * 32)
    with pytest.raises(EdlmError, match=rf"has {size:,} bytes, not the expected 31,344,016"):
        text8_module.download_text8(cache)
    assert list(cache.iterdir()) == []  # a rejected download leaves nothing behind
    zip_path = text8_module.download_text8(cache, size=size, md5=md5)
    assert calls == [text8_module.TEXT8_URL] * 3 and zip_path == cache / "text8.zip"
    assert text8_module.download_text8(cache, size=size, md5=md5) == zip_path and len(calls) == 3  # cached
    assert text8_module.unzip_text8(zip_path, cache).read_bytes() == b" anarchism originated as a term"
    # No data.path and no EDLM_DATA: find_text8 downloads into $EDLM_CACHE.
    real = text8_module.download_text8
    monkeypatch.setattr(text8_module, "download_text8", lambda c: real(c, size=size, md5=md5))
    source = find_text8("")
    assert source.full and source.path == tmp_path / "cache" / "text8" and source.origin.name == "text8.zip"
    # A cached zip that no longer matches is reported, with the fix.
    zip_path.write_bytes(payload[:-1])
    with pytest.raises(EdlmError, match="delete it and download http://mattmahoney.net/dc/text8.zip again"):
        real(cache, size=size, md5=md5)


def test_text8_download_failure_says_what_to_do(tmp_path, monkeypatch):
    def offline(url, dest):
        raise OSError("Name or service not known")

    monkeypatch.setattr(text8_module, "fetch_url", offline)
    with pytest.raises(EdlmError, match="could not download text8 .* set EDLM_DATA"):
        find_text8("")
    assert not (tmp_path / "cache" / "text8.zip").exists()


def test_local_zip_is_checked(tmp_path):
    (tmp_path / "text8.zip").write_bytes(tiny_zip(b" abc"))
    with pytest.raises(EdlmError, match="text8.zip from .* bytes, not the expected 31,344,016"):
        find_text8(str(tmp_path))


# ---------------------------------------------------------------- tokenizers


def test_tiktoken_file_tokenizer(tmp_path):
    tok = build_tokenizer(DataConfig(tokenizer=f"tiktoken:{tiny_ranks(tmp_path / 'tiny.tiktoken')}"))
    assert (tok.vocab_size, tok.eos_id, tok.name) == (260, 259, "tiktoken:tiny.tiktoken")
    assert tok.encode(" the") == [258] and tok.encode("the") == [116, 257]
    assert tok.encode("<|endoftext|>") == list(b"<|endoftext|>")  # special text stays plain text
    assert tok.decode([116, 257, 258, 259, 260]) == "the the<|endoftext|>[MASK]"
    text = "Über 3 the cats, ok?\n"
    assert tok.decode(tok.encode(text)) == text


def test_tiktoken_bad_files(tmp_path):
    with pytest.raises(EdlmError, match="line 260 of the tiktoken file .* not 'base64-token rank'"):
        build_tokenizer(DataConfig(tokenizer=f"tiktoken:{tiny_ranks(tmp_path / 'a', [b'garbage'])}"))
    with pytest.raises(EdlmError, match="ranks are not exactly 0..259"):
        build_tokenizer(DataConfig(tokenizer=f"tiktoken:{tiny_ranks(tmp_path / 'b', [b'eHl6 300'])}"))
    with pytest.raises(EdlmError, match="does not exist"):
        build_tokenizer(DataConfig(tokenizer=f"tiktoken:{tmp_path / 'missing'}"))
    with pytest.raises(EdlmError, match="data.tokenizer='bpe' is unknown"):
        build_tokenizer(DataConfig(tokenizer="bpe"))


def test_gpt2_lookup_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("EDLM_GPT2_TIKTOKEN", str(tiny_ranks(tmp_path / "tiny.tiktoken")))
    with pytest.raises(EdlmError, match="not GPT-2's r50k_base ranks"):
        build_tokenizer(DataConfig(tokenizer="gpt2"))
    monkeypatch.setenv("EDLM_GPT2_TIKTOKEN", str(tmp_path / "missing"))
    with pytest.raises(EdlmError, match="is not a file; .*pip download --no-deps --no-binary :all: openai-whisper"):
        build_tokenizer(DataConfig(tokenizer="gpt2"))
    monkeypatch.delenv("EDLM_GPT2_TIKTOKEN")
    monkeypatch.setattr(tokenizers_module, "gpt2_ranks_file", lambda: None)
    import tiktoken

    def offline(name):
        raise ConnectionError("no network")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    with pytest.raises(EdlmError, match="GPT-2's BPE file was not found.*ConnectionError"):
        build_tokenizer(DataConfig(tokenizer="gpt2"))


@pytest.mark.skipif(not Path(GPT2_FILE or "/nonexistent").is_file(),
                    reason="no gpt2.tiktoken (set EDLM_GPT2_TIKTOKEN or install openai-whisper)")
def test_gpt2_real_vocabulary(monkeypatch):
    monkeypatch.setenv("EDLM_GPT2_TIKTOKEN", GPT2_FILE)
    tok = build_tokenizer(DataConfig(tokenizer="gpt2"))
    assert (tok.vocab_size, tok.eos_id, tok.name) == (50257, 50256, "gpt2")
    assert tok.encode("Hello world") == [15496, 995] and tok.encode(" the") == [262]
    assert tok.decode([15496, 995, 50256]) == "Hello world<|endoftext|>"
    same = build_tokenizer(DataConfig(tokenizer=f"tiktoken:{GPT2_FILE}"))
    assert (same.vocab_size, same.eos_id) == (50257, 50256) and same.encode("Hello world") == [15496, 995]
    check_vocab(tok, 50257)
    with pytest.raises(EdlmError, match="model.vocab_size=27 does not match the 50,257 ids of tokenizer gpt2"):
        check_vocab(tok, 27)


def save_tiny_hf_tokenizer(directory: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "<eos>": 1, "the": 2, "cat": 3, "sat": 4}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", unk_token="[UNK]").save_pretrained(directory)
    return directory


def test_hf_tokenizer_and_corpus(tmp_path):
    directory = save_tiny_hf_tokenizer(tmp_path / "tok")
    (tmp_path / "corpus.txt").write_text("the cat\nsat dog the\n\n  cat  \n")
    cfg = DataConfig(corpus="text", path=str(tmp_path / "corpus.txt"), tokenizer=f"hf:{directory}", seq_len=5,
                     valid_fraction=0.3)
    tok = build_tokenizer(cfg)
    assert (tok.vocab_size, tok.eos_id, tok.name) == (5, 1, f"hf:{directory}")
    assert tok.encode("the cat sat dog") == [2, 3, 4, 0]
    assert tok.decode([2, 3, 5]) == "the cat[MASK]"
    # Documents: "the cat", "sat dog the", "cat"; 0.3 of 3 rounds to 1 each for valid (2nd) and test (3rd).
    # train stream [2, 3, EOS] -> one block of 3 -> [EOS, 2, 3, EOS, EOS].
    assert load_split(cfg, "train").tolist() == [[1, 2, 3, 1, 1]]
    assert load_split(cfg, "valid").tolist() == [[1, 4, 0, 2, 1]]
    with pytest.raises(EdlmError, match="the split has 2 tokens .* fewer than one sequence of data.seq_len=5"):
        load_split(cfg, "test")
    with pytest.raises(EdlmError, match="names a directory that does not exist"):
        build_tokenizer(DataConfig(tokenizer=f"hf:{tmp_path / 'nope'}"))


# ---------------------------------------------------------------- token corpora and wrapping


def test_wrap_layout_by_hand():
    rows = wrap_documents([[1, 2, 3], [4], [5, 6]], eos_id=0, seq_len=4)
    # stream 1 2 3 0 4 0 5 6 0 -> blocks (1 2) (3 0) (4 0) (5 6), remainder (0) dropped
    assert rows.tolist() == [[0, 1, 2, 0], [0, 3, 0, 0], [0, 4, 0, 0], [0, 5, 6, 0]]
    assert rows.dtype == torch.long
    with pytest.raises(EdlmError, match="data.seq_len=2 is too short"):
        wrap_documents([[1]], eos_id=0, seq_len=2)


def write_split_dir(directory: Path, names: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in names.items():
        (directory / name).write_text(text)
    return directory


def test_text_directory_tiktoken_rows_by_hand(tmp_path):
    ranks = tiny_ranks(tmp_path / "tiny.tiktoken")
    corpus = write_split_dir(tmp_path / "c", {"train.txt": "the the\n\n the\n", "valid.txt": " the\n" * 3,
                                              "test.txt": "the\r\nthe\r\n", "README": "ignored"})
    cfg = DataConfig(corpus="text", path=str(corpus), tokenizer=f"tiktoken:{ranks}", seq_len=5)
    # train documents "the the" -> [116, 257, 258] and "the" -> [116, 257] (lines are stripped), EOS 259:
    # stream 116 257 258 259 116 257 259 -> blocks of 3: (116 257 258) (259 116 257), remainder (259) dropped.
    assert load_split(cfg, "train").tolist() == [[259, 116, 257, 258, 259], [259, 259, 116, 257, 259]]
    assert load_split(cfg, "valid").tolist() == [[259, 116, 257, 259, 259]] * 3  # "the" x 3: 9 tokens, 3 blocks
    assert load_split(cfg, "test").tolist() == [[259, 116, 257, 259, 259]] * 2  # CRLF lines are documents too


def test_split_files_templates_and_carving(tmp_path):
    lines = "".join(f"doc {i}\n" for i in range(10))
    ptb = write_split_dir(tmp_path / "ptb", {"ptb.train.txt": lines, "ptb.valid.txt": "v\n", "ptb.test.txt": "t\n"})
    assert split_documents(text_corpus(str(ptb)), "valid", 0.01) == ["v"]
    assert split_documents(text_corpus(str(ptb / "ptb.{split}.txt")), "train", 0.01)[-1] == "doc 9"
    # A single file: valid and test are carved from the end, round(0.2 * 10) = 2 documents each.
    single = text_corpus(str(ptb / "ptb.train.txt"))
    assert split_documents(single, "train", 0.2) == [f"doc {i}" for i in range(6)]
    assert split_documents(single, "valid", 0.2) == ["doc 6", "doc 7"]
    assert split_documents(single, "test", 0.2) == ["doc 8", "doc 9"]
    # Train and test only: only valid is carved; validation/dev names mean valid.
    two = write_split_dir(tmp_path / "two", {"train.txt": lines, "test.txt": "t\n"})
    assert split_documents(text_corpus(str(two)), "valid", 0.2) == ["doc 8", "doc 9"]
    assert split_documents(text_corpus(str(two)), "train", 0.2)[-1] == "doc 7"
    wiki = write_split_dir(tmp_path / "wiki", {"wiki.validation.tokens": "v\n", "wiki.test.tokens": "t\n",
                                               "wiki.test.raw": "t\n"})
    with pytest.raises(EdlmError, match=r"several test files \(wiki.test.raw, wiki.test.tokens\); .*"
                                        r"data.path=.*wiki/wiki.\{split\}.raw"):
        text_corpus(str(wiki))
    only_eval = text_corpus(str(wiki / "wiki.{split}.tokens"))
    assert split_documents(only_eval, "valid", 0.01) == ["v"]
    with pytest.raises(EdlmError, match="has no train split .*it has test, valid"):
        split_documents(only_eval, "train", 0.01)
    with pytest.raises(EdlmError, match=r"data.valid_fraction=0.5 must lie in \(0, 0.333\)"):
        split_documents(single, "valid", 0.5)
    with pytest.raises(EdlmError, match="has no split files"):
        text_corpus(str(write_split_dir(tmp_path / "none", {"notes.txt": "x\n"})))
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(EdlmError, match=r"not UTF-8 text \(byte b'\\xe9' at offset 3\)"):
        split_documents(text_corpus(str(tmp_path / "latin1.txt")), "train", 0.1)


def test_token_cache_hits_and_invalidates(tmp_path, monkeypatch):
    ranks = tiny_ranks(tmp_path / "tiny.tiktoken")
    corpus = write_split_dir(tmp_path / "c", {"train.txt": "the the\n" * 50, "valid.txt": "the\n" * 9})
    cfg = DataConfig(corpus="text", path=str(corpus), tokenizer=f"tiktoken:{ranks}", seq_len=8)
    first = load_split(cfg, "train")
    assert len(list((tmp_path / "cache" / "tokens").glob("*.npy"))) == 1

    def no_tokenizing(self, texts):
        raise AssertionError("tokenized again despite the cache")

    monkeypatch.setattr(tokenizers_module.TiktokenTokenizer, "encode_batch", no_tokenizing)
    assert torch.equal(load_split(cfg, "train"), first)
    (corpus / "train.txt").write_text("the\n" * 50)  # new content -> new key -> tokenized again
    with pytest.raises(AssertionError, match="tokenized again"):
        load_split(cfg, "train")


def test_hf_datasets_path_on_local_files(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")
    ranks = tiny_ranks(tmp_path / "tiny.tiktoken")
    text = "".join(f"the {i}\n" for i in range(40)) + "\n"
    (tmp_path / "corpus.txt").write_text(text)
    kwargs = dict(tokenizer=f"tiktoken:{ranks}", seq_len=16, valid_fraction=0.1)
    # The "text" loader makes one example per line, so it gives exactly the rows of corpus: text.
    via_hf = DataConfig(corpus="hf", hf_name="text", path=str(tmp_path / "corpus.txt"), **kwargs)
    via_text = DataConfig(corpus="text", path=str(tmp_path / "corpus.txt"), **kwargs)
    for split in ("train", "valid", "test"):
        assert torch.equal(load_split(via_hf, split), load_split(via_text, split))
    # A local dataset directory: splits come from the file names, test is carved from train.
    ds_dir = tmp_path / "ds"
    ds_dir.mkdir()
    (ds_dir / "train.jsonl").write_text("".join(json.dumps({"body": f"doc {i}", "n": i}) + "\n" for i in range(10)))
    (ds_dir / "validation.jsonl").write_text(json.dumps({"body": "held out", "n": -1}) + "\n")
    corpus = open_corpus(DataConfig(corpus="hf", hf_name=str(ds_dir), text_field="body"))
    assert split_documents(corpus, "valid", 0.2) == ["held out"]
    assert split_documents(corpus, "test", 0.2) == ["doc 8", "doc 9"]
    with pytest.raises(EdlmError, match=r"has no column 'text'; set data.text_field to one of \['body', 'n'\]"):
        open_corpus(DataConfig(corpus="hf", hf_name=str(ds_dir)))
    with pytest.raises(EdlmError, match="column 'n' holds int64 values, not text"):
        open_corpus(DataConfig(corpus="hf", hf_name=str(ds_dir), text_field="n"))
    with pytest.raises(EdlmError, match="could not load the Hugging Face dataset"):
        open_corpus(DataConfig(corpus="hf", hf_name=str(tmp_path / "empty_dir_missing")))


def test_config_mismatches():
    with pytest.raises(EdlmError, match="data.corpus='owt' is unknown"):
        load_split(DataConfig(corpus="owt"), "train")
    with pytest.raises(EdlmError, match="does not fit corpus text8"):
        load_split(DataConfig(tokenizer="gpt2"), "train")
    with pytest.raises(EdlmError, match="data.tokenizer=char only fits corpus text8"):
        load_split(DataConfig(corpus="text", path="x"), "train")
    with pytest.raises(EdlmError, match="split='dev' is unknown"):
        load_split(DataConfig(), "dev")
    with pytest.raises(EdlmError, match="data.corpus=text needs data.path"):
        open_corpus(DataConfig(corpus="text"))
    with pytest.raises(EdlmError, match="data.corpus=hf needs data.hf_name"):
        open_corpus(DataConfig(corpus="hf"))


# ---------------------------------------------------------------- the `edlm data` command


@needs_shared
def test_cli_text8_and_stats(capsys):
    assert cli_main(["data", "text8", "--data", str(SHARED)]) == 0
    out = capsys.readouterr().out
    assert "ec1961819f29b7a812313fcc9439ced5 (the 12,549,840-character text8 prefix)" in out
    assert "train characters [0, 10,000,000): 39,062 chunks of 256" in out
    assert cli_main(["data", "stats", "text8-tiny", f"data.path={SHARED}", "data.seq_len=1000", "model.max_seq_len=1000"]) == 0
    out = capsys.readouterr().out
    assert "tokenizer char: 27 ids" in out and "valid 1,000 sequences x 1000 = 1,000,000 tokens" in out


def test_cli_errors_exit_2(tmp_path, capsys):
    assert cli_main(["data", "text8", "--data", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    ranks = tiny_ranks(tmp_path / "tiny.tiktoken")
    write_split_dir(tmp_path / "c", {"valid.txt": "the\n" * 9})
    code = cli_main(["data", "stats", "text8-tiny", "data.corpus=text", f"data.path={tmp_path / 'c'}",
                     f"data.tokenizer=tiktoken:{ranks}", "data.seq_len=4"])
    out = capsys.readouterr().out
    assert code == 2 and "train error: text corpus" in out and "valid 13 sequences x 4 = 52 tokens" in out
