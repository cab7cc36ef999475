"""save_pretrained / from_pretrained: exact round trip (MDLM, AR, NCE), atomic writes, clear errors,
hub ids through a monkeypatched snapshot_download, and model specs that accept such directories."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import edlm
import edlm.loading.pretrained as pretrained_mod
from edlm.cli import main
from edlm.config import load_config
from edlm.energy import NCEEnergy
from edlm.errors import EdlmError
from edlm.models import CausalLM, MaskedDiffusionLM
from edlm.loading.pretrained import CONFIG_FILE, WEIGHTS_FILE, from_pretrained, save_pretrained

TINY = ["model.n_layers=1", "model.d_model=32", "model.n_heads=2", "model.cond_dim=32", "model.max_seq_len=16",
        "data.seq_len=16"]


def config(objective: str = "mdlm"):
    extra = {"mdlm": [], "ar": ["model.causal=true", "model.adaln=false"], "nce": []}[objective]
    return load_config("text8-tiny", TINY + extra + [f"train.objective={objective}"])


def randomised(model):
    """Every parameter random (NCE's head and xt_embed start at zero), so a round trip is a real test."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return model.eval()


def build(objective):
    cfg = config(objective)
    torch.manual_seed(0)
    model = {"mdlm": MaskedDiffusionLM, "ar": CausalLM, "nce": NCEEnergy}[objective](cfg.model)
    return randomised(model), cfg


def outputs(model, objective):
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randint(0, 27, (2, 16), generator=gen)
    t = torch.rand(2, generator=gen)
    xt = torch.where(torch.rand(2, 16, generator=gen) < 0.5, torch.full_like(x0, 27), x0)
    with torch.no_grad():
        if objective == "mdlm":
            return model(xt, t)
        if objective == "ar":
            return model.token_logprobs(x0)
        return model(x0, xt, t)


@pytest.mark.parametrize("objective", ["mdlm", "ar", "nce"])
def test_round_trip_is_exact(tmp_path, objective):
    model, cfg = build(objective)
    path = save_pretrained(model, tmp_path / "m", config=cfg)
    assert sorted(p.name for p in path.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    loaded, cfg2 = from_pretrained(path, device="cpu")
    assert type(loaded) is type(model) and not loaded.training
    assert cfg2 == cfg
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(outputs(model, objective), outputs(loaded, objective))
    meta = json.loads((path / CONFIG_FILE).read_text())
    assert (meta["format"], meta["version"], meta["objective"]) == ("edlm-pretrained", 2, objective)


def test_model_specs_accept_pretrained_directories(tmp_path):
    from edlm.loading.specs import load_spec

    model, cfg = build("ar")
    path = save_pretrained(model, tmp_path / "ar", config=cfg)
    for spec in (str(path), f"pretrained:{path}"):
        loaded = load_spec(spec, device="cpu")
        assert loaded.config == cfg and torch.equal(outputs(loaded.model, "ar"), outputs(model, "ar"))
        assert (loaded.kind, loaded.role, loaded.directory, loaded.step) == ("pretrained", "causal", path, None)
        assert loaded.causal and loaded.seq_len == 16 and loaded.tokenizer.vocab_size == 27


def test_bf16_weights_and_dtype(tmp_path):
    model, cfg = build("mdlm")
    path = save_pretrained(model.to(torch.bfloat16), tmp_path / "m", config=cfg)
    assert load_file(str(path / WEIGHTS_FILE))["backbone.embed.weight"].dtype == torch.bfloat16
    loaded, _ = from_pretrained(path, device="cpu", dtype="bf16")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_write_is_atomic(tmp_path, monkeypatch):
    model, cfg = build("mdlm")
    path = save_pretrained(model, tmp_path / "m", config=cfg)
    before = (path / WEIGHTS_FILE).read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pretrained_mod, "save_file", crash)
    with pytest.raises(OSError):
        save_pretrained(randomised(MaskedDiffusionLM(cfg.model)), path, config=cfg)
    assert (path / WEIGHTS_FILE).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_errors_are_clear(tmp_path):
    model, cfg = build("mdlm")
    with pytest.raises(EdlmError, match="do not fit the model config"):
        save_pretrained(model, tmp_path / "bad", config=config("ar"))
    assert not (tmp_path / "bad").exists()
    path = save_pretrained(model, tmp_path / "m", config=cfg)
    weights = path / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(EdlmError, match="truncated or corrupt"):
        from_pretrained(path, device="cpu")
    (path / CONFIG_FILE).write_text("{not json")
    with pytest.raises(EdlmError, match="is corrupt"):
        from_pretrained(path, device="cpu")
    (path / CONFIG_FILE).write_text(json.dumps({"format": "edlm-pretrained", "version": 99, "config": {}}))
    with pytest.raises(EdlmError, match="format version 99"):
        from_pretrained(path, device="cpu")
    with pytest.raises(EdlmError, match="not an edlm pretrained directory"):
        from_pretrained(tmp_path, device="cpu")
    with pytest.raises(EdlmError, match="neither an existing directory nor a hub id"):
        from_pretrained(tmp_path / "missing" / "x", device="cpu")


def test_hub_id_goes_through_snapshot_download(tmp_path, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    model, cfg = build("nce")
    path = save_pretrained(model, tmp_path / "snapshot", config=cfg)
    calls = []

    def fake_snapshot_download(repo_id, revision=None, allow_patterns=None, **kwargs):
        calls.append((repo_id, revision, sorted(allow_patterns)))
        return str(path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    loaded, _ = from_pretrained("someone/edlm-nce", device="cpu", revision="v1")
    assert calls == [("someone/edlm-nce", "v1", sorted([CONFIG_FILE, WEIGHTS_FILE]))]
    assert torch.equal(outputs(loaded, "nce"), outputs(model, "nce"))

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(EdlmError, match="could not download 'someone/edlm-nce'.*no network"):
        edlm.load("pretrained:someone/edlm-nce", device="cpu")


def test_export_command(tmp_path):
    from edlm.loading.checkpoint import load_model
    from edlm.loading.specs import load_spec
    from edlm.train.checkpointing import save_checkpoint
    from edlm.train.optim import EMA, build_optimizer
    from edlm.train.order import DataPosition

    model, cfg = build("mdlm")
    ema = EMA(model, 0.9)
    with torch.no_grad():
        ema.model.backbone.embed.weight.add_(1.0)  # EMA differs from the trained weights
    opt = build_optimizer(model, cfg.train, torch.device("cpu"))
    run = tmp_path / "run"
    save_checkpoint(run, step=1, position=DataPosition(0, 0), config=cfg, model=model, ema_model=ema.model,
                    optimizer=opt)
    for flags, ema_flag in (([], True), (["--no-ema"], False)):
        out = tmp_path / f"out{ema_flag}"
        assert main(["export", str(run), str(out), *flags]) == 0
        a, _ = load_model(run, device="cpu", ema=ema_flag)
        b = edlm.load(str(out), device="cpu")
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    out = tmp_path / "bf16"
    assert main(["export", str(run), str(out), "--dtype", "bfloat16"]) == 0
    a, _ = load_model(run, device="cpu")
    b = edlm.load(f"pretrained:{out}", device="cpu")  # stored in bf16, loaded as float32
    assert (out / "model.safetensors").stat().st_size < 0.6 * (tmp_path / "outTrue" / "model.safetensors").stat().st_size
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert y.dtype == torch.float32 and torch.equal(x.to(torch.bfloat16).float(), y)
    assert main(["export", str(tmp_path / "nowhere"), str(tmp_path / "o2")]) == 2
    assert not (tmp_path / "o2").exists()
    again = tmp_path / "again"  # an exported (bf16) model exports again, from its spec
    assert main(["export", f"pretrained:{out}", str(again)]) == 0
    assert load_spec(str(again), device="cpu").config == load_spec(str(out), device="cpu").config
