"""Data: corpora, tokenizers and fixed-length token sequences for training and evaluation.

Entry points: `build_tokenizer(cfg)` and `load_split(cfg, split) -> LongTensor[N, cfg.seq_len]`, where `cfg` is a
`DataConfig`:
- `corpus: text8`: characters (tokenizer `char`), chunks of seq_len consecutive characters (`edlm.data.text8`);
- `corpus: text`: local text files; `corpus: hf`: a Hugging Face dataset (`edlm.data.corpora`); both tokenized
  with a BPE tokenizer (`edlm.data.tokenizers`) and wrapped with EOS at both ends of every row (`edlm.data.tokens`);
- `corpus: puzzles`: a directory of Sudoku or Zebra puzzles, one puzzle per row in the format of a puzzle
  tokenizer `puzzle:SHAPE:FORMAT` (`edlm.data.puzzles`).
"""

from __future__ import annotations

import torch

from edlm.data.chars import TEXT8_ALPHABET, CharTokenizer
from edlm.data.corpora import SPLITS, Corpus, hf_corpus, text_corpus
from edlm.data.files import cache_dir
from edlm.data.puzzles import load_puzzle_split
from edlm.data.text8 import Text8Source, find_text8, load_text8
from edlm.data.tokenizers import HFTokenizer, TiktokenTokenizer, build_tokenizer, check_vocab
from edlm.data.tokens import load_token_split, wrap_documents
from edlm.errors import EdlmError, require

CORPORA = ("text8", "text", "hf", "puzzles")


def open_corpus(cfg) -> Corpus:
    """The document corpus of a token-level DataConfig (`corpus: text` or `corpus: hf`)."""
    if cfg.corpus == "text":
        return text_corpus(cfg.path)
    if cfg.corpus == "hf":
        return hf_corpus(cfg.hf_name, cfg.hf_config, cfg.path, cfg.text_field)
    raise EdlmError(f"data.corpus={cfg.corpus!r} is unknown; use one of {', '.join(CORPORA)}.")


def load_split(cfg, split: str) -> torch.Tensor:
    """LongTensor[N, cfg.seq_len] of token ids for `split` ('train', 'valid' or 'test') of the corpus `cfg` names."""
    require(split in SPLITS, f"split={split!r} is unknown; use train, valid or test.")
    require(cfg.corpus in CORPORA, f"data.corpus={cfg.corpus!r} is unknown; use one of {', '.join(CORPORA)}.")
    if cfg.corpus == "text8":
        require(cfg.tokenizer == "char", f"data.tokenizer={cfg.tokenizer!r} does not fit corpus text8, which is "
                                         "character level; set data.tokenizer=char.")
        return load_text8(find_text8(cfg.path), split, cfg.seq_len)
    if cfg.corpus == "puzzles":
        return load_puzzle_split(cfg, split)
    require(not cfg.tokenizer.startswith("puzzle:"), f"data.tokenizer={cfg.tokenizer!r} only fits corpus puzzles, "
            f"not {cfg.corpus}; set data.corpus=puzzles.")
    require(cfg.tokenizer != "char", f"data.tokenizer=char only fits corpus text8, not {cfg.corpus}; use gpt2, "
                                     "tiktoken:FILE or hf:NAME_OR_PATH.")
    return load_token_split(open_corpus(cfg), build_tokenizer(cfg), split, cfg.seq_len, cfg.valid_fraction)


__all__ = [
    "CORPORA", "SPLITS", "TEXT8_ALPHABET", "CharTokenizer", "Corpus", "HFTokenizer", "Text8Source",
    "TiktokenTokenizer", "build_tokenizer", "cache_dir", "check_vocab", "find_text8", "load_split", "load_text8",
    "load_token_split", "open_corpus", "wrap_documents",
]
