"""Scores of puzzle answers: whole-board accuracy and per-cell accuracy, each with a 95% interval
(docs/puzzles.md).

- A board is right when every slot holds its solution value and no given was changed. Its accuracy is a
  binomial proportion over puzzles; the interval is Wilson's score interval.
- Per-cell accuracy counts the free slots only (givens are right by construction): the fraction of all
  free slots filled correctly. Cells of one board are not independent, so its interval is the normal
  interval of a ratio estimator with the puzzle as the unit (the variance of `correct_i - r * free_i`
  across puzzles).
"""

from __future__ import annotations

import math

from edlm.errors import require
from edlm.puzzles.tokens import Instance

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion; (0, 1) when there are no trials."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    center = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return (0.0 if successes == 0 else center - half), (1.0 if successes == trials else center + half)


def ratio_interval(correct: list[int], totals: list[int], z: float = Z95) -> tuple[float, float, float]:
    """(ratio, low, high) of sum(correct) / sum(totals) with the puzzle-level (cluster) normal interval,
    clipped to [0, 1]; the interval is (ratio, ratio) for fewer than two puzzles."""
    n, total = len(correct), sum(totals)
    if total == 0:
        return float("nan"), 0.0, 1.0
    ratio = sum(correct) / total
    if n < 2:
        return ratio, ratio, ratio
    residual = sum((c - ratio * t) ** 2 for c, t in zip(correct, totals))
    se = math.sqrt(residual / (n * (n - 1))) / (total / n)
    return ratio, max(0.0, ratio - z * se), min(1.0, ratio + z * se)


def score_answers(answers, instances: list[Instance]) -> dict:
    """Scores of `answers` (one tuple of slot values per puzzle, -1 for unreadable) against `instances`:
    {"puzzles", "solved", "board_accuracy", "board_interval", "cells", "cells_correct", "cell_accuracy",
    "cell_interval", "givens_changed", "per_puzzle": [bool, ...]}."""
    require(len(answers) == len(instances), f"{len(answers)} answers for {len(instances)} puzzles; pass one each.")
    right, correct, free, changed = [], [], [], 0
    for answer, inst in zip(answers, instances):
        require(len(answer) == inst.slots, f"an answer has {len(answer)} slots, the puzzle {inst.slots}.")
        kept = all(a == v for a, v, g in zip(answer, inst.solution, inst.given) if g)
        changed += not kept
        hits = sum(a == v for a, v, g in zip(answer, inst.solution, inst.given) if not g)
        right.append(kept and hits == inst.slots - sum(inst.given))
        correct.append(hits)
        free.append(inst.slots - sum(inst.given))
    ratio, low, high = ratio_interval(correct, free)
    solved = sum(right)
    return {"puzzles": len(instances), "solved": solved,
            "board_accuracy": solved / len(instances) if instances else float("nan"),
            "board_interval": list(wilson_interval(solved, len(instances))),
            "cells": sum(free), "cells_correct": sum(correct), "cell_accuracy": ratio, "cell_interval": [low, high],
            "givens_changed": changed, "per_puzzle": right}
