"""The owt-gpt2 recipe: the paper's settings, and `edlm train owt-gpt2` with a tiny size override on a
local text file (GPT-2 tokenizer from a local gpt2.tiktoken; skipped without one)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edlm.cli import main
from edlm.config import load_config
from edlm.data import tokenizers as tokenizers_module

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDLM_DATA") or REPO.parent / "shared" / "data")
GPT2_FILE = os.environ.get("EDLM_GPT2_TIKTOKEN") or str(tokenizers_module.gpt2_ranks_file() or "")
needs_gpt2 = pytest.mark.skipif(not Path(GPT2_FILE or "/nonexistent").is_file(),
                                reason="no gpt2.tiktoken (set EDLM_GPT2_TIKTOKEN or install openai-whisper)")
TINY = ["model.n_layers=1", "model.d_model=32", "model.n_heads=2", "model.cond_dim=32", "model.max_seq_len=64",
        "data.seq_len=64", "data.corpus=text", "train.batch_size=4", "train.eval_every=0", "train.log_every=1",
        "train.warmup_steps=1", "train.precision=fp32", "train.device=cpu"]
FALLBACK = ("The tower is 324 metres tall , about the same height as an 81 @-@ storey building .\n"
            "It was the first structure to reach a height of 300 metres .\n") * 60


def test_recipe_has_the_paper_settings():
    cfg = load_config("owt-gpt2")
    m, d, t = cfg.model, cfg.data, cfg.train
    shape = (m.vocab_size, m.n_layers, m.d_model, m.n_heads, m.cond_dim, m.max_seq_len)
    assert shape == (50257, 12, 768, 12, 128, 1024)
    assert (m.causal, m.adaln, m.time_conditioning, m.dropout) == (False, True, False, 0.1)
    assert (d.corpus, d.hf_name, d.tokenizer, d.seq_len) == ("hf", "openwebtext", "gpt2", 1024)
    assert (t.objective, t.lr, t.beta1, t.beta2, t.weight_decay) == ("mdlm", 3e-4, 0.9, 0.999, 0.0)
    assert (t.warmup_steps, t.lr_schedule, t.ema, t.batch_size, t.grad_clip, t.steps) == (2500, "constant", 0.9999,
                                                                                         512, 1.0, 1_000_000)
    assert t.precision == "auto"


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("EDLM_GPT2_TIKTOKEN", GPT2_FILE)
    monkeypatch.setenv("EDLM_CACHE", str(tmp_path / "cache"))
    source = SHARED / "wikitext-2" / "valid.txt"
    text = "\n".join(source.read_text().splitlines()[:300]) if source.is_file() else FALLBACK
    path = tmp_path / "owt.txt"
    path.write_text(text)
    return path


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@needs_gpt2
def test_train_owt_gpt2_tiny_on_cpu(corpus, tmp_path):
    mdlm = tmp_path / "mdlm"
    assert main(["train", "owt-gpt2", *TINY, f"data.path={corpus}", "train.steps=3", f"train.out_dir={mdlm}"]) == 0
    assert (mdlm / "checkpoints" / "latest").is_file()
    assert any(r.get("step") == 3 for r in rows(mdlm))
    ar = tmp_path / "ar"
    assert main(["train", "owt-gpt2", *TINY, f"data.path={corpus}", "train.steps=2", "model.causal=true",
                 "model.adaln=false", "train.objective=ar", f"train.out_dir={ar}"]) == 0
    nce = tmp_path / "nce"
    assert main(["train", "owt-gpt2", *TINY, f"data.path={corpus}", "train.steps=2", "train.objective=nce",
                 f"train.init_from={mdlm}", f"train.out_dir={nce}"]) == 0
    # the exported denoiser samples with the AR energy; GPT-2 text comes out
    assert main(["export", str(mdlm), str(tmp_path / "exported")]) == 0
    out = tmp_path / "s.jsonl"
    assert main(["sample", "--denoiser", f"pretrained:{tmp_path / 'exported'}", "--energy", f"ar:{ar}", "--k", "2",
                 "--window", "1", "--num-samples", "1", "--seq-len", "8", "--steps", "4", "--device", "cpu",
                 "--out", str(out)]) == 0
    sample = json.loads(out.read_text())
    assert len(sample["ids"]) == 8 and max(sample["ids"]) < 50257

