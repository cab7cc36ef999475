"""Loading kuleshov-group/mdlm hub checkpoints into edlm's backbone (edlm.loading.mdlm_hub).

The checkpoints here are written by the tests: the published key names and shapes
(`backbone.vocab_embed.embedding`, `backbone.blocks.N.*`, ...) with random values. The strongest check
is `reference_logits`, a plain-PyTorch forward of MDLM's DIT written from its source (models/dit.py:
DIT.forward, DDiTBlock.forward, DDitFinalLayer, TimestepEmbedder, Rotary + flash-attn's non-interleaved
apply_rotary_emb_qkv_; models/hf/modeling_mdlm.py: DITBackbone zeroes sigma without time conditioning),
run on the reference state dict under its own key names and compared with the mapped edlm model.
"""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from edlm.errors import EdlmError
from edlm.models import MaskedDiffusionLM
from edlm.loading.mdlm_hub import (
    load_mapped,
    load_mdlm_hub,
    map_mdlm_state_dict,
    mdlm_model_config,
    read_mdlm_checkpoint,
)

TINY = dict(vocab_size=41, model_length=24, hidden_dim=32, cond_dim=16, n_blocks=2, n_heads=2,
            dropout=0.1, time_conditioning=False)  # vocab_size counts the mask: V = 40, mask id 40
OWT = dict(vocab_size=50258, model_length=1024, hidden_dim=768, cond_dim=128, n_blocks=12, n_heads=12,
           dropout=0.1, time_conditioning=False)  # kuleshov-group/mdlm-owt


def hub_config(**kw) -> dict:
    return {"architectures": ["MDLM"], "model_type": "mdlm", "return_dict": False, **TINY, **kw}


