"""`edlm train` and `edlm eval nll` from the command line, end to end on a tiny run."""

from __future__ import annotations

import json
import math

import pytest
from test_train_support import text8_dir, tiny_overrides  # noqa: F401

from edlm.cli import main


def test_train_then_eval_nll(text8_dir, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    assert main(["train", "text8-tiny", *tiny_overrides(text8_dir, run, steps=4, save_every=2)]) == 0
    out = capsys.readouterr().out
    assert "mdlm objective" in out and "trained to step 4" in out

    assert main(["train", "text8-tiny", *tiny_overrides(text8_dir, run, steps=4, save_every=2)]) == 0
    assert "already at step 4" in capsys.readouterr().out

    code = main(["eval", "nll", f"ckpt:{run}", "--split", "test", "--num-t", "2", "--batch-size", "8",
                 "--max-sequences", "24", "--out", str(tmp_path / "nll")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "BPC" in printed and "upper bounds" in printed
    assert "upper_bound" in (tmp_path / "nll.md").read_text()
    result = json.loads((tmp_path / "nll.json").read_text())["results"]
    assert result["kind"] == "upper_bound" and result["bound"] is True and result["step"] == 4
    assert result["num_sequences"] == 24 and result["num_tokens"] == 24 * 32 and result["num_t"] == 2
    assert result["bpc"] == result["bits_per_token"] == pytest.approx(result["nats_per_token"] / math.log(2))
    assert result["ppl"] == pytest.approx(math.exp(result["nats_per_token"])) and result["nats_per_token"] > 0


def test_bad_paths_exit_2_with_one_sentence(tmp_path, capsys):
    for argv in (["eval", "nll", str(tmp_path / "missing"), "--split", "test", "--out", str(tmp_path / "nll")],
                 ["eval", "nll", str(tmp_path), "--split", "test", "--out", str(tmp_path / "nll")],
                 ["train", "text8-tiny", "train.steps=0", f"train.out_dir={tmp_path}"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("edlm: error: ") and "\n" not in err and "Traceback" not in err
        assert err.count(". ") == 0 and err.endswith(".")
