"""The recipes of Glauber diffusion at text8-small size (text8-small-ul2, text8-small-glauber): the
text8-small backbone and data, the objectives, the Glauber run starting from the UL2 run, and two
training steps of each with tiny overrides through `edlm.train.train`."""

from __future__ import annotations

import math

import pytest
from test_train_support import text8_dir, tiny_overrides  # noqa: F401

from edlm.config import load_config
from edlm.train import train
from edlm.train.metrics import read_metrics
from edlm.util.device import cpu_threads


@pytest.fixture(autouse=True)
def one_thread():
    with cpu_threads(1):
        yield


def test_recipes_are_text8_small_with_their_objectives():
    small, ul2, glauber = (load_config(name) for name in ("text8-small", "text8-small-ul2", "text8-small-glauber"))
    for cfg in (ul2, glauber):
        assert cfg.model == small.model and cfg.data == small.data
    assert ul2.train.objective == "ul2" and ul2.train.steps == small.train.steps
    assert glauber.train.objective == "glauber" and glauber.train.init_from == ul2.train.out_dir
    chain = glauber.train
    assert (chain.glauber_rounds, chain.glauber_snapshots, chain.glauber_loss) == (1, 32, "exact")


@pytest.mark.parametrize("rounds", [1, 3])
def test_two_steps_of_each_recipe(text8_dir, tmp_path, rounds):  # noqa: F811
    """Both recipes train (the tiny overrides validate at the last step: a Glauber validation runs chains)."""
    pre, run = tmp_path / "ul2", tmp_path / "glauber"
    train(load_config("text8-small-ul2", tiny_overrides(text8_dir, pre, steps=2)), progress=False)
    result = train(load_config("text8-small-glauber", tiny_overrides(
        text8_dir, run, steps=2, init_from=str(pre), glauber_rounds=rounds)), progress=False)
    assert result.step == 2
    for out in (pre, run):
        rows = read_metrics(out)
        assert [r["step"] for r in rows if "loss" in r] == [1, 2]
        assert all(math.isfinite(r.get("loss", r.get("val_loss", math.nan))) for r in rows)
        assert [r["step"] for r in rows if "val_loss" in r] == [2]
