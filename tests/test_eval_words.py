"""Real-word fractions (`edlm.metrics.words`) against counts done by hand."""

from __future__ import annotations

import math

from edlm.metrics.words import real_word_fraction, word_vocabulary


def test_vocabulary_and_real_word_fraction_by_hand():
    vocabulary = word_vocabulary(" the cat sat on the\tmat \n")
    assert vocabulary == {"the", "cat", "sat", "on", "mat"}
    # "the" twice, "cat" once are real; "dgo" and "th" are not: 3 of 5 words, counted with repetition.
    assert real_word_fraction("the dgo cat  th the", vocabulary) == 3 / 5
    assert real_word_fraction("thecat", vocabulary) == 0.0  # no space, one word, not in the vocabulary
    assert real_word_fraction("mat", vocabulary) == 1.0
    assert math.isnan(real_word_fraction("   ", vocabulary))