def reference_state_dict(cfg: dict, seed: int = 0, device=None) -> dict:
    """Published key names and shapes; random values (inv_freq is MDLM's real buffer)."""
    gen = torch.Generator().manual_seed(seed)
    v1, d, c, nb = cfg["vocab_size"], cfg["hidden_dim"], cfg["cond_dim"], cfg["n_blocks"]
    head = d // cfg["n_heads"]

    def rnd(*shape, std=1.0, mean=0.0):
        if device == "meta":
            return torch.empty(shape, device="meta")
        return mean + std * torch.randn(shape, generator=gen)

    sd = {
        "vocab_embed.embedding": rnd(v1, d),
        "sigma_map.mlp.0.weight": rnd(c, 256, std=0.2), "sigma_map.mlp.0.bias": rnd(c, std=0.2),
        "sigma_map.mlp.2.weight": rnd(c, c, std=0.3), "sigma_map.mlp.2.bias": rnd(c, std=0.2),
        "rotary_emb.inv_freq": 1.0 / (10_000 ** (torch.arange(0, head, 2).float() / head)),
    }
    for i in range(nb):
        p = f"blocks.{i}."
        sd.update({
            p + "norm1.weight": rnd(d, std=0.2, mean=1.0),
            p + "attn_qkv.weight": rnd(3 * d, d, std=d ** -0.5),
            p + "attn_out.weight": rnd(d, d, std=d ** -0.5),
            p + "norm2.weight": rnd(d, std=0.2, mean=1.0),
            p + "mlp.0.weight": rnd(4 * d, d, std=d ** -0.5), p + "mlp.0.bias": rnd(4 * d, std=0.1),
            p + "mlp.2.weight": rnd(d, 4 * d, std=(4 * d) ** -0.5), p + "mlp.2.bias": rnd(d, std=0.1),
            p + "adaLN_modulation.weight": rnd(6 * d, c, std=c ** -0.5),
            p + "adaLN_modulation.bias": rnd(6 * d, std=0.3),
        })
    sd.update({
        "output_layer.norm_final.weight": rnd(d, std=0.2, mean=1.0),
        "output_layer.linear.weight": rnd(v1, d, std=d ** -0.5), "output_layer.linear.bias": rnd(v1, std=0.1),
        "output_layer.adaLN_modulation.weight": rnd(2 * d, c, std=c ** -0.5),
        "output_layer.adaLN_modulation.bias": rnd(2 * d, std=0.3),
    })
    if device == "meta":
        sd["rotary_emb.inv_freq"] = torch.empty(head // 2, device="meta")
    return {"backbone." + k: t for k, t in sd.items()}


# ----- the reference: MDLM's DIT forward, written out from its source, on its own key names -----

def _layer_norm(x, weight):  # dit.py LayerNorm: F.layer_norm without affine, in fp32, times weight
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * weight


def _gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _linear(x, sd, name, bias=True):
    return x @ sd[name + ".weight"].T + (sd[name + ".bias"] if bias else 0)


def reference_logits(sd: dict, indices: torch.Tensor, sigma: torch.Tensor, n_heads: int,
                     time_conditioning: bool = False) -> torch.Tensor:
    """MDLM logits [B, L, V+1] (mask column included) from the `backbone.*` state dict, in float64."""
    sd = {k[len("backbone."):]: t.double() for k, t in sd.items()}
    if not time_conditioning:  # modeling_mdlm.py DITBackbone.forward / diffusion.py _process_sigma
        sigma = torch.zeros_like(sigma)
    x = sd["vocab_embed.embedding"][indices]  # EmbeddingLayer: embedding[x]
    half = 128  # TimestepEmbedder.timestep_embedding(sigma, 256, max_period=10000)
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float64) / half)
    args = sigma.double()[:, None] * freqs[None]
    t_freq = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    c = F.silu(_linear(F.silu(_linear(t_freq, sd, "sigma_map.mlp.0")), sd, "sigma_map.mlp.2"))  # DIT: silu(...)
    b, n, d = x.shape
    hd = d // n_heads
    angles = torch.arange(n, dtype=torch.float64)[:, None] * sd["rotary_emb.inv_freq"][None]  # [L, hd/2]
    cos, sin = angles.cos()[None, :, None], angles.sin()[None, :, None]  # over [B, L, H, hd/2]

    def rotate(u):  # flash_attn apply_rotary, interleaved=False: halves (x1, x2) of the head dim
        u1, u2 = u[..., : hd // 2], u[..., hd // 2:]
        return torch.cat([u1 * cos - u2 * sin, u1 * sin + u2 * cos], dim=-1)

    i = 0
    while f"blocks.{i}.norm1.weight" in sd:
        p = f"blocks.{i}."
        mod = _linear(c, sd, p + "adaLN_modulation")[:, None]  # [B, 1, 6d]
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (mod[..., k * d:(k + 1) * d]
                                                                          for k in range(6))
        h = _layer_norm(x, sd[p + "norm1.weight"]) * (1 + scale_msa) + shift_msa
        qkv = _linear(h, sd, p + "attn_qkv", bias=False).reshape(b, n, 3, n_heads, hd)  # (three h d)
        q, k, v = rotate(qkv[:, :, 0]), rotate(qkv[:, :, 1]), qkv[:, :, 2]  # v is not rotated
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd)  # flash-attn default scale
        att = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v).reshape(b, n, d)  # (h d)
        x = x + gate_msa * _linear(att, sd, p + "attn_out", bias=False)  # bias_dropout_add_scale
        h = _layer_norm(x, sd[p + "norm2.weight"]) * (1 + scale_mlp) + shift_mlp
        x = x + gate_mlp * _linear(_gelu_tanh(_linear(h, sd, p + "mlp.0")), sd, p + "mlp.2")
        i += 1
    mod = _linear(c, sd, "output_layer.adaLN_modulation")[:, None]
    shift, scale = mod[..., :d], mod[..., d:]
    h = _layer_norm(x, sd["output_layer.norm_final.weight"]) * (1 + scale) + shift
    return _linear(h, sd, "output_layer.linear")


def write_checkpoint(directory, cfg: dict, sd: dict, fmt: str = "safetensors") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(cfg))
    if fmt == "safetensors":
        save_file({k: t.contiguous() for k, t in sd.items()}, str(directory / "model.safetensors"))
    elif fmt == "bin":
        torch.save(sd, directory / "pytorch_model.bin")
    else:  # two shards and an index, as save_pretrained writes for large models
        keys = sorted(sd)
        shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
        for name, part in shards.items():
            save_file({k: sd[k].contiguous() for k in part}, str(directory / name))
        index = {"metadata": {}, "weight_map": {k: name for name, part in shards.items() for k in part}}
        (directory / "model.safetensors.index.json").write_text(json.dumps(index))


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mdlm") / "ckpt"
    sd = reference_state_dict(TINY)
    write_checkpoint(directory, hub_config(), sd)
    return directory, sd


