"""Glauber diffusion's bound over a split (`edlm.likelihood.glauber_split`) and `edlm eval nll` on a Glauber-trained
model. On the enumerable toy world of test_glauber_diffusion.py (V = 3, L = 4, N = 2 rounds): with the exact
reverse conditionals and p_causal = p_T the split's bound is the data's exact NLL, in both perplexity orders, with
zero variance; with F's own conditionals as the reverse model and another causal model, its Monte Carlo value
matches its exact expectation, which lies above the model's exact NLL. Through the command: the numbers equal the
library's under the same generator, with the EMA weights as F."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from test_glauber_diffusion import L, V, world  # noqa: F401
from test_glauber_training import glauber_overrides
from test_train_support import text8_dir  # noqa: F401

from edlm.cli import main
from edlm.config import load_config
from edlm.data import load_split
from edlm.likelihood.glauber_split import glauber_split_likelihood
from edlm.loading.specs import load_spec
from edlm.toy import ExactCausalLM, ExactDenoiser, ScheduledDenoiser, ToyDistribution, heat_bath_kernel
from edlm.train import train
from edlm.util.device import cpu_threads


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with cpu_threads(1):
        yield


def test_split_bound_with_exact_conditionals_is_the_exact_nll(world):  # noqa: F811
    data, frozen, perms, marginals = world  # perms = fixed_order(2, L), what the split bound uses for rounds=2
    x0 = data.sequences[::5]
    result = glauber_split_likelihood(ScheduledDenoiser(marginals, V, L), x0, rounds=2, frozen=ExactDenoiser(frozen),
                                      lm=ExactCausalLM(ToyDistribution(V, L, marginals[-1])), num_chains=3,
                                      batch_size=4, generator=torch.Generator().manual_seed(0))
    nll = data.nll(x0)
    assert result.kind == "upper_bound" and result.num_sequences == len(x0) and result.num_tokens == len(x0) * L
    assert result.nats_per_token == pytest.approx(float(nll.sum()) / (len(x0) * L), abs=1e-6)
    assert result.ppl_mean_of_sequences == pytest.approx(float((nll / L).exp().mean()), abs=1e-5)
    assert result.stderr < 1e-6  # every chain gives -log p(x0)


def test_split_bound_matches_its_exact_expectation_above_the_models_nll(world):  # noqa: F811
    """Reverse = F's own conditionals, p_causal another distribution c. F's conditionals are those of p_F, so the
    integrand telescopes to log p_F(x_T) - log p_F(x0) - log c(x_T): its expectation is
    -log p_F(x0) + E[log p_F(x_T) - log c(x_T)], x_T ~ the forward chain from x0; the model is c followed by F's
    heat-bath steps in reverse order, with exact NLL -log (c K_T ... K_1)[x0]."""
    data, frozen, perms, _ = world
    causal = ToyDistribution.random(V, L, torch.Generator().manual_seed(7))
    kernels = [heat_bath_kernel(frozen, int(site)) for site in perms.reshape(-1)]
    x0 = data.sequences[[3, 30, 60]]
    result = glauber_split_likelihood(ExactDenoiser(frozen), x0, rounds=2, lm=ExactCausalLM(causal),
                                      frozen=ExactDenoiser(frozen), num_chains=3000, batch_size=3,
                                      generator=torch.Generator().manual_seed(1))
    model_law = causal.probs
    for kernel in reversed(kernels):
        model_law = model_law @ kernel
    expected, model_nll = 0.0, 0.0
    for row in data.index(x0).tolist():
        law = torch.zeros(V ** L, dtype=torch.float64)
        law[row] = 1.0
        for kernel in kernels:
            law = law @ kernel
        expected += float(-frozen.probs[row].log() + (law * (frozen.probs.log() - causal.probs.log())).sum())
        model_nll += float(-model_law[row].log())
    tokens = len(x0) * L
    assert abs(result.nats_per_token - expected / tokens) <= 4 * result.stderr, (result, expected / tokens)
    assert expected >= model_nll - 1e-12 and result.stderr > 0  # an upper bound on the model's NLL, in expectation


def test_eval_nll_reports_the_glauber_bound(text8_dir, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "glauber"
    train(load_config("text8-tiny", glauber_overrides(text8_dir, run, steps=2, eval_every=0)), progress=False)
    common = ["--split", "valid", "--max-sequences", "3", "--num-chains", "2", "--batch-size", "2", "--device",
              "cpu", "--data", str(text8_dir)]
    for extra, ema in (([], True), (["--no-ema"], False)):
        out = tmp_path / f"nll{len(extra)}"
        assert main(["eval", "nll", str(run), *common, *extra, "--out", str(out)]) == 0
        report = json.loads(out.with_suffix(".json").read_text())["results"]
        assert report["kind"] == "upper_bound" and report["bound"] and report["objective"] == "glauber"
        assert report["glauber_rounds"] == 1 and report["num_chains"] == 2 and report["frozen"] == "ema"
        assert report["num_tokens"] == 3 * 32 and report["ppl_mean_of_sequences"] >= report["ppl"]
        # the library's number under the same generator: the loaded weights as the model, the EMA as F
        loaded = load_spec(str(run), device="cpu", ema=ema)
        data = load_split(dataclasses.replace(loaded.config.data, path=str(text8_dir)), "valid")[:3]
        want = glauber_split_likelihood(loaded.model, data, rounds=1, frozen=load_spec(str(run), device="cpu").model,
                                        num_chains=2, batch_size=2, generator=torch.Generator().manual_seed(0))
        assert report["nats_per_token"] == pytest.approx(want.nats_per_token, rel=1e-9)
        assert report["stderr"] == pytest.approx(want.stderr, rel=1e-9) and math.isfinite(report["bpc"])
    capsys.readouterr()
    for model, extra, message in [
        (str(run), ["--num-t", "4"], "--num-t applies to MDLM and SEDD models"),
        ("bundled:text8-small-mdlm", ["--num-chains", "2"], "--num-chains applies to a Glauber diffusion model"),
        ("bundled:text8-small-mdlm", ["--num-chains", "1"], "--num-chains 1 must be at least 2"),
    ]:
        assert main(["eval", "nll", model, *extra, "--device", "cpu", "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
