"""EDLM-NCE: the loss, the negative sampler, the energy network, the known optimum on an enumerable
toy, the frozen denoiser during real training, exact resume, likelihood labels and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from test_train_support import text8_dir, tiny_overrides  # noqa: F401
from torch import nn

import edlm
from edlm.config import RunConfig, load_config
from edlm.energy import NCEEnergy
from edlm.errors import EdlmError
from edlm.models import CausalLM, MaskedDiffusionLM
from edlm.toy import FactorisedDenoiser, ToyDistribution
from edlm.loading.checkpoint import load_model
from edlm.train import train
from edlm.train.checkpointing import save_checkpoint
from edlm.train.metrics import read_metrics
from edlm.train.nce_objective import NCEObjective, draw_negatives, nce_loss
from edlm.train.order import DataPosition
from edlm.util.device import cpu_threads

TINY_MODEL = ["model.n_layers=1", "model.d_model=32", "model.n_heads=2", "model.cond_dim=32", "model.max_seq_len=32",
              "data.seq_len=32"]


def write_checkpoint(out, overrides=(), causal=False):
    """A random-weight checkpoint (no training) of the tiny model: mdlm, or ar with causal=True."""
    extra = ["train.objective=ar", "model.causal=true", "model.adaln=false"] if causal else []
    cfg = load_config("text8-tiny", TINY_MODEL + ["data.seq_len=32", *extra, *overrides])
    torch.manual_seed(0)
    model = (CausalLM if causal else MaskedDiffusionLM)(cfg.model)
    save_checkpoint(out, step=1, position=DataPosition(0, 0), config=cfg, model=model, ema_model=model,
                    optimizer=torch.optim.AdamW(model.parameters()))
    return out


@pytest.fixture(scope="module")
def mdlm_ckpt(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("nce") / "mdlm")


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one intra-op thread is fastest, and it avoids OpenMP spin-waiting when
    the test machine's cores are shared."""
    with cpu_threads(1):
        yield


def nce_overrides(text8_dir, out, init_from, **train):  # noqa: F811
    return tiny_overrides(text8_dir, out, **{"objective": "nce", "init_from": str(init_from), "nce_negatives": 2,
                                             **train})


# --------------------------------------------------------------------------------------------------
# pieces


def test_nce_loss_is_float64_logsigmoid():
    zero = nce_loss(torch.zeros(3), torch.zeros(3, 4))
    assert zero.dtype == torch.float64 and zero.item() == pytest.approx(2 * math.log(2), abs=1e-12)
    e_pos = torch.tensor([0.3, -1.0], requires_grad=True)
    e_neg = torch.tensor([[0.5, -0.2, 2.0], [1.0, 0.0, -3.0]], requires_grad=True)
    loss = nce_loss(e_pos, e_neg)
    ref = (-torch.log(torch.sigmoid(-e_pos.double())) - torch.log(torch.sigmoid(e_neg.double())).mean(1)).mean()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12)
    loss.backward()
    assert e_pos.grad[0] > 0 and (e_neg.grad < 0).all()  # push positives down, negatives up
    # Far in the tails logsigmoid stays finite and exact where log(sigmoid + eps) would saturate.
    tail = nce_loss(torch.tensor([800.0]), torch.tensor([[-800.0]]))
    assert tail.item() == pytest.approx(1600.0, rel=1e-12)