def _inputs(batch=3, length=TINY["model_length"], seed=1):
    gen = torch.Generator().manual_seed(seed)
    v = TINY["vocab_size"] - 1
    x = torch.randint(0, v, (batch, length), generator=gen)
    x[torch.rand(batch, length, generator=gen) < 0.5] = v  # about half masked (mask id V)
    return x


# ----- numerics -----

def test_mapped_model_reproduces_mdlm_logits(tiny_ckpt):
    directory, sd = tiny_ckpt
    model = load_mdlm_hub(directory)
    v = TINY["vocab_size"] - 1
    assert isinstance(model, MaskedDiffusionLM) and not model.training
    assert model.vocab_size == v and model.mask_id == v and not model.time_conditioned
    x = _inputs()
    with torch.no_grad():
        ours = model(x, torch.rand(3))
    ref = reference_logits(sd, x, torch.rand(3), TINY["n_heads"])
    assert ours.shape == (3, TINY["model_length"], v) and ref.shape[-1] == v + 1
    assert ref.abs().max() > 1.0  # logits of real size, so the tolerance below means something
    torch.testing.assert_close(ours.double(), ref[..., :v], atol=1e-5, rtol=1e-5)
    # MDLM's SUBS: mask logit += -1e6, then log-softmax over V+1 ids (diffusion.py _subs_parameterization)
    subs = ref.clone()
    subs[..., v] += -1_000_000.0
    subs = subs.log_softmax(-1)
    masked = x == v
    torch.testing.assert_close(ours.double().log_softmax(-1)[masked], subs[..., :v][masked], atol=1e-5, rtol=1e-5)


def test_the_comparison_catches_convention_mistakes(tiny_ckpt):
    """The reference check is not vacuous: each plausible wrong convention moves the logits."""
    directory, sd = tiny_ckpt
    x = _inputs(batch=2)
    ref = reference_logits(sd, x, torch.zeros(2), TINY["n_heads"])[..., :-1]
    d = TINY["hidden_dim"]

    def gap(model):
        with torch.no_grad():
            return (model(x, torch.zeros(2)).double() - ref).abs().max().item()

    model = load_mdlm_hub(directory)
    assert gap(model) < 1e-5
    with torch.no_grad():  # shift and scale swapped in one block's modulation
        w = model.backbone.blocks[0].adaLN_modulation.weight
        w[: 2 * d] = torch.cat([w[d:2 * d], w[:d]]).clone()
    assert gap(model) > 1e-2
    model = load_mdlm_hub(directory)
    model.backbone.rotary.inv_freq.mul_(1.5)  # another rotary frequency layout
    assert gap(model) > 1e-2
    model = load_mdlm_hub(directory)
    with torch.no_grad():  # the mask row dropped from the wrong end
        model.backbone.output.linear.weight.copy_(sd["backbone.output_layer.linear.weight"][1:])
    assert gap(model) > 1e-2
    # and time conditioning on sigma would change MDLM's logits: sigma_map really is used at sigma=0
    timed = reference_logits(sd, x, torch.full((2,), 0.7), TINY["n_heads"], time_conditioning=True)
    assert (timed[..., :-1] - ref).abs().max() > 1e-2


def test_every_tensor_is_used_and_every_target_filled(tiny_ckpt):
    directory, sd = tiny_ckpt
    config = mdlm_model_config(hub_config())
    mapped = map_mdlm_state_dict(sd, config)
    model = MaskedDiffusionLM(config)
    assert set(mapped) == set(model.state_dict())
    load_mapped(model, mapped)
    own = model.state_dict()
    v = config.vocab_size
    used = set()
    for src, tensor in sd.items():
        if src.endswith("rotary_emb.inv_freq"):  # a buffer: verified against edlm's table
            assert torch.equal(tensor, model.backbone.rotary.inv_freq)
            used.add(src)
            continue
        hits = [k for k, t in own.items() if t.shape == tensor.shape and torch.equal(t, tensor)]
        if src.endswith(("output_layer.linear.weight", "output_layer.linear.bias")):
            hits = [k for k, t in own.items() if t.shape == tensor[:v].shape and torch.equal(t, tensor[:v])]
        assert len(hits) == 1, src
        used.add(src)
    assert used == set(sd)
    # the mask row of the embedding is kept as edlm's mask id V
    assert torch.equal(model.backbone.embed.weight[v], sd["backbone.vocab_embed.embedding"][v])


