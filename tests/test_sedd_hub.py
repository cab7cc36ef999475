"""SEDD hub checkpoints (louaaron/sedd-small layout) load into edlm's SEDDScoreModel (docs/sedd-hub-mapping.md).

Checkpoints are written here with SEDD's key names and shapes (bare module names, as
PyTorchModelHubMixin saves them) and random values in every tensor; the known answer is the plain
float64 DIT forward of tests/test_mdlm_hub.py (SEDD's network is MDLM's DIT, fed sigma) followed by
SEDD's output conventions (scale_by_sigma, zero at the input token), written out here from SEDD's
`model/transformer.py`. scripts/sedd_hub_check.py compares against SEDD's own code.
"""

import math

import pytest
import torch
from test_mdlm_hub import reference_logits, reference_state_dict, write_checkpoint

import edlm
from edlm.diffusion.sedd import GeometricNoise, LogLinearNoise
from edlm.errors import EdlmError
from edlm.loading.sedd_hub import is_sedd_config, load_sedd_hub, map_sedd_state_dict, sedd_model_config
from edlm.loading.specs import load_spec
from edlm.models.sedd import SEDDScoreModel

V = 40
MODEL = {"name": "tiny", "type": "ddit", "hidden_size": 32, "cond_dim": 16, "length": 24, "n_blocks": 2, "n_heads": 2,
         "scale_by_sigma": True, "dropout": 0.1}
SMALL = {**MODEL, "hidden_size": 768, "cond_dim": 128, "length": 1024, "n_blocks": 12, "n_heads": 12}  # sedd-small
MEDIUM = {**SMALL, "hidden_size": 1024, "n_blocks": 24, "n_heads": 16}  # sedd-medium


def hub_config(graph="absorb", noise=None, tokens=V, **model) -> dict:
    """SEDD's Hydra config as its save_pretrained writes it (configs/config.yaml plus the model section)."""
    return {"ngpus": 8, "tokens": tokens, "graph": {"type": graph, "file": "data", "report_all": False},
            "noise": noise or {"type": "loglinear", "sigma_min": 1e-4, "sigma_max": 20},
            "model": {**MODEL, "scale_by_sigma": graph == "absorb", **model},
            "training": {"batch_size": 512, "ema": 0.9999}, "sampling": {"predictor": "euler", "steps": 128}}


def sedd_state_dict(graph: str, model: dict = MODEL, seed: int = 0, device=None) -> dict:
    """SEDD's key names (no prefix) and shapes: N = V + 1 rows (absorb) or V (uniform); random values."""
    rows = V + (1 if graph == "absorb" else 0) if model is MODEL else 50257 + (graph == "absorb")
    cfg = dict(vocab_size=rows, hidden_dim=model["hidden_size"], cond_dim=model["cond_dim"],
               n_blocks=model["n_blocks"], n_heads=model["n_heads"])
    return {k[len("backbone."):]: t for k, t in reference_state_dict(cfg, seed, device).items()}


def reference_scores(sd: dict, x: torch.Tensor, sigma: torch.Tensor, scale_by_sigma: bool) -> torch.Tensor:
    """SEDD.forward in float64: the DIT on sigma, then `x - log(e^sigma - 1) - log(N - 1)` (scale_by_sigma)
    and 0 at the input token."""
    out = reference_logits({"backbone." + k: t for k, t in sd.items()}, x, sigma, MODEL["n_heads"],
                           time_conditioning=True)
    if scale_by_sigma:
        out = out - torch.log(torch.expm1(sigma.double()))[:, None, None] - math.log(out.shape[-1] - 1)
    return out.scatter(-1, x[..., None], 0.0)


@pytest.fixture(scope="module", params=["absorb", "uniform"])
def tiny(request, tmp_path_factory):
    graph = request.param
    directory = tmp_path_factory.mktemp("sedd") / graph
    sd = sedd_state_dict(graph)
    write_checkpoint(directory, hub_config(graph), sd)
    return graph, directory, sd


def _inputs(graph: str, batch=3, length=MODEL["length"], seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, V, (batch, length), generator=gen)
    if graph == "absorb":
        x[torch.rand(batch, length, generator=gen) < 0.5] = V  # about half absorbed
    sigma = torch.exp(torch.empty(batch).uniform_(math.log(1e-3), math.log(20.0), generator=gen))
    return x, sigma


def test_mapped_model_reproduces_sedd_scores(tiny):
    graph, directory, sd = tiny
    model = load_sedd_hub(directory)
    assert isinstance(model, SEDDScoreModel) and not model.training and model.graph == graph
    assert model.scale_by_sigma == (graph == "absorb") and model.time_conditioned
    assert isinstance(model.noise, LogLinearNoise)
    x, sigma = _inputs(graph)
    expected = reference_scores(sd, x, sigma, model.scale_by_sigma)
    with torch.no_grad():
        got = model(x, sigma)
    assert got.shape == (3, MODEL["length"], V + (graph == "absorb"))
    assert (got.double() - expected).abs().max() < 1e-5 * max(1.0, float(expected.abs().max()))
    # not vacuous: other sigmas, or no scale_by_sigma, move the scores
    with torch.no_grad():
        assert (model(x, sigma * 2) - got).abs().max() > 1e-2
    if graph == "absorb":
        unscaled = reference_scores(sd, x, sigma, False)
        assert (unscaled - expected).abs().max() > 1e-2
    # the hf: spec resolves it, with the edlm role "score"
    loaded = load_spec(f"hf:{directory}", device="cpu")
    assert loaded.role == "score" and loaded.seq_len == MODEL["length"] and loaded.tokenizer is None
    with torch.no_grad():
        assert torch.equal(loaded.model(x, sigma), got)


