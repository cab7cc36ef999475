"""Every numeric and enumerated config field is checked when a RunConfig is built (and the tokenizer's
vocabulary before the run directory is made): `edlm train` exits 2 with one sentence naming
`section.key=value` and the allowed values, and creates nothing."""

from __future__ import annotations

import pytest
from test_outputs import snapshot

from edlm.cli import main
from edlm.config import RunConfig, load_config
from edlm.errors import EdlmError

# (overrides, the sentence's start): each override alone is out of range in the text8-tiny recipe.
BAD = [
    (["train.batch_size=0"], "train.batch_size=0 must be at least 1."),
    (["train.steps=0"], "train.steps=0 must be at least 1."),
    (["train.grad_accum=0"], "train.grad_accum=0 must be at least 1."),
    (["train.eval_batches=0"], "train.eval_batches=0 must be at least 1."),
    (["train.nce_negatives=0"], "train.nce_negatives=0 must be at least 1."),
    (["train.warmup_steps=-1"], "train.warmup_steps=-1 must be at least 0."),
    (["train.log_every=-1"], "train.log_every=-1 must be at least 0."),
    (["train.eval_every=-1"], "train.eval_every=-1 must be at least 0."),
    (["train.save_every=-1"], "train.save_every=-1 must be at least 0."),
    (["train.keep_last=-1"], "train.keep_last=-1 must be at least 0."),
    (["train.grad_clip=-1"], "train.grad_clip=-1.0 must be at least 0."),
    (["train.weight_decay=-0.1"], "train.weight_decay=-0.1 must be at least 0."),
    (["train.lr=0"], "train.lr=0.0 must be positive."),
    (["train.lr=.nan"], "train.lr=nan must be positive."),
    (["train.ema=1"], "train.ema=1.0 must be in [0, 1)."),
    (["train.beta1=1"], "train.beta1=1.0 must be in [0, 1)."),
    (["train.beta2=-0.5"], "train.beta2=-0.5 must be in [0, 1)."),
    (["train.t_min=1"], "train.t_min=1.0 must be in [0, 1)."),
    (["train.nce_t_min=1"], "train.nce_t_min=1.0 must be in [0, 1)."),
    (["train.eps=0"], "train.eps=0.0 must be in (0, 1)."),
    (["train.precision=fp16"], "train.precision='fp16' must be one of auto, bf16, fp32."),
    (["train.lr_schedule=linear"], "train.lr_schedule='linear' must be one of constant, cosine, wsd."),
    (["train.objective=plaid"], "train.objective='plaid' must be one of ar, "),
    (["data.corpus=wiki"], "data.corpus='wiki' must be one of hf, puzzles, text, text8."),
    (["data.seq_len=0"], "data.seq_len=0 must be at least 1."),
    (["data.valid_fraction=1"], "data.valid_fraction=1.0 must be in (0, 1)."),
    (["data.seq_len=512"], "data.seq_len=512 exceeds model.max_seq_len=256; raise model.max_seq_len"),
    (["model.n_layers=0"], "model.n_layers=0 must be at least 1."),
    (["model.d_model=0"], "model.d_model=0 must be at least 1."),
    (["model.n_heads=0"], "model.n_heads=0 must be at least 1."),
    (["model.mlp_ratio=0"], "model.mlp_ratio=0 must be at least 1."),
    (["model.cond_dim=0"], "model.cond_dim=0 must be at least 1."),
    (["model.max_seq_len=0"], "model.max_seq_len=0 must be at least 1."),
    (["model.rope_base=0"], "model.rope_base=0.0 must be a positive number."),
    (["model.vocab_size=1"], "model.vocab_size=1 must be at least 2."),
    # found by the training checks, still before anything is loaded or written:
    (["train.schedule=linear"], "train.schedule='linear' must be one of cosine, loglinear."),
    (["train.batch_size=6", "train.grad_accum=4"], "train.batch_size=6 must be divisible by processes (1) x "
                                                    "train.grad_accum (4)"),
    (["model.vocab_size=20"], "model.vocab_size=20 does not match the 27 ids of tokenizer char; "
                              "set model.vocab_size=27."),
]


@pytest.mark.parametrize("overrides,message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_config_value_exits_2_and_writes_nothing(overrides, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    assert main(["train", "text8-tiny", *overrides, f"train.out_dir={tmp_path / 'run'}", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"edlm: error: {message}"), err
    assert err.count("\n") == 1 and err.rstrip().endswith("."), err
    assert snapshot(tmp_path) == before and not (tmp_path / "run").exists()


def test_run_config_checks_itself_whenever_built():
    cfg = load_config("text8-tiny")
    with pytest.raises(EdlmError, match=r"^train.out_dir is empty"):
        RunConfig.from_dict({**cfg.to_dict(), "train": {**cfg.to_dict()["train"], "out_dir": ""}})
    with pytest.raises(EdlmError, match=r"^data.seq_len=300 exceeds model.max_seq_len=256"):
        RunConfig(model=cfg.model, data=type(cfg.data)(seq_len=300), train=cfg.train)
    assert load_config("text8-tiny", ["train.eval_every=0", "train.save_every=0", "train.keep_last=0"])
