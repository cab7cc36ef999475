"""Recipes and key=value overrides."""

import pytest

from edlm.config import load_config, recipe_names
from edlm.errors import EdlmError


def test_shipped_recipes_load():
    assert "text8-tiny" in recipe_names()
    for name in recipe_names():
        cfg = load_config(name)
        assert cfg.model.vocab_size >= 2 and cfg.data.seq_len <= cfg.model.max_seq_len


def test_overrides_dotted_and_bare():
    cfg = load_config("text8-tiny", ["model.n_layers=3", "lr=0.01", "objective=ar", "model.causal=true", "adaln=false"])
    assert cfg.model.n_layers == 3 and cfg.train.lr == 0.01 and cfg.train.objective == "ar"
    assert cfg.model.causal is True and cfg.model.adaln is False


def test_override_values_take_the_field_type():
    cfg = load_config("text8-tiny", ["lr=3e-3", "train.grad_clip=2", "data.path=/x"])
    assert cfg.train.lr == 0.003 and isinstance(cfg.train.grad_clip, float) and cfg.data.path == "/x"


@pytest.mark.parametrize("override, message", [
    ("train.steps=1.5", "must be an integer"),
    ("train.lr=fast", "must be a number"),
    ("model.causal=3", "true or false"),
    ("nokey", "not key=value"),
    ("model.widht=3", "has no key 'widht'"),
    ("bogus=1", "unknown"),
    ("optim.lr=1", "unknown section"),
])
def test_bad_overrides_name_the_fix(override, message):
    with pytest.raises(EdlmError, match=message):
        load_config("text8-tiny", [override])


def test_unknown_recipe(tmp_path):
    with pytest.raises(EdlmError, match="unknown recipe"):
        load_config("text8-huge")
    bad = tmp_path / "r.yaml"
    bad.write_text("model: {n_layers: [1, 2}\n")
    with pytest.raises(EdlmError, match="not valid YAML"):
        load_config(str(bad))