def test_draw_negatives_is_the_factorised_proposal():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4)
    logits[0, 1, 2] = float("-inf")  # probability 0: never drawn
    xt = torch.tensor([[4, 4, 1], [0, 4, 4]])
    n = 40_000
    u = torch.rand(2, n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    neg = draw_negatives(logits, xt, 4, u)
    assert neg.shape == (2, n, 3) and neg.dtype == torch.long
    assert (neg[0, :, 2] == 1).all() and (neg[1, :, 0] == 0).all()  # visible tokens carried over (SUBS)
    assert not (neg[0, :, 1] == 2).any()
    for b, i in ((0, 0), (0, 1), (1, 1), (1, 2)):
        freq = torch.bincount(neg[b, :, i], minlength=4).double() / n
        expected = torch.softmax(logits[b, i].double(), -1)
        assert (freq - expected).abs().max() < 4 * math.sqrt(0.25 / n), (b, i)  # 4 standard errors
    assert torch.equal(draw_negatives(logits, xt, 4, u[:, :5]), neg[:, :5])  # a function of u only


def test_energy_is_zero_at_init_and_reads_x0_mask_pattern_and_t():
    cfg = load_config("text8-tiny", TINY_MODEL + ["model.time_conditioning=true"]).model
    torch.manual_seed(0)
    denoiser = MaskedDiffusionLM(cfg)
    energy = NCEEnergy.from_denoiser(denoiser)
    for name, value in denoiser.backbone.state_dict().items():
        if not name.startswith("output.linear."):
            assert torch.equal(energy.backbone.state_dict()[name], value), name
    assert not any(n.startswith("backbone.output.linear") for n, _ in energy.named_parameters())
    x0 = torch.randint(0, 27, (4, 12), generator=torch.Generator().manual_seed(0))
    xt = x0.clone()
    xt[:, ::3] = 27
    t = torch.full((4,), 0.5)
    e = energy(x0, xt, t, torch.zeros(4, dtype=torch.float64))
    assert e.dtype == torch.float64 and e.shape == (4,) and torch.equal(e, torch.zeros(4, dtype=torch.float64))
    assert isinstance(energy, edlm.energy.Energy) and energy.vocab_size == 27 and energy.mask_id == 27
    with torch.no_grad():  # give the zero-initialised parts some weight
        torch.nn.init.normal_(energy.head.weight, std=1.0)
        torch.nn.init.normal_(energy.xt_embed.weight, std=1.0)
    e = energy(x0, xt, t)
    assert not torch.allclose(e, energy(x0, x0, t))  # sees the mask pattern of xt
    assert not torch.allclose(e, energy(x0, xt, torch.full((4,), 0.9)))  # sees t (time conditioning on)
    assert not torch.allclose(e, energy(torch.roll(x0, 1, dims=1), xt, t))  # sees x0
    torch.testing.assert_close(energy(x0[1:2], xt[1:2], t[1:2]), e[1:2], rtol=1e-5, atol=1e-5)  # rows are independent
    with pytest.raises(EdlmError, match="max_seq_len=32"):
        energy(torch.zeros(1, 40, dtype=torch.long), torch.zeros(1, 40, dtype=torch.long), t[:1])


# --------------------------------------------------------------------------------------------------
# the known optimum


class TabularEnergy(nn.Module):
    """A free parameter per (xt, x0) pair of a toy distribution (ignores t). Energy protocol."""

    def __init__(self, dist: ToyDistribution) -> None:
        super().__init__()
        self.dist, self.vocab_size, self.mask_id = dist, dist.vocab_size, dist.vocab_size
        self.table = nn.Parameter(torch.zeros((dist.vocab_size + 1) ** dist.seq_len, len(dist.probs),
                                              dtype=torch.float64))

    def forward(self, x0, xt, t=None, proposal_logp=None):
        powers = (self.vocab_size + 1) ** torch.arange(xt.shape[1] - 1, -1, -1)
        return self.table[(xt * powers).sum(-1), self.dist.index(x0)]


def test_nce_training_reaches_the_optimal_residual_energy_and_improves_sampling():
    """Data q: a random distribution over 3**3 sequences; proposal mu: its per-position marginals
    (factorised, blind to xt). A tabular energy trained by NCEObjective.prepare / loss (the code the
    training loop runs) must approach E* = log mu(x0|xt) - log q(x0|xt), whose spread over x0 is
    2-3.5 nats here. Tolerance 0.2 nats: the gap left is Monte Carlo noise of the stochastic
    gradients (4096 rows x 400 steps); over 5 data seeds the largest gap seen was 0.12. A wrong loss
    misses by far more: E = 0 is off by > 1 nat; the opposite sign by twice the spread; summing the K
    negative terms instead of averaging shifts E by log K = 1.39 (caught by the uncentered check,
    which holds because equal class weights make Z(xt) = 1 at the optimum)."""
    V, L, K = 3, 3, 4
    dist = ToyDistribution.random(V, L, torch.Generator().manual_seed(0))
    denoiser = FactorisedDenoiser(dist)
    energy = TabularEnergy(dist)
    cfg = RunConfig()
    cfg.train.nce_negatives, cfg.train.nce_t_min = K, 0.3
    objective = NCEObjective(cfg, energy, torch.device("cpu"), denoiser=denoiser)
    steps = 400
    opt = torch.optim.Adam(energy.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x0 = dist.sample(4096, gen)
        loss = objective.loss(energy, x0, objective.prepare(x0, gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

    log_marg = torch.log_softmax(denoiser.logits.double(), dim=-1)  # [L, V]
    seqs = dist.sequences
    for xt in ([3, 3, 3], [0, 3, 3], [3, 1, 3], [3, 3, 2], [1, 3, 0]):
        xt = torch.tensor(xt)
        consistent = ((seqs == xt) | (xt == V)).all(-1)
        x = seqs[consistent]
        log_mu = (log_marg[torch.arange(L), x] * (xt == V)).sum(-1)
        q = dist.probs[consistent]
        e_star = log_mu - (q / q.sum()).log()
        e = energy(x, xt.expand(len(x), -1)).detach()
        centered = (e - e.mean()) - (e_star - e_star.mean())
        assert centered.abs().max() < 0.2, (xt.tolist(), centered)
        assert (e - e_star).abs().max() < 0.25, (xt.tolist(), e - e_star)
        assert (e_star - e_star.mean()).abs().max() > 1.0  # the test is not trivially passed by E = 0

    # The corrected one-step kernel at the all-masked xt, exactly, and the full sampler, by sampling.
    full = torch.tensor([V] * L)
    log_mu = log_marg[torch.arange(L), seqs].sum(-1)
    corrected = torch.softmax(log_mu - energy(seqs, full.expand(len(seqs), -1)).detach(), 0)
    assert 0.5 * (corrected - dist.probs).abs().sum() < 0.02 < 0.2 < 0.5 * (log_mu.exp() - dist.probs).abs().sum()
    n = 4000
    energy.eval()
    plain = edlm.sample(denoiser, n, L, L, generator=torch.Generator().manual_seed(3))
    corrected_samples = edlm.sample(denoiser, n, L, L, energy=energy, k=16, window=1.0,
                                    generator=torch.Generator().manual_seed(3))
    floor = dist.expected_tv(n)  # E[TV] of n exact draws, about 0.028
    assert dist.tv(plain) > 0.2 and dist.tv(corrected_samples) < 2 * floor < dist.tv(plain) / 3


# --------------------------------------------------------------------------------------------------
# the training loop


def test_frozen_denoiser_stays_frozen_and_in_eval_mode(text8_dir, mdlm_ckpt, tmp_path):  # noqa: F811
    from edlm.train.loop import Trainer
    from edlm.train.runtime import runtime

    cfg = load_config("text8-tiny", nce_overrides(text8_dir, tmp_path / "run", mdlm_ckpt, steps=3, eval_every=2,
                                                  save_every=0))
    with runtime("cpu") as rt:
        trainer = Trainer(cfg, rt, progress=False)
        denoiser = trainer.objective.denoiser
        before = {k: v.clone() for k, v in denoiser.state_dict().items()}
        energy_before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        modes, forward = [], denoiser.forward

        def spy(*args, **kwargs):
            modes.append((denoiser.training, torch.is_grad_enabled()))
            return forward(*args, **kwargs)

        denoiser.forward = spy
        trainer.run()
    assert len(modes) == 3 + 2 * 2  # 3 training steps, 2 validations of 2 batches
    assert all(mode == (False, False) for mode in modes)  # eval mode, no graph, at every call
    assert not denoiser.training and not any(p.requires_grad for p in denoiser.parameters())
    assert all(torch.equal(v, before[k]) for k, v in denoiser.state_dict().items())  # bit for bit
    in_optimizer = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not in_optimizer & {id(p) for p in denoiser.parameters()}
    assert in_optimizer == {id(p) for p in trainer.model.parameters()}
    assert trainer.model.training  # the energy itself does train
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, energy_before[k])]
    assert "head.weight" in changed and len(changed) > 5


def test_nce_resume_and_grad_accumulation(text8_dir, mdlm_ckpt, tmp_path):  # noqa: F811
    settings = dict(steps=4, save_every=2, eval_every=2)
    whole = tmp_path / "whole"
    train(load_config("text8-tiny", nce_overrides(text8_dir, whole, mdlm_ckpt, **settings)), progress=False)
    split = tmp_path / "split"
    train(load_config("text8-tiny", nce_overrides(text8_dir, split, mdlm_ckpt, **{**settings, "steps": 2})),
          progress=False)
    result = train(load_config("text8-tiny", nce_overrides(text8_dir, split, mdlm_ckpt, **settings)), progress=False)
    assert result.resumed_from == 2

    def rows(run):
        return [(r["step"], r.get("loss"), r.get("val_loss")) for r in read_metrics(run)]

    assert rows(split) == rows(whole) and len(rows(whole)) == 6  # exact, not approximately
    assert rows(whole)[0][1] == pytest.approx(2 * math.log(2), abs=1e-6)  # E = 0 at step 0
    for name in ("model", "ema", "optimizer"):
        a = load_file(str(split / "checkpoints" / "step_00000004" / f"{name}.safetensors"))
        b = load_file(str(whole / "checkpoints" / "step_00000004" / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a), name

    # Negatives come from uniforms drawn for the global batch: accumulation changes nothing but rounding.
    accum = tmp_path / "accum"
    train(load_config("text8-tiny", nce_overrides(text8_dir, accum, mdlm_ckpt, grad_accum=4, **settings)),
          progress=False)
    for (s1, l1, v1), (s2, l2, v2) in zip(rows(whole), rows(accum)):
        assert s1 == s2 and (l1 or 0) == pytest.approx(l2 or 0, rel=1e-5) and (v1 or 0) == pytest.approx(v2 or 0, rel=1e-5)

    energy = edlm.load_energy(f"nce:{whole}", device="cpu")
    assert isinstance(energy, NCEEnergy) and not energy.training


# --------------------------------------------------------------------------------------------------
# likelihood


def test_nelbo_with_the_nce_energy_runs_and_is_labelled():
    cfg = load_config("text8-tiny", TINY_MODEL).model
    torch.manual_seed(0)
    denoiser = MaskedDiffusionLM(cfg).eval()
    energy = NCEEnergy.from_denoiser(denoiser).eval()
    x0 = torch.randint(0, 27, (3, 10), generator=torch.Generator().manual_seed(0))

    def zero(x, xt, t, logp):
        return torch.zeros(x.shape[0], dtype=torch.float64)

    for estimator, kind in (("paper_eq13", "paper_eq13"), ("marginal", "estimate")):
        ours = edlm.nelbo(denoiser, x0, energy=energy, num_t=2, num_z=4, estimator=estimator,
                          generator=torch.Generator().manual_seed(1))
        ref = edlm.nelbo(denoiser, x0, energy=zero, num_t=2, num_z=4, estimator=estimator,
                         generator=torch.Generator().manual_seed(1))
        assert ours.kind == kind and torch.isfinite(ours.nats).all()
        torch.testing.assert_close(ours.nats, ref.nats)  # E = 0 at init: EDLM-NCE starts as MDLM
    with torch.no_grad():
        torch.nn.init.normal_(energy.head.weight, std=1.0)
    moved = edlm.nelbo(denoiser, x0, energy=energy, num_t=2, num_z=4, estimator="paper_eq13",
                       generator=torch.Generator().manual_seed(1))
    assert moved.kind == "paper_eq13" and not torch.allclose(moved.nats, ref.nats)


# --------------------------------------------------------------------------------------------------
# bad input


def test_bad_nce_input_raises_edlm_error(text8_dir, mdlm_ckpt, tmp_path):  # noqa: F811
    ar = write_checkpoint(tmp_path / "ar", causal=True)
    mdlm30 = write_checkpoint(tmp_path / "mdlm30", ["model.vocab_size=30"])
    cases = [
        ({"init_from": ""}, "needs train.init_from"),
        ({"init_from": str(tmp_path / "missing")}, "does not exist"),
        ({"init_from": str(ar)}, "is a causal LM; NCE needs the mdlm"),
        ({"init_from": str(mdlm30)}, "model.vocab_size=30 but this run has model.vocab_size=27"),
        ({"nce_negatives": 0}, "train.nce_negatives=0"),
        ({"nce_t_min": 1.0}, "train.nce_t_min=1.0"),
    ]
    for override, message in cases:
        values = {"init_from": str(mdlm_ckpt), **override}
        with pytest.raises(EdlmError, match=message):  # the config itself refuses some values
            train(load_config("text8-tiny", nce_overrides(text8_dir, tmp_path / "bad", **values)), progress=False)
    cfg = load_config("text8-tiny", nce_overrides(text8_dir, tmp_path / "bad", mdlm_ckpt) + ["model.n_layers=2"])
    with pytest.raises(EdlmError, match="n_layers=1 vs 2"):
        train(cfg, progress=False)
    with pytest.raises(EdlmError, match="needs an NCE energy, but .* is a masked diffusion model"):
        edlm.load_energy(f"nce:{mdlm_ckpt}")
    denoiser30, _ = load_model(mdlm30, device="cpu")
    energy27 = NCEEnergy(load_config("text8-tiny", TINY_MODEL).model)
    with pytest.raises(EdlmError, match="vocab_size=27 but the denoiser has vocab_size=30"):
        edlm.sample(denoiser30, 1, 8, 2, energy=energy27, k=2, window=1.0)
