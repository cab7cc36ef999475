"""The text8 character alphabet and its tokenizer: id 0 is space, ids 1..26 are a..z.

The mask id (27) belongs to the model, not to the tokenizer: `CharTokenizer.vocab_size` is 27.
"""

from __future__ import annotations

import numpy as np

from edlm.errors import EdlmError

TEXT8_ALPHABET = " abcdefghijklmnopqrstuvwxyz"

# Byte value -> character id, -1 for bytes outside the alphabet.
_BYTE_TO_ID = np.full(256, -1, dtype=np.int8)
_BYTE_TO_ID[np.frombuffer(TEXT8_ALPHABET.encode(), dtype=np.uint8)] = np.arange(len(TEXT8_ALPHABET), dtype=np.int8)


def bytes_to_ids(raw: np.ndarray, *, source: str = "text", offset: int = 0) -> np.ndarray:
    """Character ids (int8[n]) of raw text8 bytes (uint8[n]) through one vectorised table lookup.

    A byte outside the alphabet raises EdlmError naming it and its position `offset + i` in `source`.
    """
    ids = _BYTE_TO_ID[raw]
    bad = np.flatnonzero(ids < 0)
    if bad.size:
        i, byte = int(bad[0]), int(raw[bad[0]])
        char = repr(chr(byte)) if byte < 128 else f"byte 0x{byte:02x} (not ASCII)"
        raise EdlmError(f"{source} has the character {char} at offset {offset + i:,}, outside the text8 alphabet "
                        "(space and a-z); clean the text to lower-case a-z and spaces.")
    return ids


class CharTokenizer:
    """text8 characters: `encode(" ab") == [0, 1, 2]`; decode renders ids outside 0..26 (e.g. the mask) as '_'."""

    name = "char"
    vocab_size = len(TEXT8_ALPHABET)
    eos_id = None
    fingerprint = "char:" + TEXT8_ALPHABET

    def encode(self, text: str) -> list[int]:
        if not text.isascii():
            i, char = next((i, c) for i, c in enumerate(text) if not c.isascii())
            raise EdlmError(f"the text to encode has the character {char!r} at offset {i:,}, outside the text8 "
                            "alphabet (space and a-z); clean the text to lower-case a-z and spaces.")
        raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        return bytes_to_ids(raw, source="the text to encode").astype(np.int64).tolist()

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    def decode(self, ids) -> str:
        return "".join(TEXT8_ALPHABET[i] if 0 <= i < self.vocab_size else "_" for i in map(int, ids))
