"""HFCausalLM: a tiny GPT-2 built and saved here behaves as an edlm causal LM."""

from __future__ import annotations

import pytest
import torch

from edlm.errors import EdlmError
from edlm.loading.specs import parse_model_spec
from edlm.models.hf import HFCausalLM, check_compatible
from test_eval_tinyhf import build_gpt2, build_tiny_hf


@pytest.fixture(autouse=True)
def no_grad():
    """Evaluation runs without gradients (the adapters leave that to the caller)."""
    with torch.no_grad():
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpt2")
    tok, model = build_tiny_hf(path)
    return path, tok, model


def test_token_logprobs_match_direct_logits(tiny):
    path, tok, model = tiny
    lm = HFCausalLM.from_pretrained(str(path))
    assert lm.vocab_size == len(tok) and lm.bos_id == tok.eos_token_id == lm.eos_id
    x = torch.randint(0, lm.vocab_size, (3, 10), generator=torch.Generator().manual_seed(0))
    got = lm.token_logprobs(x)
    # Direct: the model reads BOS + x and predicts x_i from position i.
    with torch.no_grad():
        inputs = torch.cat([torch.full((3, 1), tok.eos_token_id), x], dim=1)
        logp = torch.log_softmax(model(input_ids=inputs).logits[:, :-1].float(), dim=-1)
    want = logp.gather(-1, x[..., None]).squeeze(-1)
    assert got.shape == (3, 10) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # A leading BOS in x is scored as a token: log p(BOS | BOS).
    with_bos = torch.cat([torch.full((3, 1), lm.bos_id), x], dim=1)
    with torch.no_grad():
        bos_given_bos = torch.log_softmax(model(input_ids=inputs[:, :1]).logits[:, 0].float(), -1)[:, lm.bos_id]
    torch.testing.assert_close(lm.token_logprobs(with_bos)[:, 0], bos_given_bos, atol=1e-5, rtol=1e-5)


def test_cached_next_logits_equal_full_forward(tiny):
    path, tok, _ = tiny
    lm = HFCausalLM.from_pretrained(str(path))
    x = torch.randint(0, lm.vocab_size, (2, 9), generator=torch.Generator().manual_seed(1))
    full = lm(x)  # [B, L, V]: logits of x_i given BOS, x_<i
    cache = lm.new_cache(2, 10)
    steps = [lm.next_logits(torch.full((2, 1), lm.vocab_size), cache)]  # edlm's BOS id V means BOS
    steps.append(lm.next_logits(x[:, :3], cache))  # several inputs at once
    steps += [lm.next_logits(x[:, i:i + 1], cache) for i in range(3, 8)]
    assert cache.length == 9
    torch.testing.assert_close(steps[0], full[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(steps[1], full[:, 3], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.stack(steps[2:], 1), full[:, 4:9], atol=1e-5, rtol=1e-5)
    with pytest.raises(EdlmError, match="max_len"):
        lm.next_logits(x[:, :2], cache)


def test_errors_are_clear(tiny, tmp_path):
    path, tok, _ = tiny
    lm = HFCausalLM.from_pretrained(str(path))
    with pytest.raises(EdlmError, match="vocabulary of 300 tokens but the denoiser has 27"):
        check_compatible(lm, 27)
    with pytest.raises(EdlmError, match="ends sequences with token"):
        check_compatible(lm, lm.vocab_size, eos_id=3)
    check_compatible(lm, lm.vocab_size, eos_id=lm.eos_id, tokenizer=lm.tokenizer)

    class Shifted:  # same size, different ids
        name = "shifted"

        def encode(self, text):
            return [(i + 1) % lm.vocab_size for i in lm.tokenizer.encode(text)]

    with pytest.raises(EdlmError, match="tokenizes text differently"):
        check_compatible(lm, lm.vocab_size, tokenizer=Shifted())
    with pytest.raises(EdlmError, match="positions"):
        lm.token_logprobs(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(EdlmError, match="outside"):
        lm.token_logprobs(torch.full((1, 3), 300))
    with pytest.raises(EdlmError, match="could not load"):
        HFCausalLM.from_pretrained(str(tmp_path / "missing"))
    assert parse_model_spec("hf:gpt2") == ("hf", "gpt2")
    with pytest.raises(EdlmError, match="names no model"):
        parse_model_spec("hf:")


def test_without_tokenizer_and_bos(tmp_path):
    build_gpt2(tmp_path, vocab_size=50, eot_id=49)
    lm = HFCausalLM.from_pretrained(str(tmp_path), dtype="float32")
    assert lm.tokenizer is None and lm.bos_id == 49
    assert lm.token_logprobs(torch.zeros(2, 4, dtype=torch.long)).shape == (2, 4)
