"""Solving puzzles with a model (`edlm.sampling.puzzles`): exact answers from oracle models give accuracy 1
on Sudoku and Zebra puzzles, a uniform denoiser gives the chance level, and the givens never change."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from edlm.errors import EdlmError
from edlm.puzzles.datasets import sudoku_set, zebra_set
from edlm.puzzles.score import score_answers
from edlm.puzzles.tokens import (cells_clamp, cells_tokens, pairs_prefix, pairs_tokens, seq_len, sudoku_instance,
                                 vocab_size, zebra_instance)
from edlm.sampling.clamped_ar import clamped_ar_sample
from edlm.sampling.glauber_diffusion import fixed_order
from edlm.sampling.puzzles import reverse_calls, solve


@pytest.fixture(scope="module")
def instances():
    return [sudoku_instance(p, s) for p, s in sudoku_set(6, 14, 40, "test", seed=1)]


@pytest.fixture(scope="module")
def zebra_instances():
    return [zebra_instance(p, max_clues=9) for p in zebra_set(3, 4, 12, "test", seed=1)]


KINDS = ["instances", "zebra_instances"]


class OracleDenoiser:
    """A denoiser that finds the puzzle by its givens and clues (always visible) and returns its solution
    one-hot (or, with uniform=True, equal logits everywhere)."""

    def __init__(self, instances, uniform: bool = False):
        self.clamps = torch.stack([cells_clamp(i) for i in instances])
        self.targets = torch.stack([cells_tokens(i) for i in instances])
        self.vocab_size = vocab_size("cells", instances[0])
        self.uniform = uniform

    def __call__(self, xt, t):
        match = ((self.clamps[None] == xt[:, None]) | (self.clamps[None] < 0)).all(-1)
        logits = 50.0 * F.one_hot(self.targets[match.float().argmax(1)], self.vocab_size).float()
        return torch.zeros_like(logits) if self.uniform else logits


class OracleLM:
    """A causal LM with the incremental-decoding protocol that writes each puzzle's pairs in `order`:
    it finds the puzzle by the prefix fed so far and returns the next true token one-hot."""

    def __init__(self, instances, order: str):
        self.prefixes = [pairs_prefix(i).tolist() for i in instances]
        self.targets = [pairs_tokens(i, order).tolist() for i in instances]
        self.vocab_size = vocab_size("pairs", instances[0])
        self.bos_id = self.vocab_size

    def token_logprobs(self, x):
        raise NotImplementedError  # marks a causal LM; solving never scores

    def new_cache(self, batch, max_len):
        return [[] for _ in range(batch)]

    def next_logits(self, inputs, cache):
        rows = []
        for fed, new in zip(cache, inputs.tolist()):
            fed += [t for t in new if t != self.bos_id]
            target = next(t for p, t in zip(self.prefixes, self.targets) if fed[:len(p)] == p)
            rows.append(target[len(fed)])
        return 50.0 * F.one_hot(torch.tensor(rows), self.vocab_size).float()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("unmasking", ["random", "confidence", "margin"])
def test_an_oracle_denoiser_solves_every_board(request, kind, unmasking):
    instances = request.getfixturevalue(kind)
    solved = solve(OracleDenoiser(instances), instances, unmasking=unmasking, generator=torch.Generator().manual_seed(0))
    scores = score_answers(solved.answers, instances)
    assert scores["board_accuracy"] == 1.0 and scores["cell_accuracy"] == 1.0 and scores["givens_changed"] == 0
    blanks = torch.tensor([i.slots - sum(i.given) for i in instances])
    assert solved.method == "mdlm" and bool((solved.calls >= 1).all()) and bool((solved.calls <= blanks).all())


def test_a_uniform_denoiser_is_at_chance(instances):
    solved = solve(OracleDenoiser(instances, uniform=True), instances, generator=torch.Generator().manual_seed(0))
    scores = score_answers(solved.answers, instances)
    sd = (1 / 6 * 5 / 6 / scores["cells"]) ** 0.5  # cells are independent draws with p = 1/6
    assert abs(scores["cell_accuracy"] - 1 / 6) < 4 * sd
    assert scores["board_accuracy"] == 0.0 and scores["givens_changed"] == 0
    low, high = scores["cell_interval"]
    assert low < 1 / 6 < high


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("order", ["rowmajor", "solver"])
def test_an_oracle_lm_solves_every_board_in_either_order(request, kind, order):
    instances = request.getfixturevalue(kind)
    solved = solve(OracleLM(instances, order), instances, generator=torch.Generator().manual_seed(0))
    scores = score_answers(solved.answers, instances)
    assert solved.method == "ar" and scores["board_accuracy"] == 1.0
    length = seq_len("pairs", instances[0])
    assert solved.calls.tolist() == [length - len(i.context) - 2 * sum(i.given) for i in instances]


def test_a_wrong_vocabulary_is_refused(instances):
    class Small(OracleDenoiser):
        vocab_size = 4

    with pytest.raises(EdlmError, match="vocabulary of 4 ids, but these puzzles in the cells format of mdlm take 6"):
        solve(Small.__new__(Small), instances)
    with pytest.raises(EdlmError, match="rounds and block apply to Glauber diffusion models"):
        solve(OracleDenoiser(instances), instances, block=2)


class UniformLM:
    """A causal LM with equal logits everywhere that counts its next_logits calls."""

    vocab_size, bos_id, calls = 7, 7, 0

    def new_cache(self, batch, max_len):
        return None

    def next_logits(self, inputs, cache):
        self.calls += 1
        return torch.zeros(inputs.shape[0], self.vocab_size)


def test_clamped_causal_sampling_keeps_the_clamped_tokens():
    lm = UniformLM()
    fixed = torch.full((3, 10), -1)
    fixed[:, 3] = 5
    fixed[1, 0] = 2
    x = clamped_ar_sample(lm, fixed, torch.Generator().manual_seed(0))
    assert bool((x[:, 3] == 5).all()) and int(x[1, 0]) == 2 and bool(((x >= 0) & (x < 7)).all())
    assert lm.calls == 10 and len(set(x[:, 5].tolist()) | set(x[:, 6].tolist())) > 1
    with pytest.raises(EdlmError, match="pass Long"):
        clamped_ar_sample(lm, fixed.float())


def test_reverse_calls_count_the_groups_with_a_free_site():
    perms = fixed_order(2, 6)
    free = torch.tensor([[True] * 6, [False] * 6, [True] + [False] * 5])
    assert reverse_calls(free, perms, block=4).tolist() == [4, 0, 2]  # groups of 4 and 2 sites per round
    assert reverse_calls(free, perms, block=1).tolist() == [12, 0, 2]
