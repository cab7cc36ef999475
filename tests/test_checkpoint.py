"""Checkpoints: exact round trip, atomic writes under a crash, clear errors for corrupt files."""

from __future__ import annotations

import json

import pytest
import torch

from edlm.config import load_config
from edlm.errors import EdlmError
from edlm.models import CausalLM, MaskedDiffusionLM
from edlm.loading.checkpoint import load_model, read_checkpoint, resolve_checkpoint
from edlm.train import checkpointing as ckpt_mod
from edlm.train.checkpointing import checkpoint_position, restore_training_state, save_checkpoint
from edlm.train.optim import EMA, build_optimizer
from edlm.train.order import DataPosition
from edlm.train.treeio import join_tree, split_tree

TINY = ["model.n_layers=1", "model.d_model=32", "model.n_heads=2", "model.cond_dim=32", "model.max_seq_len=32",
        "data.seq_len=32"]


def trained_state(cfg, steps: int = 2):
    """A model, EMA copy and AdamW with non-trivial state after `steps` updates on random data."""
    torch.manual_seed(0)
    model = (CausalLM if cfg.model.causal else MaskedDiffusionLM)(cfg.model)
    ema = EMA(model, 0.9)
    opt = build_optimizer(model, cfg.train, torch.device("cpu"))
    x = torch.randint(0, 27, (4, 32))
    for step in range(1, steps + 1):
        logits = model(x) if cfg.model.causal else model(x, torch.rand(4))
        logits.float().logsumexp(-1).mean().backward()
        opt.step()
        opt.zero_grad()
        ema.update(model, step)
    return model, ema, opt


def save(out_dir, cfg, step, model, ema, opt, **kw):
    return save_checkpoint(out_dir, step=step, position=DataPosition(1, 40), config=cfg, model=model,
                           ema_model=ema.model, optimizer=opt, **kw)


@pytest.fixture
def saved(tmp_path):
    cfg = load_config("text8-tiny", TINY + ["train.weight_decay=0.1", f"train.out_dir={tmp_path / 'run'}"])
    model, ema, opt = trained_state(cfg)
    path = save(tmp_path / "run", cfg, 7, model, ema, opt)
    return cfg, model, ema, opt, path


