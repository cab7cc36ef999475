"""Real words: how many of a text's words a corpus contains.

A word is a maximal run of non-whitespace characters (`str.split()`). `word_vocabulary(text)` is the set of
distinct words of a text (e.g. a training split); `real_word_fraction(text, vocabulary)` is the fraction of
the words of `text`, counted with repetition, that are in `vocabulary`: a number in [0, 1], NaN for a text
without words. For samples of fixed length the first and last words are usually cut, so compare the
fraction with that of real text cut the same way.
"""

from __future__ import annotations


def word_vocabulary(text: str) -> set[str]:
    """The distinct whitespace-separated words of `text`."""
    return set(text.split())


def real_word_fraction(text: str, vocabulary: set[str]) -> float:
    """Words of `text` (with repetition) found in `vocabulary` / words of `text`; NaN when `text` has none."""
    words = text.split()
    return sum(w in vocabulary for w in words) / len(words) if words else float("nan")
