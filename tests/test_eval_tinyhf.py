"""Builders of tiny local Hugging Face models for the evaluation tests (no hub access).

Imported by the other `test_eval_*` / `test_hf_adapter` modules; it holds no tests of its own.
"""

from __future__ import annotations

from pathlib import Path

EOT = "<|endoftext|>"
CORPUS = [
    "the cat sat on the mat and the dog sat on the log",
    "a quick brown fox jumps over the lazy dog near the river bank",
    "stocks rose sharply on monday as investors bought shares of the company",
    "she said the new plan would cut costs and raise profits next year",
    "the river ran past the old mill where children played in the summer",
]


def build_tokenizer(path: Path, texts=CORPUS, vocab_size: int = 300):
    """A byte-level BPE tokenizer trained on `texts`, saved to `path` (EOS = BOS = <|endoftext|>)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts), vocab_size=vocab_size, min_frequency=1, special_tokens=[EOT],
                            show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=EOT, eos_token=EOT)
    tok.save_pretrained(str(path))
    return tok


def build_gpt2(path: Path, vocab_size: int, eot_id: int, seed: int = 0, n_positions: int = 64,
               n_embd: int = 32, n_layer: int = 2):
    """A randomly initialised GPT-2 with `vocab_size` tokens saved to `path`; BOS = EOS = eot_id."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=2, vocab_size=vocab_size, n_positions=n_positions,
                        bos_token_id=eot_id, eos_token_id=eot_id)
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(str(path))
    return model


def build_tiny_hf(path: Path, texts=CORPUS, vocab_size: int = 300, **kwargs):
    """Tokenizer and GPT-2 saved together in `path`; returns (tokenizer, model)."""
    tok = build_tokenizer(path, texts, vocab_size)
    model = build_gpt2(path, len(tok), tok.eos_token_id, **kwargs)
    return tok, model
