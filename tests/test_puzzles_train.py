"""The puzzle recipes train (a few steps of each, tiny models) on directories that `edlm data puzzles` wrote,
and `edlm eval puzzles` solves the test puzzles with every model they produce."""

from __future__ import annotations

import json

import pytest

from edlm.cli import main
from edlm.config import load_config
from edlm.data import build_tokenizer

TINY = ["model.n_layers=1", "model.d_model=16", "model.n_heads=2", "model.cond_dim=16", "train.steps=2",
        "train.batch_size=4", "train.warmup_steps=1", "train.log_every=1", "train.eval_every=2",
        "train.eval_batches=1", "train.save_every=2", "train.device=cpu", "train.glauber_snapshots=2"]
# name: (recipe, overrides, `edlm eval puzzles` options, method, rounds); a Glauber run starts from the UL2 run
RUNS = {
    "mdlm": ("{kind}-mdlm", [], ["--unmasking", "margin"], "mdlm", None),
    "ar": ("{kind}-ar", [], [], "ar", None),
    "ar-solver": ("{kind}-ar", ["data.tokenizer=puzzle:{kind}:pairs-solver"], [], "ar", None),
    "ul2": ("{kind}-ul2", [], [], "glauber-diffusion", 1),
    "glauber": ("{kind}-glauber", ["train.init_from={runs}/ul2"], ["--block", "3"], "glauber-diffusion", 1),
    "glauber-n3": ("{kind}-glauber", ["train.init_from={runs}/ul2", "train.glauber_rounds=3"], ["--block", "3"],
                   "glauber-diffusion", 3),
}
DATA = {"sudoku-6x6": ["sudoku", "--size", "6", "--givens", "12", "--train", "16"],
        "zebra-4x4": ["zebra", "--houses", "4", "--attributes", "4", "--train", "8"]}


@pytest.mark.parametrize("kind", list(DATA))
def test_recipes_fit_their_tokenizers_and_glauber_starts_from_ul2(kind):
    cfgs = {name: load_config(f"{kind}-{name}") for name in ("mdlm", "ar", "ul2", "glauber")}
    for cfg in cfgs.values():
        assert cfg.model.vocab_size == build_tokenizer(cfg.data).vocab_size
        assert cfg.data.seq_len == cfg.model.max_seq_len and cfg.data.path == f"puzzles/{kind}"
    assert cfgs["glauber"].train.init_from == cfgs["ul2"].train.out_dir
    assert cfgs["glauber"].model == cfgs["ul2"].model and cfgs["ul2"].data == cfgs["glauber"].data
    assert cfgs["mdlm"].data.tokenizer.endswith(":cells") and cfgs["ar"].data.tokenizer.endswith(":pairs-rowmajor")


@pytest.mark.parametrize("kind", list(DATA))
def test_every_recipe_trains_and_its_model_solves(kind, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDLM_CACHE", str(tmp_path / "cache"))
    data, runs = tmp_path / kind, tmp_path / "runs"
    assert main(["data", "puzzles", DATA[kind][0], str(data), *DATA[kind][1:], "--valid", "4", "--test", "3"]) == 0
    for name, (recipe, overrides, options, method, rounds) in RUNS.items():
        extra = [o.format(kind=kind, runs=runs) for o in overrides]
        assert main(["train", recipe.format(kind=kind), *TINY, *extra, f"data.path={data}",
                     f"train.out_dir={runs / name}"]) == 0, name
        assert "trained to step 2" in capsys.readouterr().out
        out = tmp_path / f"{name}-test"
        assert main(["eval", "puzzles", str(runs / name), "--puzzles", str(data / "test.txt"), *options,
                     "--out", str(out), "--device", "cpu"]) == 0, name
        results = json.loads(out.with_suffix(".json").read_text())["results"]
        assert (results["method"], results["shape"], results["puzzles"]) == (method, kind, 3), name
        assert results.get("rounds") == rounds and results["givens_changed"] == 0
        assert len(out.with_name(out.name + "-solutions.txt").read_text().splitlines()) == 3
