"""Glauber diffusion training: the UL2-style model, the glauber objective (exact and seed-literal losses)
and the ul2 mixture of denoisers, through the objective protocol, `edlm.train.train` and `edlm sample`.

The toy part (V = 3, L = 4, N = 2 rounds, T = 8) trains a tabular reverse model - one logit vector per
(step s, context x_{-j}) - through `GlauberObjective.prepare` / `loss` with a fixed frozen model F (the
exact conditionals of another toy distribution) and compares its conditionals with the exact ones,
weighted by how often the chain visits each context (p_{s-1}(x_{-j})): the exact loss learns
p_{s-1}(x_j | x_{-j}); the seed-literal loss learns F(x_j | x_{-j}), the frozen model's own conditional.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from test_train_support import text8_dir, tiny_overrides  # noqa: F401
from torch import nn

import edlm
from edlm.cli import main
from edlm.config import DataConfig, RunConfig, load_config
from edlm.errors import EdlmError
from edlm.models import ModelConfig, build_model
from edlm.models.ul2 import UL2Model
from edlm.sampling.glauber_diffusion import forward_steps
from edlm.toy import ExactDenoiser, ToyDistribution, glauber_marginals
from edlm.train import train
from edlm.train.glauber_objective import GlauberObjective, exact_reverse_loss, seed_score_entropy
from edlm.train.metrics import read_metrics
from edlm.train.ul2_objective import DENOISERS, UL2Objective, span_mask
from edlm.util.device import cpu_threads

V, L = 3, 4


@pytest.fixture(autouse=True)
def one_thread():
    with cpu_threads(1):
        yield


def tiny_ul2() -> UL2Model:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=5, n_layers=1, d_model=16, n_heads=2, cond_dim=16, max_seq_len=8, adaln=False)
    return UL2Model(config)


# ---------------------------------------------------------------- the UL2-style model
def test_ul2_model_modes_attention_and_zero_initialised_time():
    model = tiny_ul2().eval()
    x = torch.randint(5, (3, 8), generator=torch.Generator().manual_seed(0))
    xt = x.clone()
    xt[:, 2] = 5
    changed = xt.clone()
    changed[:, 6] = (changed[:, 6] + 1) % 5
    with torch.no_grad():
        assert not torch.allclose(model(xt, None)[:, 2], model(changed, None)[:, 2])  # infill: bidirectional
        a, b = model.causal_logits(x), model.causal_logits(torch.where(torch.arange(8) == 6, (x + 1) % 5, x))
        assert torch.equal(a[:, :7], b[:, :7])  # causal: position i sees x_<i only
        t = torch.tensor([0.1, 0.5, 1.0])
        assert torch.equal(model(xt, t), model(xt, None))  # the time input starts at zero
        nn.init.normal_(model.time_proj.weight)
        assert not torch.allclose(model(xt, t), model(xt, None))
        # the KV-cache decoding of the causal mode agrees with the full causal pass
        cache = model.new_cache(3, 8)
        steps = [model.next_logits(torch.cat([torch.full((3, 1), 5), x[:, :3]], 1), cache)]
        steps += [model.next_logits(x[:, 3 + i:4 + i], cache) for i in range(4)]
        assert torch.allclose(torch.stack(steps, 1), a[:, 3:8], atol=1e-5)
        assert torch.allclose(model.token_logprobs(x), torch.log_softmax(a, -1).gather(-1, x[..., None])[..., 0])
    config = ModelConfig(vocab_size=5, n_layers=1, d_model=16, n_heads=2, cond_dim=16, max_seq_len=8)
    assert type(build_model(config, "ul2")) is UL2Model and type(build_model(config, "glauber")) is UL2Model
    with pytest.raises(EdlmError, match="model.causal=false"):
        UL2Model(ModelConfig(causal=True))
    with pytest.raises(EdlmError, match="model.time_conditioning=false"):
        UL2Model(ModelConfig(time_conditioning=True))


# ---------------------------------------------------------------- the toy world
@pytest.fixture(scope="module")
def toy():
    generator = torch.Generator().manual_seed(1)
    data = ToyDistribution.random(V, L, generator)
    frozen = ToyDistribution.random(V, L, generator)
    perms = edlm.glauber_diffusion.fixed_order(2, L)
    return data, frozen, perms, glauber_marginals(data, frozen, perms)


class TableModel(nn.Module):
    """A tabular reverse model: logits table[s - 1, index of x with the masked site read as 0], at every position."""

    vocab_size = V

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self.table = nn.Parameter(torch.zeros(steps, V ** L, V))
        self.powers = V ** torch.arange(L - 1, -1, -1)

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        s = (t.double() * self.steps).round().long()
        index = (torch.where(xt == V, 0, xt) * self.powers).sum(-1)
        return self.table[s - 1, index][:, None].expand(-1, L, -1)

    def conditional(self, s: int, site: int, seqs: torch.Tensor) -> torch.Tensor:
        """Float64[81, V]: the model's conditional at step s for every sequence's context x_{-site}."""
        zeroed = seqs.clone()
        zeroed[:, site] = 0
        return self.table[s - 1, (zeroed * self.powers).sum(-1)].detach().double().softmax(-1)


def conditionals(probs: torch.Tensor, seqs: torch.Tensor, site: int) -> torch.Tensor:
    """Float64[81, V]: probs(x_site = v | x_{-site}) for the context of every sequence."""
    others = [i for i in range(L) if i != site]
    rest = (seqs[:, None, others] == seqs[None, :, others]).all(-1).double()
    mass = (rest * probs[None]) @ torch.nn.functional.one_hot(seqs[:, site], V).double()
    return mass / mass.sum(1, keepdim=True)


def visited_tv(table: TableModel, target, toy) -> float:
    """Mean over s of sum_x p_{s-1}(x) TV(model(. | x_{-j}, s), target(s, j)(. | x_{-j}))."""
    data, _, perms, marginals = toy
    total = perms.numel()
    out = 0.0
    for s in range(1, total + 1):
        site = int(perms[(s - 1) // L, (s - 1) % L])
        gap = 0.5 * (table.conditional(s, site, data.sequences) - target(s, site)).abs().sum(1)
        out += float((marginals[s - 1] * gap).sum()) / total
    return out


def toy_cfg(loss: str) -> RunConfig:
    cfg = RunConfig(model=ModelConfig(vocab_size=V, max_seq_len=L), data=DataConfig(seq_len=L))
    cfg.train.glauber_rounds, cfg.train.glauber_snapshots, cfg.train.glauber_loss = 2, 2 * L, loss
    return cfg


def train_table(toy, loss: str, steps: int = 300) -> TableModel:
    data, frozen, perms, _ = toy
    model = TableModel(perms.numel())
    objective = GlauberObjective(toy_cfg(loss), model, torch.device("cpu"), frozen=ExactDenoiser(frozen))
    assert torch.equal(objective.permutations, perms)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1 - k / steps)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x0 = data.sample(256, generator)
        value = objective.loss(model, x0, objective.prepare(x0, generator))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        schedule.step()
    return model


def test_exact_loss_learns_the_conditionals_one_step_earlier(toy):
    data, frozen, _, marginals = toy
    model = train_table(toy, "exact")
    exact = visited_tv(model, lambda s, j: conditionals(marginals[s - 1], data.sequences, j), toy)
    own = visited_tv(model, lambda s, j: conditionals(frozen.probs, data.sequences, j), toy)
    assert exact < 0.03 and own > 0.1, (exact, own)  # 300 Adam steps of 256 chains: ~0.016 left


def test_seed_literal_loss_learns_the_frozen_models_own_conditional(toy):
    data, frozen, _, marginals = toy
    model = train_table(toy, "seed")
    exact = visited_tv(model, lambda s, j: conditionals(marginals[s - 1], data.sequences, j), toy)
    own = visited_tv(model, lambda s, j: conditionals(frozen.probs, data.sequences, j), toy)
    assert own < 1e-3 and exact > 0.1, (exact, own)


def test_the_two_losses_and_their_minimisers():
    generator = torch.Generator().manual_seed(0)
    log_f = torch.log_softmax(torch.randn(6, V, generator=generator, dtype=torch.float64), -1)
    after = torch.randint(V, (6,), generator=generator)
    assert float(seed_score_entropy(log_f.float(), log_f, after)) == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(6, V, generator=generator)
    assert float(seed_score_entropy(other, log_f, after)) > 0.01
    # the seed loss is zero at q = F whatever the post-step token, so no data can move its optimum
    logits = torch.randn(6, V, generator=generator)
    before = torch.randint(V, (6,), generator=generator)
    expected = -torch.log_softmax(logits, -1)[torch.arange(6), before].mean()
    assert float(exact_reverse_loss(logits, before)) == pytest.approx(float(expected), rel=1e-6)


def test_prepare_draws_for_the_global_batch_and_loss_splits_over_rows(toy):
    data, frozen, perms, _ = toy
    objective = GlauberObjective(toy_cfg("exact"), TableModel(8), torch.device("cpu"), frozen=ExactDenoiser(frozen))
    x0 = data.sample(6, torch.Generator().manual_seed(0))
    batch = objective.prepare(x0, torch.Generator().manual_seed(3))
    again = objective.prepare(x0, torch.Generator().manual_seed(3))
    assert all(torch.equal(batch[k], again[k]) for k in batch)
    assert batch["u"].shape == (6, 8) and batch["u"].dtype == torch.float64 and batch["times"].shape == (6, 8)
    assert all(sorted(row.tolist()) == list(range(1, 9)) for row in batch["times"])  # K = T: every step once
    model = TableModel(8)
    nn.init.normal_(model.table, generator=torch.Generator().manual_seed(0))
    whole = objective.loss(model, x0, batch)
    halves = [objective.loss(model, x0[r], {k: v[r] for k, v in batch.items()}) for r in (slice(0, 3), slice(3, 6))]
    assert float(whole) == pytest.approx(float(sum(halves) / 2), rel=1e-6)


def test_snapshots_are_the_pre_step_states_and_tokens(toy):
    data, frozen, perms, _ = toy
    cfg = toy_cfg("exact")
    cfg.train.glauber_snapshots = 3
    objective = GlauberObjective(cfg, TableModel(8), torch.device("cpu"), frozen=ExactDenoiser(frozen))
    x0 = data.sample(5, torch.Generator().manual_seed(0))
    batch = objective.prepare(x0, torch.Generator().manual_seed(1))
    snap = objective.snapshots_of(x0, batch["u"], batch["times"])
    assert snap["masked"].shape == (15, L)
    # replay each row's chain alone on its own uniforms: x_{s-1} and its site's token are the snapshot's
    for b in range(5):
        for s in batch["times"][b].tolist():
            state = x0[b:b + 1].clone()
            for step in forward_steps(ExactDenoiser(frozen), x0[b:b + 1], perms, batch["u"][b:b + 1, :s - 1]):
                state[:, step.site] = step.after
            site = int(perms[(s - 1) // L, (s - 1) % L])
            masked = state.clone()
            masked[:, site] = V
            hit = ((snap["s"] == s) & (snap["row"] == b)).nonzero().squeeze(1)
            assert hit.numel() == 1 and torch.equal(snap["masked"][hit], masked)
            assert int(snap["before"][hit]) == int(state[0, site]) and int(snap["site"][hit]) == site


# ---------------------------------------------------------------- the ul2 mixture
def test_ul2_mixture_masks_each_denoiser_as_documented():
    cfg = RunConfig(model=ModelConfig(vocab_size=5, n_layers=1, d_model=16, n_heads=2, cond_dim=16, max_seq_len=64),
                    data=DataConfig(seq_len=64))
    model = build_model(cfg.model, "ul2")
    objective = UL2Objective(cfg, model, torch.device("cpu"))
    assert not model.time_proj.weight.requires_grad and not model.time_embed.mlp[0].weight.requires_grad
    x0 = torch.randint(5, (400, 64), generator=torch.Generator().manual_seed(0))
    batch = objective.prepare(x0, torch.Generator().manual_seed(1))
    masked = batch["xt"] == 5
    assert torch.equal(batch["xt"][~masked], x0[~masked])
    assert not masked[batch["causal"]].any() and masked[~batch["causal"]].any(1).all()
    assert 0.15 < float(batch["causal"].float().mean()) < 0.35
    u = torch.rand((4000, 256, 2), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert float(span_mask(u, 0.15, 3.0).float().mean()) == pytest.approx(0.15, abs=0.01)
    assert float(span_mask(u, 0.5, 32.0).float().mean()) == pytest.approx(0.46, abs=0.02)  # edge effect at the start
    assert DENOISERS == ("causal", "prefix", "short", "long")
    value = objective.loss(model, x0[:16], {k: v[:16] for k, v in batch.items()})
    assert value.dtype == torch.float32 and math.isfinite(float(value))


# ---------------------------------------------------------------- through the training loop and the CLI
def glauber_overrides(text8_dir, out, **train):  # noqa: F811
    values = {"objective": "glauber", "glauber_snapshots": 4, "glauber_rounds": 1, **train}
    return tiny_overrides(text8_dir, out, **values)


def test_glauber_training_learns_resumes_exactly_and_samples(text8_dir, tmp_path, capsys):  # noqa: F811
    settings = dict(steps=4, save_every=2, eval_every=2)
    pre = tmp_path / "ul2"
    train(load_config("text8-tiny", tiny_overrides(text8_dir, pre, objective="ul2", steps=2)), progress=False)
    whole = tmp_path / "whole"
    train(load_config("text8-tiny", glauber_overrides(text8_dir, whole, init_from=str(pre), **settings)),
          progress=False)
    split = tmp_path / "split"
    train(load_config("text8-tiny", glauber_overrides(text8_dir, split, init_from=str(pre),
                                                      **{**settings, "steps": 2})), progress=False)
    result = train(load_config("text8-tiny", glauber_overrides(text8_dir, split, init_from=str(pre), **settings)),
                   progress=False)
    assert result.resumed_from == 2

    def rows(run):
        return [(r["step"], r.get("loss"), r.get("val_loss")) for r in read_metrics(run)]

    assert rows(split) == rows(whole)  # exact, not approximately
    for name in ("model", "ema", "optimizer"):
        a = load_file(str(split / "checkpoints" / "step_00000004" / f"{name}.safetensors"))
        b = load_file(str(whole / "checkpoints" / "step_00000004" / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a), name
    # the Glauber model starts as the pre-trained one (zero time input): same weights but the time path
    start = edlm.load(str(pre))
    assert isinstance(start, UL2Model) and float(start.time_proj.weight.abs().max()) == 0

    # the loss decreases over a few more steps (from scratch, lr 3e-3)
    scratch = tmp_path / "scratch"
    train(load_config("text8-tiny", glauber_overrides(text8_dir, scratch, steps=12, eval_every=0)), progress=False)
    losses = [r["loss"] for r in read_metrics(scratch) if "loss" in r]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.2, losses

    out = tmp_path / "samples.jsonl"
    assert main(["sample", "--sampler", "glauber-diffusion", "--denoiser", str(whole), "--num-samples", "3",
                 "--seq-len", "32", "--prefix", "the ", "--block", "2", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 3 and all(line["text"].startswith("the ") and len(line["ids"]) == 32 for line in lines)
    assert lines[0]["sampler"] == "glauber-diffusion" and lines[0]["rounds"] == 1 and lines[0]["block"] == 2
    for argv, message in [
        (["--rounds", "2"], "differs from the 1 round"),
        (["--seq-len", "16"], "--seq-len 16 differs from the length 32"),
    ]:
        capsys.readouterr()
        assert main(["sample", "--sampler", "glauber-diffusion", "--denoiser", str(whole), "--out",
                     str(tmp_path / "x.jsonl"), *argv]) == 2
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--energy", "ar:bundled:text8-small-ar"], "--energy does not apply to --sampler glauber-diffusion"),
    (["--parallel", "2"], "--parallel does not apply"),
    (["--no-metropolis", "--steps", "4"], "--steps, --no-metropolis do not apply"),
    (["--k", "2"], "--k applies to --sampler mdlm only"),
    (["--rounds", "0"], "--rounds 0 must be at least 1"),
    (["--block", "0"], "--block 0 must be at least 1"),
    (["--denoiser", "bundled:text8-small-mdlm"], "needs a UL2-style model"),
])
def test_sample_refuses_what_does_not_apply(tmp_path, capsys, argv, message):
    assert main(["sample", "--sampler", "glauber-diffusion", "--out", str(tmp_path / "s.jsonl"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_glauber_config_errors(text8_dir, tmp_path):  # noqa: F811
    with pytest.raises(EdlmError, match="train.glauber_loss='bad' must be one of exact, seed"):
        load_config("text8-tiny", glauber_overrides(text8_dir, tmp_path / "a", glauber_loss="bad"))
    with pytest.raises(EdlmError, match="train.glauber_rounds=0 must be at least 1"):
        load_config("text8-tiny", glauber_overrides(text8_dir, tmp_path / "b", glauber_rounds=0))
    with pytest.raises(EdlmError, match="train.glauber_snapshots=40 exceeds the chain's T"):
        train(load_config("text8-tiny", glauber_overrides(text8_dir, tmp_path / "c", glauber_snapshots=40)),
              progress=False)
