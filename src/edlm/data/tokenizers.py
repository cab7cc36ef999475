"""Tokenizers named by `data.tokenizer`, all with `name`, `vocab_size`, `eos_id`, `encode`, `encode_batch`, `decode`
and `fingerprint` (a string that identifies the vocabulary and rules exactly, or None when unknown; it keys the
token cache).

- "char": text8 characters (`CharTokenizer`, 27 ids, no EOS).
- "gpt2": GPT-2's BPE (tiktoken `r50k_base`, 50,257 ids, EOS `<|endoftext|>` = 50256) from a local ranks file:
  $EDLM_GPT2_TIKTOKEN, else the copy bundled with edlm (`edlm/assets/gpt2.tiktoken`), else
  `whisper/assets/gpt2.tiktoken` of an installed openai-whisper, else tiktoken's own
  `get_encoding("r50k_base")` (which needs tiktoken's cache or the network). The file must be the real one
  (its sha256 is checked).
- "tiktoken:FILE": any tiktoken ranks file with GPT-2's split pattern; EOS `<|endoftext|>` gets the id after the
  ranks, so the vocabulary has len(ranks) + 1 ids (for GPT-2's file: 50256 and 50257).
- "hf:NAME_OR_PATH": `transformers.AutoTokenizer` (a local directory works offline); `vocab_size` counts added
  tokens too, EOS is the tokenizer's `eos_token`.
- "puzzle:SHAPE:FORMAT": Sudoku or Zebra puzzles in a token format (`edlm.puzzles.tokenizer`, no EOS).

Decoding renders ids outside the vocabulary (the model's mask id) as `[MASK]` ('_' for characters).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.util
import os
from pathlib import Path

from edlm.data.chars import CharTokenizer
from edlm.data.files import data_root, file_digest, resolve_data_path
from edlm.errors import EdlmError, require
from edlm.puzzles.tokenizer import PREFIX as PUZZLE_PREFIX
from edlm.puzzles.tokenizer import PuzzleTokenizer

GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
ENDOFTEXT = "<|endoftext|>"
MASK_TEXT = "[MASK]"
# GPT-2's pre-tokenizer pattern in tiktoken's faster, equivalent form (tiktoken_ext.openai_public.r50k_pat_str).
R50K_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
_GPT2_HELP = ("GPT-2's BPE file was not found; set EDLM_GPT2_TIKTOKEN to a copy of gpt2.tiktoken (the openai-whisper "
              "sdist on PyPI ships it: pip download --no-deps --no-binary :all: openai-whisper, then take "
              "whisper/assets/gpt2.tiktoken from the archive) or install openai-whisper")


def _decode_in_vocab(ids, vocab_size: int, decode) -> str:
    """`decode` over runs of in-vocabulary ids, with MASK_TEXT for each id outside [0, vocab_size)."""
    parts, run = [], []
    for i in map(int, ids):
        if 0 <= i < vocab_size:
            run.append(i)
            continue
        if run:
            parts.append(decode(run))
            run = []
        parts.append(MASK_TEXT)
    if run:
        parts.append(decode(run))
    return "".join(parts)


def read_tiktoken_ranks(path: Path) -> dict[bytes, int]:
    """Token bytes -> rank from a tiktoken file (lines `base64(token) rank`); ranks must be exactly 0..n-1."""
    ranks = {}
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error):
            raise EdlmError(f"line {number} of the tiktoken file {path} is {line[:60]!r}, not 'base64-token rank'; "
                            "pass a tiktoken ranks file (such as gpt2.tiktoken).") from None
    require(sorted(ranks.values()) == list(range(len(ranks))),
            f"the tiktoken file {path} has {len(ranks):,} tokens whose ranks are not exactly 0..{len(ranks) - 1:,} "
            "(duplicates or gaps); pass a complete tiktoken ranks file.")
    return ranks


class TiktokenTokenizer:
    """A tiktoken BPE with GPT-2's pattern; `encode` treats `<|endoftext|>` in the text as plain text."""

    def __init__(self, name: str, encoding, fingerprint: str):
        self.name = name
        self.fingerprint = fingerprint
        self._encoding = encoding
        self.eos_id = encoding.eot_token
        self.vocab_size = encoding.n_vocab

    @classmethod
    def from_file(cls, path: Path, name: str) -> "TiktokenTokenizer":
        import tiktoken

        ranks = read_tiktoken_ranks(path)
        encoding = tiktoken.Encoding(name=name, pat_str=R50K_PATTERN, mergeable_ranks=ranks,
                                     special_tokens={ENDOFTEXT: len(ranks)})
        return cls(name, encoding, "tiktoken:" + file_digest(path, "sha256"))

    def encode(self, text: str) -> list[int]:
        return self._encoding.encode_ordinary(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        # A plain loop: tiktoken's threaded encode_ordinary_batch was 2.3x slower on a 2-core machine.
        return [self._encoding.encode_ordinary(text) for text in texts]

    def decode(self, ids) -> str:
        return _decode_in_vocab(ids, self.vocab_size, self._encoding.decode)


class HFTokenizer:
    """A `transformers` tokenizer; encoding never adds special tokens (wrapping adds EOS itself)."""

    def __init__(self, name_or_path: str):
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise EdlmError(f"tokenizer hf:{name_or_path} needs transformers; install it with "
                            "pip install 'edlm[hf]'.") from None
        try:
            self._tok = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False)
        except (OSError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise EdlmError(f"could not load the Hugging Face tokenizer {name_or_path!r} ({first}); pass a local "
                            "directory saved with save_pretrained, or a hub name when the hub is reachable.") from None
        self.name = "hf:" + name_or_path
        self.vocab_size = len(self._tok)
        self.eos_id = self._tok.eos_token_id
        backend = getattr(self._tok, "backend_tokenizer", None)
        self.fingerprint = None if backend is None else "hf:" + hashlib.sha256(backend.to_str().encode()).hexdigest()

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self._tok(texts, add_special_tokens=False, verbose=False)["input_ids"] if texts else []

    def decode(self, ids) -> str:
        return _decode_in_vocab(ids, self.vocab_size,
                                lambda run: self._tok.decode(run, clean_up_tokenization_spaces=False))


def gpt2_ranks_file() -> Path | None:
    """GPT-2's local ranks file: $EDLM_GPT2_TIKTOKEN, else edlm's bundled copy, else openai-whisper's, else None."""
    env = os.environ.get("EDLM_GPT2_TIKTOKEN", "")
    if env:
        path = Path(env).expanduser()
        require(path.is_file(), f"EDLM_GPT2_TIKTOKEN={env!r} is not a file; {_GPT2_HELP}.")
        return path
    bundled = Path(__file__).resolve().parents[1] / "assets" / "gpt2.tiktoken"
    if bundled.is_file():
        return bundled
    spec = importlib.util.find_spec("whisper")
    if spec is not None and spec.origin:
        path = Path(spec.origin).parent / "assets" / "gpt2.tiktoken"
        if path.is_file():
            return path
    return None


def gpt2_tokenizer() -> TiktokenTokenizer:
    """GPT-2's BPE from a local file, else from tiktoken's cache or download (see the module docstring)."""
    path = gpt2_ranks_file()
    if path is not None:
        digest = file_digest(path, "sha256")
        require(digest == GPT2_RANKS_SHA256, f"{path} has sha256 {digest}, not GPT-2's r50k_base ranks "
                                             f"({GPT2_RANKS_SHA256}); use tokenizer tiktoken:{path} for another "
                                             "vocabulary, or point EDLM_GPT2_TIKTOKEN at the real gpt2.tiktoken.")
        return TiktokenTokenizer.from_file(path, "gpt2")
    import tiktoken

    try:
        encoding = tiktoken.get_encoding("r50k_base")  # checks the same sha256 itself
    except Exception as err:  # tiktoken raises requests/urllib/OS errors of many types when offline
        raise EdlmError(f"{_GPT2_HELP} (tiktoken's own download failed: {type(err).__name__}).") from None
    return TiktokenTokenizer("gpt2", encoding, "tiktoken:" + GPT2_RANKS_SHA256)


def _local_or_name(name_or_path: str) -> str:
    """A Hugging Face name or path: an existing path as is, else relative to $EDLM_DATA if it exists there."""
    root = data_root()
    if not Path(name_or_path).exists() and root is not None and (root / name_or_path).exists():
        return str(root / name_or_path)
    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    require(not looks_local or Path(name_or_path).expanduser().exists(),
            f"tokenizer hf:{name_or_path} names a directory that does not exist; pass a directory saved with "
            "save_pretrained.")
    return str(Path(name_or_path).expanduser()) if looks_local else name_or_path


def build_tokenizer(spec):
    """The tokenizer a spec names (`char`, `gpt2`, `tiktoken:FILE`, `hf:NAME_OR_PATH`, `puzzle:SHAPE:FORMAT`; see
    the module docstring), given as a string or as a DataConfig (its `tokenizer` field)."""
    spec = getattr(spec, "tokenizer", spec)
    if spec == "char":
        return CharTokenizer()
    if spec == "gpt2":
        return gpt2_tokenizer()
    if spec.startswith("tiktoken:"):
        path = resolve_data_path(spec[len("tiktoken:"):], "the tiktoken ranks file")
        require(path.is_file(), f"data.tokenizer={spec!r} names {path}, which is not a file; pass a tiktoken ranks file.")
        return TiktokenTokenizer.from_file(path, "tiktoken:" + path.name)
    if spec.startswith("hf:"):
        return HFTokenizer(_local_or_name(spec[len("hf:"):]))
    if spec.startswith(PUZZLE_PREFIX):
        return PuzzleTokenizer(spec)
    raise EdlmError(f"data.tokenizer={spec!r} is unknown; use char, gpt2, tiktoken:FILE, hf:NAME_OR_PATH or "
                    "puzzle:SHAPE:FORMAT.")


def check_vocab(tokenizer, vocab_size: int) -> None:
    """Raise EdlmError unless a model's data vocabulary `vocab_size` equals the tokenizer's."""
    require(vocab_size == tokenizer.vocab_size,
            f"model.vocab_size={vocab_size} does not match the {tokenizer.vocab_size:,} ids of tokenizer "
            f"{tokenizer.name}; set model.vocab_size={tokenizer.vocab_size}.")
