"""The text8 benchmark (`edlm eval text8`): end to end on tiny checkpoints trained here, sharded and
resumed from its job cache; the claim arithmetic on hand-made numbers."""

from __future__ import annotations

import json
import math

import pytest
import torch
from test_train_support import text8_dir, tiny_overrides  # noqa: F401

from edlm.bench.text8 import subset
from edlm.bench.text8_report import _interp_log_time, claims
from edlm.cli import main
from edlm.data import load_split
from edlm.loading.specs import load_spec

TINY = ["--steps", "2,4", "--k", "2", "--window", "1", "--num-samples", "2", "--seq-len", "32",
        "--ablation-steps", "2", "--ablation-k", "2,3", "--ablation-window", "0.5,1", "--max-sequences", "4",
        "--num-t", "2", "--num-z", "2", "--full-num-t", "2", "--reference-samples", "2", "--device", "cpu",
        "--judge", "none"]


@pytest.fixture(scope="module")
def models(tmp_path_factory, text8_dir):  # noqa: F811
    root = tmp_path_factory.mktemp("text8-bench")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, extra in (("mdlm", []), ("ar", ["model.causal=true", "model.adaln=false"]),
                            ("oracle", ["model.causal=true", "model.adaln=false", "train.seed=1"])):
            objective = "ar" if extra else "mdlm"
            assert main(["train", "text8-tiny", *tiny_overrides(text8_dir, root / name, steps=2, objective=objective),
                         *extra, "--no-progress"]) == 0
        assert main(["train", "text8-tiny", *tiny_overrides(text8_dir, root / "nce", steps=2, objective="nce",
                                                             init_from=str(root / "mdlm")), "--no-progress"]) == 0
        assert main(["train", "text8-tiny", *tiny_overrides(text8_dir, root / "sedd", steps=2, objective="sedd"),
                     "--no-progress"]) == 0
        assert main(["train", "text8-tiny", *tiny_overrides(text8_dir, root / "sedd-uniform", steps=2, objective="sedd",
                                                             graph="uniform", noise="geometric"),
                     "model.adaln=true", "model.time_conditioning=true", "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    roles = {"denoiser": "mdlm", "ar": "ar", "nce": "nce", "oracle": "oracle"}
    specs = [f"--{flag}={root / name}" for flag, name in roles.items()]
    specs.append(f"--sedd={root / 'sedd'},{root / 'sedd-uniform'}")
    return dict(root=root, specs=specs + ["--data", str(text8_dir), "--threads", "1"])


def test_sharded_run_resumes_from_cache_and_writes_the_report(models, tmp_path, capsys):
    # The oracle is also the LM judge here (it shares the samples' tokenizer), so lm_bits must equal oracle_bits.
    common = [*TINY, *models["specs"], "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "t8"),
              "--judge", str(models["root"] / "oracle")]
    assert main(["eval", "text8", *common, "--shard", "0/2"]) == 0
    assert "other shards still have pending jobs" in capsys.readouterr().out
    assert not (tmp_path / "t8.json").exists()
    assert main(["eval", "text8", *common, "--shard", "1/2"]) == 0  # the last shard finds every job cached
    out = capsys.readouterr().out
    assert "wrote" in out and (tmp_path / "t8.json").is_file()
    cached = sorted((tmp_path / "cache").glob("*.json"))
    assert main(["eval", "text8", *common]) == 0  # a rerun computes nothing
    assert ", 0 pending" in capsys.readouterr().out and sorted((tmp_path / "cache").glob("*.json")) == cached

    report = json.loads((tmp_path / "t8.json").read_text())
    methods = {(g["energy"], g["k"], g["window"], g["steps"]) for g in report["generation"]}
    assert methods == {("mdlm", 1, 0.0, 2), ("mdlm", 1, 0.0, 4), ("ar", 2, 1.0, 2), ("ar", 2, 1.0, 4),
                       ("nce", 2, 1.0, 2), ("nce", 2, 1.0, 4), ("sedd", 1, 0.0, 2), ("sedd", 1, 0.0, 4)}
    assert {(g["method"], g["steps"]) for g in report["generation"] if g["energy"] == "sedd"} == {
        (f"SEDD {graph} {predictor}", steps) for graph in ("absorb", "uniform") for predictor in ("analytic", "euler")
        for steps in (2, 4)}
    assert {(c["row"], c["col"]) for c in report["ablation"]} == {(2, 0.5), (2, 1.0), (3, 0.5), (3, 1.0)}
    kinds = {(r["model"], r["estimator"], r["data"]): r["kind"] for r in report["table"]}
    assert kinds[("AR", "exact", "full")] == "exact" and kinds[("MDLM", "nelbo", "full")] == "upper_bound"
    assert {kinds[(f"SEDD {graph}", "nelbo", data)] for graph in ("absorb", "uniform") for data in ("full", "subset")} \
        == {"upper_bound"}
    assert kinds[("EDLM-coAR", "paper_eq13", "subset")] == "paper_eq13"
    assert kinds[("EDLM-NCE", "marginal", "subset")] == "estimate"
    for g in report["generation"]:
        assert g["model_rows_per_sample"] == pytest.approx(g["denoiser_rows_per_sample"] + g["energy_rows_per_sample"])
        assert (g["energy_rows_per_sample"] > 0) == (g["energy"] not in ("mdlm", "sedd"))
        assert g["gen_ppl"] == pytest.approx(2 ** g["oracle_bits"]) and len(g["example"]) == 32
        assert g["lm_bits"] == pytest.approx(g["oracle_bits"]) and g["lm_bits_se"] == pytest.approx(g["oracle_bits_se"])
        assert 0 <= g["real_words"] <= 1 and "samples" not in g  # the texts stay in the job cache
    text = next(r for r in report["references"] if r["method"] == "test text")
    assert text["real_words"] > max(g["real_words"] for g in report["generation"])  # real text has real words
    assert {c["claim"] for c in report["claims"]} >= {"likelihood gap", "EDLM at T beats MDLM at 2T"}
    check_bits_by_hand(report, models["root"])
    for suffix in ("steps", "walltime", "calls", "entropy", "ablation"):
        assert (tmp_path / f"t8-{suffix}.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Table 1" in (tmp_path / "t8.md").read_text() and "| lm_bits |" in (tmp_path / "t8.md").read_text()


def nats_by_hand(lm, x: torch.Tensor) -> torch.Tensor:
    """Float64[N]: -sum_i log p(x_i | x_<i) of each row of x, from the causal LM's logits."""
    with torch.no_grad():
        return torch.cat([-torch.log_softmax(lm(rows).double(), -1).gather(-1, rows[..., None])[..., 0].sum(1)
                          for rows in x.split(4096)])


def check_bits_by_hand(report: dict, root) -> None:
    """Table 1's exact AR rows and the test-text reference row against -sum log2 p / characters."""
    ar, oracle = (load_spec(str(root / name), device="cpu") for name in ("ar", "oracle"))
    test = load_split(ar.config.data, "test")  # 31,250 sequences of 32 characters
    table = {(r["model"], r["estimator"], r["data"]): r for r in report["table"]}
    for data, rows in (("full", test), ("subset", subset(test, 4))):
        row = table[("AR", "exact", data)]
        assert row["tokens"] == rows.numel() and row["sequences"] == rows.shape[0]
        assert row["bpc"] == pytest.approx(float(nats_by_hand(ar.model, rows).sum()) / math.log(2) / rows.numel())
    bits = nats_by_hand(oracle.model, subset(test, 2)) / math.log(2) / 32  # per sequence
    text = next(r for r in report["references"] if r["method"] == "test text")
    assert text["oracle_bits"] == pytest.approx(float(bits.mean()))
    assert text["oracle_bits_se"] == pytest.approx(abs(float(bits[0] - bits[1])) / 2)  # std / sqrt(2), two values
    assert text["gen_ppl"] == pytest.approx(2 ** float(bits.mean()))
    plotted = next(r for r in report["plot_records"] if r["method"] == "test text")
    assert plotted["oracle_nll"] == pytest.approx(float(bits.mean()) * math.log(2))  # nats per character


def test_bad_arguments_exit_2(models, tmp_path, capsys):
    base = [*models["specs"], "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "x")]
    assert main(["eval", "text8", *base, "--shard", "2/2"]) == 2
    assert main(["eval", "text8", *base, "--k", "1"]) == 2
    assert main(["eval", "text8", *base, "--seq-len", "64"]) == 2  # the tiny models stop at 32
    assert main(["eval", "text8", *base, "--nce", str(models["root"] / "ar")]) == 2
    assert main(["eval", "text8", *base, "--predictors", "analytic,tweedie"]) == 2
    assert main(["eval", "text8", *base, "--sedd", str(models["root"] / "mdlm")]) == 2  # a denoiser, not a score model
    assert "error:" in capsys.readouterr().err


def test_interpolated_wall_time_in_log_time():
    curve = [(1.0, 3.0), (4.0, 2.0), (16.0, 1.5)]  # (seconds, oracle bits), better with more time
    assert _interp_log_time(curve, 3.5) == 1.0
    assert _interp_log_time(curve, 2.5) == pytest.approx(2.0)  # halfway in log time between 1 s and 4 s
    assert _interp_log_time(curve, 1.5) == pytest.approx(16.0)
    assert _interp_log_time(curve, 1.0) is None


def test_claims_on_hand_made_numbers():
    def table(model, estimator, bpc, kind):
        return dict(model=model, estimator=estimator, data="subset", bpc=bpc, bpc_se=0.01, kind=kind)

    rows = [table("AR", "exact", 1.2, "exact"), table("MDLM", "nelbo", 1.4, "upper_bound")]
    rows += [table(m, e, 1.25, "estimate") for m in ("EDLM-coAR", "EDLM-NCE") for e in ("paper_eq13", "marginal")]
    rows += [table("EDLM-AR", "paper_eq13", 1.25, "paper_eq13"), table("EDLM-AR", "marginal", 1.1, "estimate")]

    def gen(energy, steps, bits, wall):
        return dict(energy=energy, k=1 if energy == "mdlm" else 4, window=0.0 if energy == "mdlm" else 1.0,
                    steps=steps, oracle_bits=bits, oracle_bits_se=0.01, wall_s_per_sample=wall)

    generation = [gen("mdlm", 8, 3.0, 1.0), gen("mdlm", 16, 2.8, 2.0), gen("ar", 8, 2.7, 4.0), gen("ar", 16, 2.9, 8.0)]
    out = {(c["claim"], c["config"]): c for c in claims(dict(table=rows, generation=generation))}
    gap = out[("likelihood gap", "EDLM-AR paper_eq13")]
    assert gap["values"]["gap_closed"] == pytest.approx(0.75) and gap["holds"]
    assert out[("likelihood gap", "EDLM-AR marginal")]["holds"] is None  # below the exact AR NLL: unusable
    every = out[("lower oracle NLL than MDLM at every T", "EDLM-AR k=4 w=1")]
    assert not every["holds"] and every["values"][8]["diff"] == pytest.approx(0.3)  # loses at T=16
    assert out[("EDLM at T beats MDLM at 2T", "EDLM-AR k=4 w=1")]["values"] == {8: pytest.approx(0.1)}
    speed = out[("faster than MDLM at equal quality (CPU wall time)", "EDLM-AR k=4 w=1")]["values"]
    assert speed[8] is None and speed[16] == pytest.approx(2 ** 0.5 / 8)  # MDLM needs sqrt(2) s for 2.9 bits
