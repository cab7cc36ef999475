"""Pieces of the training loop: objectives, schedules, data order, EMA, config checks, init_from."""

from __future__ import annotations

import math

import pytest
import torch
from test_train_support import text8_dir, tiny_overrides  # noqa: F401

from edlm.config import load_config
from edlm.diffusion import make_schedule, mdlm_loss
from edlm.errors import EdlmError
from edlm.models import CausalLM, MaskedDiffusionLM, ModelConfig, build_model
from edlm.loading.checkpoint import load_model
from edlm.train import train
from edlm.train.metrics import read_metrics
from edlm.train.objectives import MDLMObjective, objective_class
from edlm.train.optim import EMA, learning_rate
from edlm.train.order import DataOrder, DataPosition, derive_seed, shard


def test_mdlm_objective_is_mdlm_loss_split_in_two():
    cfg = load_config("text8-tiny", ["model.n_layers=1", "model.d_model=32", "model.cond_dim=32", "train.t_min=0.01"])
    torch.manual_seed(0)
    model = MaskedDiffusionLM(cfg.model)
    x0 = torch.randint(0, 27, (6, 20))
    objective = MDLMObjective(cfg, model, torch.device("cpu"))
    batch = objective.prepare(x0, torch.Generator().manual_seed(5))
    ours = objective.loss(model, x0, batch)
    reference = mdlm_loss(model, x0, make_schedule("loglinear", cfg.train.eps), 27, torch.Generator().manual_seed(5),
                          t_min=0.01)
    assert ours.dtype == torch.float32 and torch.equal(ours, reference)
    # Rows of the prepared global batch give the same per-row losses as the whole batch.
    halves = [objective.loss(model, x0[s], {k: v[s] for k, v in batch.items()}) for s in (slice(0, 3), slice(3, 6))]
    torch.testing.assert_close((halves[0] + halves[1]) / 2, ours)


def test_learning_rate_schedules():
    cfg = load_config("text8-tiny", ["train.lr=0.01", "train.warmup_steps=10", "train.steps=110"]).train
    assert learning_rate(0, cfg) == pytest.approx(0.001) and learning_rate(9, cfg) == pytest.approx(0.01)
    assert learning_rate(50, cfg) == pytest.approx(0.01)
    cfg.lr_schedule = "cosine"
    assert learning_rate(10, cfg) == pytest.approx(0.01)
    assert learning_rate(60, cfg) == pytest.approx(0.005)
    assert learning_rate(110, cfg) == pytest.approx(0.0, abs=1e-12)
    cfg.lr_schedule, cfg.decay_fraction = "wsd", 0.2  # constant to step 88, then linear to 0 at 110
    assert learning_rate(60, cfg) == pytest.approx(0.01) and learning_rate(88, cfg) == pytest.approx(0.01)
    assert learning_rate(99, cfg) == pytest.approx(0.005) and learning_rate(110, cfg) == pytest.approx(0.0)


def test_data_order_is_seeded_per_epoch():
    order = DataOrder(num_rows=10, batch_size=4, seed=3)
    pos, seen = DataPosition(), []
    for _ in range(4):
        rows, pos = order.batch(pos)
        seen.append(rows)
    assert pos == DataPosition(epoch=1, offset=8)
    epoch0 = torch.cat(seen[:2])
    assert len(set(epoch0.tolist())) == 8 and torch.equal(epoch0, order.permutation(0)[:8])
    assert not torch.equal(order.permutation(0), order.permutation(1))
    again, _ = DataOrder(10, 4, 3).batch(DataPosition(1, 4))  # a fresh order resumes mid-epoch
    assert torch.equal(again, seen[3])
    assert derive_seed(3, "noise", 7) == derive_seed(3, "noise", 7) != derive_seed(3, "noise", 8)
    assert [shard(10, 3, i) for i in range(3)] == [slice(0, 4), slice(4, 7), slice(7, 10)]


def test_ema_tracks_with_warmup():
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = EMA(model, decay=0.99)
    assert ema.decay_at(1) == pytest.approx(2 / 11) and ema.decay_at(10_000) == 0.99
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model, 1)
    assert torch.allclose(ema.model.weight, torch.full_like(model.weight, 9 / 11))
    assert not ema.model.weight.requires_grad


@pytest.mark.parametrize("overrides, message", [
    (["train.batch_size=6", "train.grad_accum=4"], "must be divisible by processes"),
    (["train.objective=nope"], "train.objective='nope' must be one of ar, "),
    (["train.objective=ar"], "needs model.causal=true"),
    (["train.precision=bf16"], "needs a CUDA device"),
    (["train.lr_schedule=linear"], "lr_schedule='linear' must be one of constant, cosine, wsd"),
    (["data.seq_len=64"], "exceeds model.max_seq_len"),
])
def test_bad_training_config_is_a_clear_error(overrides, message, text8_dir, tmp_path):  # noqa: F811
    with pytest.raises(EdlmError, match=message):
        train(load_config("text8-tiny", tiny_overrides(text8_dir, tmp_path) + ["train.device=cpu", *overrides]),
              progress=False)


def test_ar_objective_trains_and_loads(text8_dir, tmp_path):  # noqa: F811
    overrides = tiny_overrides(text8_dir, tmp_path / "ar", steps=3) + [
        "model.causal=true", "model.adaln=false", "train.objective=ar"]
    result = train(load_config("text8-tiny", overrides), progress=False)
    assert result.step == 3 and math.isfinite(result.loss) and result.val_loss is not None
    model, cfg = load_model(tmp_path / "ar", device="cpu")
    assert isinstance(model, CausalLM) and cfg.train.objective == "ar"
    assert objective_class("ar").metric == "nll" and read_metrics(tmp_path / "ar")[-1]["val_metric"] == "nll"


def test_resume_guards_and_init_from(text8_dir, tmp_path):  # noqa: F811
    base = tiny_overrides(text8_dir, tmp_path / "a", steps=2)
    first = train(load_config("text8-tiny", base), progress=False)
    assert first.step == 2 and first.resumed_from == 0

    again = train(load_config("text8-tiny", base), progress=False)  # finished: nothing to do
    assert again.step == 2 and again.resumed_from == 2 and again.loss is None

    with pytest.raises(EdlmError, match="holds a run with other settings .model.n_layers=1 there, 2 now"):
        train(load_config("text8-tiny", base + ["model.n_layers=2"]), progress=False)

    longer = train(load_config("text8-tiny", base + ["train.steps=3"]), progress=False)
    assert longer.resumed_from == 2 and longer.step == 3

    # A new run initialised from the first one starts from its EMA weights.
    init = tiny_overrides(text8_dir, tmp_path / "b", steps=1, lr=1e-12, warmup_steps=0) + [f"train.init_from=ckpt:{tmp_path / 'a'}"]
    train(load_config("text8-tiny", init), progress=False)
    source, _ = load_model(tmp_path / "a", device="cpu")
    started, _ = load_model(tmp_path / "b", ema=False, device="cpu")
    for (name, a), (_, b) in zip(source.state_dict().items(), started.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9, msg=name)


def test_model_config_of_a_checkpoint_builds_the_model():
    assert isinstance(build_model(load_config("text8-tiny").model, "mdlm"), MaskedDiffusionLM)
    assert ModelConfig().mask_id == 27
