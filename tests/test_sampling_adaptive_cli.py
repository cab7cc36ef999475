"""`edlm sample` with adaptive unmasking, ReMDM remasking and blocks: what is recorded, semi-AR past
the model's context, and the combinations refused with one sentence."""

from __future__ import annotations

import json

import pytest

from edlm.cli import main
from test_sampling_cli import write_checkpoint


@pytest.fixture(scope="module")
def mdlm(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "mdlm", [])


def run(mdlm, tmp_path, *options):
    out = tmp_path / "s.jsonl"
    code = main(["sample", "--denoiser", str(mdlm), "--steps", "4", "--num-samples", "2", "--out", str(out),
                 "--device", "cpu", *options])
    return code, [json.loads(line) for line in out.read_text().splitlines()] if code == 0 else None


def test_records_only_the_options_used(mdlm, tmp_path):
    code, rows = run(mdlm, tmp_path, "--unmasking", "margin", "--unmasking-noise", "0.5", "--remasking", "rescale",
                     "--eta", "0.2")
    assert code == 0
    r = rows[0]
    assert (r["unmasking"], r["unmasking_noise"], r["remasking"], r["eta"]) == ("margin", 0.5, "rescale", 0.2)
    assert r["remasking_window"] == [1.0, 0.0] and "temperature" not in r and "block_size" not in r
    code, rows = run(mdlm, tmp_path)
    assert rows[0]["unmasking"] == "random" and not {"unmasking_noise", "remasking", "eta"} & set(rows[0])


def test_semi_autoregressive_past_the_context(mdlm, tmp_path):
    code, rows = run(mdlm, tmp_path, "--seq-len", "40", "--block-size", "8")  # max_seq_len = 24
    assert code == 0 and len(rows[0]["ids"]) == 40 and (rows[0]["block_size"], rows[0]["context"]) == (8, 24)


@pytest.mark.parametrize("options,message", [
    (["--eta", "0.1"], "--eta needs --remasking"),
    (["--remasking-window", "0.5,0.1"], "--remasking-window needs --remasking"),
    (["--unmasking-noise", "0.5"], "--unmasking-noise applies to --unmasking confidence"),
    (["--remasking", "cap", "--eta", "2"], "--eta 2.0 must lie in [0, 1]"),
    (["--remasking", "cap", "--remasking-window", "0.1,0.5"], "must have 0 <= T_OFF < T_ON <= 1"),
    (["--sampler", "glauber", "--energy", "ar:x", "--remasking", "cap"], "--remasking applies to --sampler mdlm"),
    (["--seq-len", "40"], "exceeds the denoiser's max_seq_len")])
def test_refused_combinations(mdlm, tmp_path, capsys, options, message):
    code, _ = run(mdlm, tmp_path, *options)
    assert code == 2 and message in capsys.readouterr().err
