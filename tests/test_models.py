"""The backbone and the two model kinds: shapes, causality, KV cache, time conditioning, errors."""

import pytest
import torch

from edlm.errors import EdlmError
from edlm.models import ModelConfig, build_model


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=11, n_layers=2, d_model=32, n_heads=2, cond_dim=32, max_seq_len=24)
    base.update(kw)
    return ModelConfig(**base)


def test_denoiser_shapes_and_protocol():
    torch.manual_seed(0)
    model = build_model(tiny(time_conditioning=True))
    xt = torch.randint(0, 12, (3, 16))
    logits = model(xt, torch.rand(3))
    assert logits.shape == (3, 16, 11)
    assert model.vocab_size == 11 and model.mask_id == 11 and model.time_conditioned


def test_bidirectional_model_sees_the_future_and_causal_model_does_not():
    torch.manual_seed(0)
    x = torch.randint(0, 11, (1, 10))
    y = x.clone()
    y[0, -1] = (x[0, -1] + 1) % 11
    for causal, changes_early in ((False, True), (True, False)):
        kw = dict(causal=True, adaln=False) if causal else {}
        model = build_model(tiny(**kw))
        for p in model.parameters():  # non-zero adaLN so the check is not vacuous
            torch.nn.init.normal_(p, std=0.2)
        fn = model.forward if causal else (lambda z: model(z, torch.zeros(1)))
        early_diff = (fn(x)[0, :-2] - fn(y)[0, :-2]).abs().max()
        assert (early_diff > 1e-6) == changes_early


def test_time_conditioning_switch():
    torch.manual_seed(0)
    x = torch.randint(0, 12, (2, 8))
    for flag in (True, False):
        model = build_model(tiny(time_conditioning=flag))
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.2)
        diff = (model(x, torch.tensor([0.1, 0.1])) - model(x, torch.tensor([0.9, 0.9]))).abs().max()
        assert (diff > 1e-6) == flag


def test_kv_cache_matches_full_forward():
    torch.manual_seed(0)
    lm = build_model(tiny(causal=True, adaln=False))
    x = torch.randint(0, 11, (2, 12))
    full = lm(x)
    inputs = lm.with_bos(x)
    cache = lm.new_cache(2, 12)
    torch.testing.assert_close(lm.next_logits(inputs[:, :5], cache), full[:, 4], atol=1e-5, rtol=0)
    torch.testing.assert_close(lm.next_logits(inputs[:, 5:6], cache), full[:, 5], atol=1e-5, rtol=0)
    torch.testing.assert_close(lm.next_logits(inputs[:, 6:12], cache), full[:, 11], atol=1e-5, rtol=0)


def test_token_logprobs_normalised():
    torch.manual_seed(0)
    lm = build_model(tiny(causal=True, adaln=False, vocab_size=3, max_seq_len=4))
    seqs = torch.cartesian_prod(*[torch.arange(3)] * 4)
    with torch.no_grad():
        total = lm.token_logprobs(seqs).double().sum(1).exp().sum()
    assert abs(float(total) - 1.0) < 1e-5


def test_sequence_longer_than_model_is_refused():
    model = build_model(tiny())
    with pytest.raises(EdlmError, match="max_seq_len=24"):
        model(torch.zeros(1, 25, dtype=torch.long), torch.zeros(1))


@pytest.mark.parametrize("bad", [dict(d_model=30, n_heads=4), dict(vocab_size=1), dict(adaln=False, time_conditioning=True)])
def test_bad_config_is_refused(bad):
    with pytest.raises(EdlmError):
        tiny(**bad)


def test_wrong_model_kind_is_refused():
    from edlm.models import CausalLM, MaskedDiffusionLM

    with pytest.raises(EdlmError, match="causal=true"):
        CausalLM(tiny())
    with pytest.raises(EdlmError, match="causal=false"):
        MaskedDiffusionLM(tiny(causal=True, adaln=False))


def test_init_torch_uses_pytorch_defaults_and_normal_is_gpt2s():
    """model.init: "torch" gives N(0, 1) embeddings and Linear weights within 1/sqrt(fan_in); "normal"
    gives N(0, 0.02^2) and zero biases (docs/pitfalls.md, item 12). adaLN modulations start at zero in both."""
    torch.manual_seed(0)
    wide = dict(d_model=256, n_heads=4, cond_dim=64)
    torch_init = build_model(tiny(**wide, adaln=True)).backbone
    assert abs(float(torch_init.embed.weight.std()) - 1.0) < 0.05
    qkv = torch_init.blocks[0].attn_qkv.weight
    assert float(qkv.abs().max()) <= 256 ** -0.5 and abs(float(qkv.std()) - (3 * 256) ** -0.5) < 0.002
    normal = build_model(tiny(**wide, adaln=True, init="normal")).backbone
    assert abs(float(normal.embed.weight.std()) - 0.02) < 0.002
    assert abs(float(normal.blocks[0].attn_qkv.weight.std()) - 0.02) < 0.002
    assert float(normal.blocks[0].mlp[0].bias.abs().max()) == 0.0
    for model in (torch_init, normal):
        assert float(model.blocks[0].adaLN_modulation.weight.abs().max()) == 0.0


def test_activation_gelu_is_exact_and_close_to_the_tanh_default():
    """model.activation: "gelu_tanh" (default: every older checkpoint used it) vs "gelu" (exact)."""
    torch.manual_seed(0)
    approx = build_model(tiny(adaln=False))  # zero-initialised adaLN gates would hide the MLP
    exact = build_model(tiny(adaln=False, activation="gelu"))
    exact.load_state_dict(approx.state_dict())
    assert approx.backbone.blocks[0].mlp[1].approximate == "tanh" and exact.backbone.blocks[0].mlp[1].approximate == "none"
    xt = torch.randint(0, 12, (2, 16))
    a, b = approx(xt, torch.rand(2)), exact(xt, torch.rand(2))
    assert 0 < float((a - b).abs().max()) < 1e-2


@pytest.mark.parametrize("field, value", [("init", "xavier"), ("activation", "relu")])
def test_unknown_init_or_activation_is_refused(field, value):
    with pytest.raises(EdlmError, match=f"model.{field}='{value}' is unknown"):
        tiny(**{field: value})