def test_weight_formats_and_bare_keys_load_the_same(tmp_path, tiny_ckpt):
    _, sd = tiny_ckpt
    x = _inputs(batch=2)
    with torch.no_grad():
        expected = load_mdlm_hub(tiny_ckpt[0])(x, torch.zeros(2))
    bare = {k[len("backbone."):]: t for k, t in sd.items()}  # a DIT saved on its own
    for fmt, state in (("bin", sd), ("sharded", sd), ("safetensors", bare)):
        write_checkpoint(tmp_path / fmt, hub_config(), state, fmt)
        with torch.no_grad():
            assert torch.equal(load_mdlm_hub(tmp_path / fmt)(x, torch.zeros(2)), expected), fmt


def test_hub_id_goes_through_snapshot_download(monkeypatch, tiny_ckpt):
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, revision=None, allow_patterns=None, **kw):
        calls.append((repo_id, revision, tuple(allow_patterns)))
        return str(tiny_ckpt[0])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    model = load_mdlm_hub("kuleshov-group/mdlm-owt-test", revision="abc123")
    assert model.vocab_size == TINY["vocab_size"] - 1
    assert calls == [("kuleshov-group/mdlm-owt-test", "abc123", tuple(calls[0][2]))]
    assert "model.safetensors" in calls[0][2] and "pytorch_model.bin" not in calls[0][2]

    def failing(*a, **kw):
        raise OSError("network unreachable")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", failing)
    with pytest.raises(EdlmError, match="could not download 'kuleshov-group/mdlm-owt'.*network unreachable"):
        load_mdlm_hub("kuleshov-group/mdlm-owt")


def test_dtype_and_device(tiny_ckpt):
    directory, sd = tiny_ckpt
    model = load_mdlm_hub(directory, device="cpu", dtype="bfloat16")
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    # Module.to(bfloat16) casts the rotary buffer too; the angles must still be float32-exact
    cos, _ = model.backbone.rotary(torch.arange(1024))
    ref_cos, _ = load_mdlm_hub(directory).backbone.rotary(torch.arange(1024))
    torch.testing.assert_close(cos, ref_cos, atol=0, rtol=0)
    x = _inputs(batch=2)
    ref = reference_logits(sd, x, torch.zeros(2), TINY["n_heads"])[..., :-1]
    with torch.no_grad():
        assert (model(x, torch.zeros(2)).double() - ref).abs().max() < 0.25  # bf16-level agreement
    with pytest.raises(EdlmError, match="dtype='int8'"):
        load_mdlm_hub(directory, dtype="int8")


# ----- the mdlm-owt shape, without materialising 170M parameters -----

def test_mdlm_owt_shapes_map_onto_edlm():
    config = mdlm_model_config({**OWT, "model_type": "mdlm"})
    assert (config.vocab_size, config.mask_id, config.d_model, config.n_heads, config.n_layers,
            config.cond_dim, config.max_seq_len, config.mlp_ratio) == (50257, 50257, 768, 12, 12, 128, 1024, 4)
    assert not config.time_conditioning and config.adaln and not config.causal and config.rope_base == 10000
    sd = reference_state_dict(OWT, device="meta")
    assert len(sd) == 5 + 1 + 12 * 10 + 5
    mapped = map_mdlm_state_dict(sd, config)
    with torch.device("meta"):
        model = MaskedDiffusionLM(config)
    load_mapped(model, mapped)  # refuses unless keys and shapes agree exactly
    assert mapped["backbone.embed.weight"].shape == (50258, 768)
    assert mapped["backbone.output.linear.weight"].shape == (50257, 768)
    assert mapped["backbone.output.linear.bias"].shape == (50257,)
    assert mapped["backbone.time_embed.mlp.0.weight"].shape == (128, 256)
    assert mapped["backbone.blocks.11.adaLN_modulation.weight"].shape == (6 * 768, 128)
    n_source = sum(t.numel() for t in sd.values())
    n_model = sum(p.numel() for p in model.parameters())
    assert n_source - n_model == 768 + 1 + 32  # the mask row and bias of the output layer, and inv_freq