def assert_same_tensors(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_tree_round_trip_keeps_types():
    tree = {"state": {0: {"step": torch.tensor(3.0), "m": torch.randn(2, 3)}},
            "groups": [{"betas": (0.9, 0.95), "params": [0, 1], "name": None, "flag": True}]}
    tensors, skeleton = split_tree(tree)
    back = join_tree(tensors, json.loads(json.dumps(skeleton)))
    assert set(tensors) == {"state.0.step", "state.0.m"}
    assert back["groups"] == tree["groups"] and isinstance(back["groups"][0]["betas"], tuple)
    assert list(back["state"]) == [0] and torch.equal(back["state"][0]["m"], tree["state"][0]["m"])


def test_round_trip_is_exact(saved, tmp_path):
    cfg, model, ema, opt, path = saved
    assert path == tmp_path / "run" / "checkpoints" / "step_00000007"
    assert sorted(p.name for p in path.iterdir()) == ["ema.safetensors", "model.safetensors",
                                                      "optimizer.safetensors", "state.json"]
    ckpt = read_checkpoint(tmp_path / "run")
    assert ckpt.step == 7 and checkpoint_position(ckpt) == DataPosition(1, 40) and ckpt.config == cfg

    fresh_model, fresh_ema, fresh_opt = trained_state(cfg, steps=0)
    restore_training_state(ckpt, fresh_model, fresh_ema.model, fresh_opt)
    assert_same_tensors(fresh_model.state_dict(), model.state_dict())
    assert_same_tensors(fresh_ema.model.state_dict(), ema.model.state_dict())
    saved_opt, restored_opt = opt.state_dict(), fresh_opt.state_dict()
    assert restored_opt["param_groups"] == saved_opt["param_groups"]
    for index, state in saved_opt["state"].items():
        assert_same_tensors(restored_opt["state"][index], state)

    # One more identical update from both keeps them identical (the optimizer state really is restored).
    for m, o in ((model, opt), (fresh_model, fresh_opt)):
        m(torch.ones(2, 32, dtype=torch.long), torch.full((2,), 0.5)).float().logsumexp(-1).mean().backward()
        o.step()
    assert_same_tensors(fresh_model.state_dict(), model.state_dict())


def test_load_model_specs(saved, tmp_path):
    cfg, model, ema, _, path = saved
    for spec in (tmp_path / "run", path, path.parent):  # ckpt:PATH specs go through edlm.load (test_resolver)
        loaded, loaded_cfg = load_model(spec, device="cpu")
        assert loaded_cfg == cfg and not loaded.training
        assert_same_tensors(loaded.state_dict(), ema.model.state_dict())
    raw, _ = load_model(path, ema=False, device=torch.device("cpu"))
    assert_same_tensors(raw.state_dict(), model.state_dict())


def test_load_model_builds_the_objectives_model(tmp_path):
    cfg = load_config("text8-tiny", TINY + ["model.causal=true", "model.adaln=false", "train.objective=ar"])
    model, ema, opt = trained_state(cfg)
    save(tmp_path, cfg, 1, model, ema, opt)
    loaded, _ = load_model(tmp_path, device="cpu")
    assert isinstance(loaded, CausalLM)
    x = torch.randint(0, 27, (2, 32))
    assert torch.equal(loaded.token_logprobs(x), ema.model.token_logprobs(x))


def test_crash_mid_write_keeps_previous_checkpoint(saved, tmp_path, monkeypatch):
    cfg, model, ema, opt, first = saved
    real_save_file = ckpt_mod.save_file

    def crashing_save_file(tensors, filename):
        if filename.endswith("optimizer.safetensors"):
            with open(filename, "wb") as f:
                f.write(b"half a file")
            raise OSError("simulated crash: disk full")
        real_save_file(tensors, filename)

    monkeypatch.setattr(ckpt_mod, "save_file", crashing_save_file)
    with pytest.raises(OSError, match="simulated crash"):
        save(tmp_path / "run", cfg, 8, model, ema, opt)
    root = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_00000007"]
    assert resolve_checkpoint(tmp_path / "run") == first
    load_model(tmp_path / "run", device="cpu")

    # A writer killed outright leaves a temporary directory, and a run resumed from step 7 may find
    # a later checkpoint that `latest` never pointed to: the next save removes both.
    monkeypatch.setattr(ckpt_mod, "save_file", real_save_file)
    (root / ".tmp-step_00000008-abc").mkdir()
    (root / ".tmp-step_00000008-abc" / "model.safetensors").write_bytes(b"partial")
    (root / "step_00000009").mkdir()
    save(tmp_path / "run", cfg, 8, model, ema, opt, keep_last=1)
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_00000008"]
    assert read_checkpoint(tmp_path / "run").step == 8


def test_keep_last_prunes_older(saved, tmp_path):
    cfg, model, ema, opt, _ = saved
    save(tmp_path / "run", cfg, 7, model, ema, opt)  # an existing checkpoint is replaced whole
    assert read_checkpoint(tmp_path / "run").step == 7
    for step in (8, 9, 10):
        save(tmp_path / "run", cfg, step, model, ema, opt, keep_last=2)
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["latest", "step_00000009", "step_00000010"]


def corrupt_truncate(path):
    data = (path / "ema.safetensors").read_bytes()
    (path / "ema.safetensors").write_bytes(data[: len(data) // 2])
    return "ema.safetensors has .* bytes instead of"


def corrupt_garbage(path):
    size = (path / "ema.safetensors").stat().st_size
    (path / "ema.safetensors").write_bytes(b"\xff" * size)
    return "ema.safetensors is corrupt"


def corrupt_state(path):
    (path / "state.json").write_text('{"format": "edlm-checkpoint", "step": ')
    return "state.json is corrupt"


def corrupt_missing(path):
    (path / "ema.safetensors").unlink()
    return "ema.safetensors is missing"


def corrupt_pointer(path):
    (path.parent / "latest").write_text("step_00000099\n")
    return "names checkpoint 'step_00000099', which is missing"


def corrupt_shapes(path):
    state = json.loads((path / "state.json").read_text())
    state["config"]["model"]["d_model"] = 64
    state["config"]["model"]["cond_dim"] = 64
    (path / "state.json").write_text(json.dumps(state))
    return "do not fit the model"


@pytest.mark.parametrize("corrupt", [corrupt_truncate, corrupt_garbage, corrupt_state, corrupt_missing,
                                     corrupt_pointer, corrupt_shapes])
def test_corrupt_checkpoint_is_a_clear_error(saved, tmp_path, corrupt):
    message = corrupt(saved[-1])
    with pytest.raises(EdlmError, match=message) as info:
        load_model(tmp_path / "run", device="cpu")
    text = str(info.value)
    assert "\n" not in text and (str(saved[-1]) in text or str(saved[-1].parent) in text)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(EdlmError, match="does not exist"):
        load_model(tmp_path / "nothing")
    with pytest.raises(EdlmError, match="is not an edlm checkpoint or run directory"):
        load_model(tmp_path)