def test_every_weight_format_loads_the_same(tiny, tmp_path):
    graph, directory, sd = tiny
    x, sigma = _inputs(graph, batch=2)
    with torch.no_grad():
        expected = load_sedd_hub(directory)(x, sigma)
        for fmt in ("bin", "sharded"):
            write_checkpoint(tmp_path / fmt, hub_config(graph), sd, fmt)
            assert torch.equal(edlm.load(f"hf:{tmp_path / fmt}", device="cpu")(x, sigma), expected), fmt


def test_noise_and_graph_come_from_config_json(tmp_path):
    sd = sedd_state_dict("uniform")
    noise = {"type": "geometric", "sigma_min": 1e-3, "sigma_max": 5}
    write_checkpoint(tmp_path / "u", hub_config("uniform", noise), sd)
    model = load_sedd_hub(tmp_path / "u")
    assert model.graph == "uniform" and model.noise == GeometricNoise(1e-3, 5.0)
    assert torch.equal(model.backbone.embed.weight[V], torch.zeros(MODEL["hidden_size"]))  # the unused row V
    assert is_sedd_config(hub_config()) and not is_sedd_config({"model_type": "mdlm", "vocab_size": 3})
    # the score model runs through edlm's sampler and bound
    x = edlm.sample(model, 2, 8, 3, predictor="euler", generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 8) and int(x.max()) < V
    assert edlm.nelbo(model, x, num_t=2, generator=torch.Generator().manual_seed(0)).kind == "upper_bound"


def test_hub_id_goes_through_the_hub(monkeypatch, tiny):
    import huggingface_hub

    graph, directory, _ = tiny
    calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda repo_id, filename, revision=None, **kw: str(directory / filename))
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo_id, revision=None, **kw: calls.append(repo_id) or str(directory))
    loaded = load_spec("hf:louaaron/sedd-small", device="cpu")
    assert loaded.role == "score" and loaded.model.graph == graph and calls == ["louaaron/sedd-small"]


@pytest.mark.parametrize("model,params", [(SMALL, 169_627_218), (MEDIUM, 424_477_010)], ids=["small", "medium"])
def test_published_shapes_map_onto_edlm(model, params):
    config, graph, scale, noise = sedd_model_config(hub_config(tokens=50257, **model))
    assert (config.vocab_size, config.d_model, config.n_layers, graph, scale) == (50257, model["hidden_size"],
                                                                                  model["n_blocks"], "absorb", True)
    sd = sedd_state_dict("absorb", model, device="meta")
    mapped = map_sedd_state_dict(sd, config, graph)
    with torch.device("meta"):
        target = SEDDScoreModel(config, graph).state_dict()
    assert {k: tuple(v.shape) for k, v in mapped.items()} == {k: tuple(v.shape) for k, v in target.items()}
    assert len(sd) == len(target) + 1  # the rotary buffer is checked, not copied
    assert sum(v.numel() for v in target.values()) == params


def test_bad_checkpoints_are_refused(tmp_path, tiny):
    graph, directory, sd = tiny
    cases = [
        (hub_config(graph="masked"), "graph.type='masked'"),
        (hub_config(noise={"type": "cosine"}), "noise.type='cosine'"),
        (hub_config(noise={"type": "geometric"}), "geometric noise needs both"),
        ({**hub_config(), "model": {k: v for k, v in MODEL.items() if k != "scale_by_sigma"}},
         "lacks model.scale_by_sigma"),
        (hub_config(n_heads=2.5), "model.n_heads=2.5"),
        (hub_config(type="dit"), "model.type='dit'"),
        (hub_config(graph="uniform", scale_by_sigma=True), "scale_by_sigma=true with graph.type='uniform'"),
    ]
    for i, (config, message) in enumerate(cases):
        write_checkpoint(tmp_path / str(i), config, sd)
        with pytest.raises(EdlmError, match=message):
            load_sedd_hub(tmp_path / str(i))
    other = "uniform" if graph == "absorb" else "absorb"
    write_checkpoint(tmp_path / "mismatch", hub_config(other), sd)  # config.json of the other graph
    with pytest.raises(EdlmError, match="does not match the SEDD layout .*wrong shapes .*vocab_embed.embedding"):
        load_sedd_hub(tmp_path / "mismatch")
    bad = dict(sd, **{"rotary_emb.inv_freq": sd["rotary_emb.inv_freq"] * 2})
    write_checkpoint(tmp_path / "rotary", hub_config(graph), bad)
    with pytest.raises(EdlmError, match="not SEDD's rotary table"):
        load_sedd_hub(tmp_path / "rotary")
    with pytest.raises(EdlmError, match="SEDD checkpoint .* neither an existing directory nor a hub id like louaaron"):
        load_sedd_hub(tmp_path / "nowhere")
    with pytest.raises(EdlmError, match="is not SEDD's"):
        sedd_model_config({"tokens": 3})