# ----- errors -----

def _error(sd, **cfg):
    return map_mdlm_state_dict(sd, mdlm_model_config(hub_config(**cfg)), source="ckpt")


def test_state_dict_mismatches_are_refused_by_name(tiny_ckpt):
    _, sd = tiny_ckpt
    missing = {k: t for k, t in sd.items() if k != "backbone.blocks.1.mlp.2.bias"}
    with pytest.raises(EdlmError, match=r"missing backbone\.blocks\.1\.mlp\.2\.bias"):
        _error(missing)
    with pytest.raises(EdlmError, match=r"unexpected backbone\.blocks\.2\.norm1\.weight"):
        _error({**sd, "backbone.blocks.2.norm1.weight": torch.ones(32)})
    with pytest.raises(EdlmError, match=r"unexpected ema\.shadow"):
        _error({**sd, "ema.shadow": torch.ones(3)})  # reported under its own name, not a rewritten one
    wrong = {**sd, "backbone.blocks.0.attn_qkv.weight": torch.zeros(96, 31)}
    with pytest.raises(EdlmError, match=r"wrong shapes backbone\.blocks\.0\.attn_qkv\.weight \(96, 31\) "
                       r"\(expected \(96, 32\)\)"):
        _error(wrong)
    with pytest.raises(EdlmError, match="wrong shapes"):  # config.json disagrees with the weights
        _error(sd, cond_dim=129)
    # a checkpoint without the rotary buffer is fine: edlm recomputes the same table
    no_rope = {k: t for k, t in sd.items() if not k.endswith("inv_freq")}
    assert set(_error(no_rope)) == set(_error(sd))
    bad_rope = {**sd, "backbone.rotary_emb.inv_freq": sd["backbone.rotary_emb.inv_freq"] * 0.5}
    with pytest.raises(EdlmError, match="rotary table"):
        _error(bad_rope)


def test_config_problems_are_refused():
    with pytest.raises(EdlmError, match="time_conditioning=True"):
        mdlm_model_config(hub_config(time_conditioning=True))
    with pytest.raises(EdlmError, match="lacks cond_dim"):
        mdlm_model_config({k: v for k, v in hub_config().items() if k != "cond_dim"})
    with pytest.raises(EdlmError, match="model_type='gpt2'"):
        mdlm_model_config(hub_config(model_type="gpt2"))
    with pytest.raises(EdlmError, match="mask_token_id=3"):
        mdlm_model_config(hub_config(mask_token_id=3))
    with pytest.raises(EdlmError, match="n_heads=2.5"):
        mdlm_model_config(hub_config(n_heads=2.5))
    with pytest.raises(EdlmError, match="d_model=32 must split into n_heads=3"):
        mdlm_model_config(hub_config(n_heads=3))
    # absent optional fields take MDLMConfig's defaults
    optional = ("dropout", "time_conditioning")
    config = mdlm_model_config({k: v for k, v in hub_config().items() if k not in optional})
    assert config.dropout == 0.1 and not config.time_conditioning


def test_file_problems_are_refused(tmp_path, tiny_ckpt):
    with pytest.raises(EdlmError, match="neither an existing directory nor a hub id"):
        load_mdlm_hub(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EdlmError, match="has no config.json"):
        read_mdlm_checkpoint(empty)
    (empty / "config.json").write_text(json.dumps(hub_config()))
    with pytest.raises(EdlmError, match="has none of model.safetensors"):
        read_mdlm_checkpoint(empty)
    (empty / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(EdlmError, match="could not read the weights.*download it again"):
        load_mdlm_hub(empty)
    (empty / "model.safetensors").unlink()
    torch.save({"weights": [torch.ones(2)], "step": 3}, empty / "pytorch_model.bin")
    with pytest.raises(EdlmError, match="flat state dict"):
        read_mdlm_checkpoint(empty)

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({"x": Evil()}, empty / "pytorch_model.bin")
    with pytest.raises(EdlmError, match="could not read the weights"):  # weights_only refuses the pickle
        read_mdlm_checkpoint(empty)
    (empty / "config.json").write_text("{broken")
    with pytest.raises(EdlmError, match="could not read .*config.json"):
        read_mdlm_checkpoint(empty)
