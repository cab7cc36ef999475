"""SEDD's score network on the shared backbone (model kind and objective `sedd`): the score-model protocol,
the float32 training loss against the float64 score entropy, training that lowers the loss and resumes
exactly, loading and export round trips, and `edlm sample` / `edlm eval nll` on the trained model."""

import json
import math

import pytest
import torch
from test_train_support import text8_dir, tiny_overrides  # noqa: F401

import edlm
from edlm.cli import main
from edlm.config import TrainConfig, load_config
from edlm.diffusion.sedd import GeometricNoise, LogLinearNoise, make_graph, score_entropy, training_score_entropy
from edlm.errors import EdlmError
from edlm.loading.checkpoint import load_model
from edlm.loading.pretrained import save_pretrained
from edlm.models import ModelConfig, build_model
from edlm.models.sedd import SEDDScoreModel
from edlm.train import train
from edlm.train.metrics import read_metrics

TINY = ModelConfig(vocab_size=7, n_layers=1, d_model=16, n_heads=2, cond_dim=16, max_seq_len=8)


def randomised(model: SEDDScoreModel, seed: int = 0) -> SEDDScoreModel:
    """The model with random output and adaLN layers (they start at zero), so its scores vary."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "output.linear" in name or "adaLN" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
    return model.eval()


def sedd_overrides(text8_dir, out, graph="absorb", noise="loglinear", **train):  # noqa: F811
    return tiny_overrides(text8_dir, out, **train) + ["train.objective=sedd", f"train.graph={graph}",
                                                      f"train.noise={noise}", "train.device=cpu"]


def test_the_model_follows_the_score_protocol():
    sigma = torch.tensor([1e-3, 0.5, 7.0])
    x = torch.tensor([[0, 7, 3, 7, 1, 2, 7, 6]] * 3)
    absorb = build_model(TINY, "sedd").eval()  # a fresh model: zero output layer
    assert absorb.graph == "absorb" and absorb.scale_by_sigma and absorb.noise is None
    assert not absorb.time_conditioned  # no time conditioning: g(xt) - log(e^sigma - 1), reusable
    with torch.no_grad():
        out = absorb(x, sigma)
    assert out.shape == (3, 8, 8) and out.dtype == torch.float32
    expected = -(sigma.double().expm1().log() + math.log(7)).float()  # SEDD's centring of a zero network
    assert torch.equal(out.gather(-1, x[..., None]), torch.zeros(3, 8, 1))  # 0 at y = xt
    torch.testing.assert_close(out[:, 0, 1], expected)
    uniform = build_model(TINY, "sedd", TrainConfig(graph="uniform"))
    assert uniform.graph == "uniform" and not uniform.scale_by_sigma and uniform.time_conditioned
    assert uniform(x.clamp(max=6), sigma).shape == (3, 8, 7)
    conditioned = SEDDScoreModel(ModelConfig(**{**TINY.__dict__, "time_conditioning": True}))
    assert conditioned.time_conditioned
    with pytest.raises(EdlmError, match="scale_by_sigma applies to the absorbing graph only"):
        SEDDScoreModel(TINY, "uniform", scale_by_sigma=True)
    with pytest.raises(EdlmError, match="model.causal=false"):
        SEDDScoreModel(ModelConfig(**{**TINY.__dict__, "causal": True, "adaln": False}))


@pytest.mark.parametrize("graph", ["absorb", "uniform"])
def test_training_loss_is_the_float64_score_entropy(graph):
    model = randomised(build_model(TINY, "sedd", TrainConfig(graph=graph)))
    g = make_graph(graph, 7)
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randint(7, (64, 8), generator=gen)
    sigma = torch.exp(torch.empty(64).uniform_(math.log(1e-4), math.log(20.0), generator=gen))
    xt = g.sample_transition(x0, sigma, gen)
    with torch.no_grad():
        log_score = model(xt, sigma).requires_grad_()
    lean = training_score_entropy(g, log_score, xt, x0, sigma)
    exact = score_entropy(g, log_score.detach(), xt, x0, sigma)
    assert lean.dtype == torch.float32 and lean.shape == (64, 8)
    torch.testing.assert_close(lean.double(), exact, rtol=1e-5, atol=1e-5)
    lean.sum().backward()
    assert torch.isfinite(log_score.grad).all() and log_score.grad.abs().sum() > 0
    # at the exact ratios every term is 0 (the float32 form keeps the Bregman structure)
    ratios = g.log_ratio(xt, x0, sigma[:, None]).float().clamp_min(-80.0)
    assert training_score_entropy(g, ratios, xt, x0, sigma).abs().max() < 1e-3
    if graph == "absorb":  # nothing absorbed: zero loss, and still a gradient for backward
        clean = torch.randint(7, (2, 8), generator=gen)
        scores = torch.zeros(2, 8, 8, requires_grad=True)
        loss = training_score_entropy(g, scores, clean, clean, torch.ones(2))
        loss.sum().backward()
        assert torch.equal(loss, torch.zeros(2, 8)) and torch.equal(scores.grad, torch.zeros(2, 8, 8))


def test_sedd_trains_resumes_exactly_and_loads(text8_dir, tmp_path, monkeypatch):  # noqa: F811
    settings = dict(steps=8, save_every=4, eval_every=4)
    whole = train(load_config("text8-tiny", sedd_overrides(text8_dir, tmp_path / "whole", **settings)), progress=False)
    half = sedd_overrides(text8_dir, tmp_path / "split", **settings)
    train(load_config("text8-tiny", half + ["train.steps=4"]), progress=False)
    resumed = train(load_config("text8-tiny", half), progress=False)
    assert whole.step == resumed.step == 8 and resumed.resumed_from == 4

    def rows(run):
        return [(r["step"], r.get("loss"), r.get("val_loss")) for r in read_metrics(run)]

    assert rows(tmp_path / "whole") == rows(tmp_path / "split")  # exact
    val = [r["val_loss"] for r in read_metrics(tmp_path / "whole") if "val_loss" in r]
    assert read_metrics(tmp_path / "whole")[-1]["val_metric"] == "score_entropy"
    assert val[-1] < val[0] and all(math.isfinite(v) for v in val), val

    with pytest.raises(EdlmError, match="train.graph='absorb' there, 'uniform' now"):
        train(load_config("text8-tiny", sedd_overrides(text8_dir, tmp_path / "whole", graph="uniform", **settings)),
              progress=False)

    model, cfg = load_model(tmp_path / "whole", device="cpu")
    other, _ = load_model(tmp_path / "split", device="cpu")
    assert isinstance(model, SEDDScoreModel) and model.graph == "absorb" and model.noise == LogLinearNoise(1e-3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    loaded = edlm.load(f"ckpt:{tmp_path / 'whole'}", device="cpu")
    x = edlm.sample(loaded, 3, 32, 8, predictor="analytic", generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 32) and int(x.max()) < 27
    result = edlm.nelbo(loaded, x, num_t=2, generator=torch.Generator().manual_seed(0))
    assert result.kind == "upper_bound" and bool(torch.isfinite(result.nats).all())

    # export -> pretrained directory -> bundled: the same scores, graph and noise
    save_pretrained(model, tmp_path / "bundle" / "tiny-sedd", config=cfg)
    monkeypatch.setenv("EDLM_BUNDLED_DIR", str(tmp_path / "bundle"))
    for spec in (str(tmp_path / "bundle" / "tiny-sedd"), "bundled:tiny-sedd"):
        again = edlm.load(spec, device="cpu")
        sigma = torch.full((3,), 0.7)
        with torch.no_grad():
            assert torch.equal(again(x, sigma), model(x, sigma)), spec
        assert again.graph == "absorb" and again.noise == model.noise


def test_uniform_geometric_run_records_its_graph_and_noise(text8_dir, tmp_path):  # noqa: F811
    overrides = sedd_overrides(text8_dir, tmp_path / "u", graph="uniform", noise="geometric", steps=2, eval_every=0)
    assert train(load_config("text8-tiny", overrides), progress=False).step == 2
    model, cfg = load_model(tmp_path / "u", device="cpu")
    assert (model.graph, cfg.train.graph, cfg.train.noise) == ("uniform", "uniform", "geometric")
    assert model.noise == GeometricNoise() and model.backbone.output.linear.weight.shape == (27, 32)
    x = edlm.sample(model, 2, 16, 4, predictor="euler", generator=torch.Generator().manual_seed(0))
    assert edlm.nelbo(model, x, num_t=2, generator=torch.Generator().manual_seed(0)).kind == "upper_bound"
    with pytest.raises(EdlmError, match="graph is 'uniform'; only an absorbing score model"):
        edlm.sample(model, 2, 16, 4, energy=lambda *a: torch.zeros(8, dtype=torch.float64), k=4, window=1.0)


@pytest.mark.parametrize("override,message", [
    ("train.graph=masked", "train.graph='masked' must be one of absorb, uniform"),
    ("train.noise=cosine", "train.noise='cosine' must be one of geometric, loglinear"),
])
def test_bad_sedd_settings_are_one_sentence(override, message):
    with pytest.raises(EdlmError, match=message):
        load_config("text8-tiny", ["train.objective=sedd", override])


def test_cli_samples_and_evaluates_a_sedd_model(text8_dir, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    train(load_config("text8-tiny", sedd_overrides(text8_dir, run, steps=2, eval_every=0)), progress=False)
    out = tmp_path / "s.jsonl"
    assert main(["sample", "--denoiser", str(run), "--predictor", "euler", "--steps", "4", "--num-samples", "2",
                 "--seq-len", "16", "--prefix", "the", "--device", "cpu", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 2 and all(r["sampler"] == "sedd" and r["predictor"] == "euler" for r in lines)
    assert all(r["text"].startswith("the") and len(r["ids"]) == 16 and r["ess_mean"] is None for r in lines)
    assert main(["sample", "--denoiser", str(run), "--steps", "2", "--num-samples", "1", "--seq-len", "8",
                 "--device", "cpu", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["predictor"] == "analytic"  # the default
    # with --energy the (absorbing) score model is the EDLM proposal; the bundled text8 AR model shares its tokenizer
    energy = ["--energy", "ar:bundled:text8-small-ar", "--k", "2", "--window", "0.5"]
    assert main(["sample", "--denoiser", str(run), *energy, "--steps", "4", "--num-samples", "2", "--seq-len", "16",
                 "--device", "cpu", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["sampler"] == "mdlm" and r["k"] == 2 and r["ess_mean"] is not None for r in lines)
    capsys.readouterr()
    refused = [(["--denoiser", str(run), *energy, "--predictor", "euler"], "--predictor selects SEDD's sampler"),
               (["--denoiser", str(run), "--unmasking", "confidence"], "--unmasking applies to the mdlm sampler only"),
               (["--denoiser", str(run), "--sampler", "glauber", "--energy", f"ar:{run}"],
                "--sampler glauber needs a masked diffusion --denoiser"),
               (["--predictor", "euler"], "--predictor applies to a score model")]
    for extra, message in refused:
        assert main(["sample", *extra, "--num-samples", "1", "--seq-len", "8", "--device", "cpu",
                     "--out", str(tmp_path / "x.jsonl")]) == 2
        assert message in capsys.readouterr().err
    assert main(["eval", "nll", str(run), "--split", "valid", "--max-sequences", "2", "--num-t", "2", "--device",
                 "cpu", "--data", str(text8_dir), "--out", str(tmp_path / "nll")]) == 0
    report = json.loads((tmp_path / "nll.json").read_text())["results"]
    assert report["kind"] == "upper_bound" and report["objective"] == "sedd" and math.isfinite(report["bpc"])
