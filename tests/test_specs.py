"""Model specs: `hf:` MDLM hub checkpoints as denoisers (detected by config.json), `hf:` causal LMs as
AR energies, and the tokenizer check of `edlm sample`, which compares ids rather than fingerprints.

Every model is tiny and written by the tests: MDLM-layout checkpoints come from test_mdlm_hub's
builders (published key names and shapes, random values), GPT-2 models from test_eval_tinyhf's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edlm.cli import main
from edlm.data import tokenizers as tokenizers_module
from edlm.loading.hf_models import is_mdlm_config, mdlm_tokenizer
from edlm.loading.specs import load_spec
from edlm.loading.tokenizer_specs import load_tokenizer_spec, same_tokenizer
from edlm.models import MaskedDiffusionLM
from test_eval_tinyhf import build_gpt2, build_tokenizer
from test_mdlm_hub import hub_config, reference_state_dict, write_checkpoint

GPT2_FILE = os.environ.get("EDLM_GPT2_TIKTOKEN") or str(tokenizers_module.gpt2_ranks_file() or "")
needs_gpt2 = pytest.mark.skipif(not Path(GPT2_FILE or "/nonexistent").is_file(),
                                reason="no gpt2.tiktoken (set EDLM_GPT2_TIKTOKEN or install openai-whisper)")
OTHER_TEXTS = ["zebras quietly graze beyond yellow hills while xylophones echo", "jovial quokkas vex wizards"] * 3


def write_mdlm(directory: Path, vocab_size: int, *, model_length: int = 24, tokenizer_from: Path | None = None) -> Path:
    """An MDLM-layout checkpoint with data vocabulary `vocab_size` (MDLM's vocab_size = that + 1)."""
    cfg = hub_config(vocab_size=vocab_size + 1, model_length=model_length, hidden_dim=16, cond_dim=8, n_blocks=1)
    write_checkpoint(directory, cfg, reference_state_dict(cfg, seed=0))
    if tokenizer_from is not None:
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if (tokenizer_from / name).is_file():
                (directory / name).write_bytes((tokenizer_from / name).read_bytes())
    return directory


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tokenizer; an MDLM checkpoint with it; a GPT-2 with it; a GPT-2 with another tokenizer."""
    root = tmp_path_factory.mktemp("specs")
    tok = build_tokenizer(root / "tok")
    mdlm = write_mdlm(root / "mdlm", len(tok), tokenizer_from=root / "tok")
    build_tokenizer(root / "gpt2")
    build_gpt2(root / "gpt2", len(tok), tok.eos_token_id, n_embd=16, n_layer=1)
    other = build_tokenizer(root / "other", texts=OTHER_TEXTS, vocab_size=len(tok))
    build_gpt2(root / "other", len(other), other.eos_token_id, n_embd=16, n_layer=1)
    return dict(root=root, vocab=len(tok), eos=tok.eos_token_id, mdlm=mdlm, gpt2=root / "gpt2", other=root / "other",
                other_vocab=len(other))


def test_hf_spec_loads_an_mdlm_checkpoint_as_a_denoiser(tiny):
    loaded = load_spec(f"hf:{tiny['mdlm']}", device="cpu")
    assert isinstance(loaded.model, MaskedDiffusionLM) and not loaded.causal
    assert loaded.model.vocab_size == tiny["vocab"] and loaded.seq_len == 24
    assert loaded.tokenizer.name.startswith("hf:") and loaded.tokenizer.vocab_size == tiny["vocab"]
    causal = load_spec(f"hf:{tiny['gpt2']}", device="cpu")
    assert causal.causal and same_tokenizer(loaded.tokenizer, causal.tokenizer) is None


def test_mdlm_detection_and_tokenizer_fallback(tiny, tmp_path):
    assert is_mdlm_config({"model_type": "mdlm"}) and is_mdlm_config({"architectures": ["MDLM"]})
    assert not is_mdlm_config({"model_type": "gpt2"}) and not is_mdlm_config(None)
    bare = write_mdlm(tmp_path / "bare", 40)
    assert mdlm_tokenizer(str(bare), 40) is None  # no tokenizer saved, not GPT-2's vocabulary
    out = tmp_path / "s.jsonl"
    assert main(["sample", "--denoiser", f"hf:{bare}", "--num-samples", "1", "--seq-len", "4", "--steps", "2",
                 "--device", "cpu", "--out", str(out)]) == 2
    assert not out.exists()


def test_hub_id_mdlm_is_detected_and_downloaded(tiny, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    calls = []

    def hf_hub_download(repo_id, filename, revision=None, **kwargs):
        calls.append(("config", repo_id, filename))
        return str(tiny["mdlm"] / filename)

    def snapshot_download(repo_id, revision=None, allow_patterns=None, **kwargs):
        calls.append(("snapshot", repo_id))
        return str(tiny["mdlm"])

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    loaded = load_spec("hf:kuleshov-group/mdlm-owt", device="cpu")
    assert isinstance(loaded.model, MaskedDiffusionLM)
    assert calls == [("config", "kuleshov-group/mdlm-owt", "config.json"), ("snapshot", "kuleshov-group/mdlm-owt")]


def test_sample_with_hf_mdlm_denoiser_and_hf_ar_energy(tiny, tmp_path):
    out = tmp_path / "s.jsonl"
    assert main(["sample", "--denoiser", f"hf:{tiny['mdlm']}", "--energy", f"ar:hf:{tiny['gpt2']}", "--k", "2",
                 "--window", "1", "--num-samples", "2", "--seq-len", "8", "--steps", "4", "--device", "cpu",
                 "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and all(len(r["ids"]) == 8 and r["ess_mean"] is not None for r in rows)
    assert rows[0]["denoiser"] == f"hf:{tiny['mdlm']}"


def test_tokenizer_mismatch_reads_through_text_and_refuses_carry_over(tiny, tmp_path, capsys):
    out = tmp_path / "s.jsonl"
    argv = ["sample", "--denoiser", f"hf:{tiny['mdlm']}", "--k", "2", "--window", "1", "--num-samples", "1",
            "--seq-len", "8", "--steps", "2", "--device", "cpu", "--out", str(out)]
    assert main(argv + ["--energy", f"ar:hf:{tiny['other']}"]) == 0  # the text-level AR energy
    assert len(out.read_text().splitlines()) == 1
    out.unlink()
    assert main(argv + ["--energy", f"coar:hf:{tiny['other']}"]) == 2 and not out.exists()
    assert "cannot be carry-over across tokenizers" in capsys.readouterr().err


class FakeTokenizer:
    def __init__(self, fingerprint, shift=0, eos_id=0):
        self.fingerprint, self.shift, self.eos_id, self.name = fingerprint, shift, eos_id, "fake"

    def encode(self, text):
        return [ord(c) + self.shift for c in text]


def test_same_tokenizer_compares_ids_not_fingerprints():
    assert same_tokenizer(FakeTokenizer("a"), FakeTokenizer("a", shift=1)) is None  # equal fingerprints
    assert same_tokenizer(FakeTokenizer("a"), FakeTokenizer("b")) is None  # different fingerprints, same ids
    assert same_tokenizer(FakeTokenizer("a"), FakeTokenizer(None)) is None
    assert "probe text" in same_tokenizer(FakeTokenizer("a"), FakeTokenizer("b", shift=1))
    assert "end-of-sequence" in same_tokenizer(FakeTokenizer("a"), FakeTokenizer("b", eos_id=5))
    assert same_tokenizer(None, FakeTokenizer("b")) is None
    text8 = load_tokenizer_spec("char")  # cannot encode the probe text's capitals: a difference, not a crash
    assert "char cannot encode a probe text" in same_tokenizer(text8, FakeTokenizer("b"))


@needs_gpt2
def test_gpt2_mdlm_with_hf_gpt2_energy(tmp_path, monkeypatch):
    """The paper's setting in miniature: an MDLM checkpoint with GPT-2's vocabulary (no tokenizer saved:
    edlm's tiktoken `gpt2`) and an HF GPT-2 whose tokenizer is Hugging Face's (built from the same ranks).
    The fingerprints differ, the ids do not, so sampling runs (the old fingerprint check refused it)."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    monkeypatch.setenv("EDLM_GPT2_TIKTOKEN", GPT2_FILE)
    pattern = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    backend = TikTokenConverter(vocab_file=GPT2_FILE, pattern=pattern,
                                additional_special_tokens=["<|endoftext|>"]).converted()
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    hf_tok.save_pretrained(str(tmp_path / "gpt2"))
    build_gpt2(tmp_path / "gpt2", 50257, 50256, n_embd=8, n_layer=1)
    mdlm = write_mdlm(tmp_path / "mdlm", 50257, model_length=16)
    den = load_spec(f"hf:{mdlm}", device="cpu")
    ar = load_spec(f"hf:{tmp_path / 'gpt2'}", device="cpu")
    assert den.tokenizer.name == "gpt2" and den.tokenizer.fingerprint != ar.tokenizer.fingerprint
    assert same_tokenizer(den.tokenizer, ar.tokenizer) is None
    out = tmp_path / "s.jsonl"
    assert main(["sample", "--denoiser", f"hf:{mdlm}", "--energy", f"ar:hf:{tmp_path / 'gpt2'}", "--k", "2",
                 "--window", "1", "--num-samples", "1", "--seq-len", "6", "--steps", "3", "--device", "cpu",
                 "--prefix", "The quick", "--out", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["ids"][:2] == den.tokenizer.encode("The quick") and isinstance(row["text"], str)
