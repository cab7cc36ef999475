"""Token sequences of puzzles for each kind of model (docs/puzzles.md).

Every puzzle is first an `Instance`: `slots` answer cells with `values` possible values each (a Sudoku's
n*n cells with n digits; a Zebra grid's houses x attributes cells with one value per house), the
solution, which slots are given, the solver's order of the free slots, and context tokens that come
before the answer (a Zebra puzzle's clues; none for Sudoku). Two formats:

- "cells" (masked diffusion and Glauber diffusion models): `[context] [value of slot 0] ... [value of
  slot S-1]`, length C + S, vocabulary `values + context_vocab` (value v is id v; context id c is
  `values + c`). The context and the givens are clamped positions (`cells_clamp`): the sampler fills the
  rest.
- "pairs" (autoregressive models): `[context] [slot, value] ...`, every slot once as a pair of a slot id
  (`values + slot`) and a value id, the givens first (slot order) and then the free slots in the chosen
  order: "rowmajor" (slot order) or "solver" (`Instance.order`, the order a constraint-propagation solver
  fills them: the "with ordering" of AR puzzle solvers). Length C + 2S, vocabulary
  `values + slots + context_vocab`. The context and the given pairs are the prefix (`pairs_prefix`);
  the model writes the rest, choosing which slot comes next itself.

Decoding reads values back per slot; a slot the model left unreadable is -1 (always wrong).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edlm.errors import require
from edlm.puzzles.sudoku import solver_order
from edlm.puzzles.zebra import RELATIONS, UNARY, ZebraPuzzle, zebra_solver_order

FORMATS = ("cells", "pairs")
ORDERS = ("rowmajor", "solver")


@dataclass(frozen=True)
class Instance:
    """A puzzle as the formats see it (module doc). solution: the value (0-based) of each slot;
    given: whether each slot is part of the puzzle; order: the free slots in the solver's order;
    context: ids in [0, context_vocab) placed before the answer."""

    values: int
    solution: tuple[int, ...]
    given: tuple[bool, ...]
    order: tuple[int, ...]
    context: tuple[int, ...] = ()
    context_vocab: int = 0

    @property
    def slots(self) -> int:
        return len(self.solution)


def sudoku_instance(puzzle, solution, with_order: bool = True) -> Instance:
    """A Sudoku board (digits, 0 = blank) and its solution as an Instance: value d - 1 for digit d.
    with_order=False leaves `order` empty (only the "solver" order of the pairs format reads it; computing
    it is most of the cost on 9x9 boards)."""
    size = round(len(solution) ** 0.5)
    return Instance(size, tuple(d - 1 for d in solution), tuple(d != 0 for d in puzzle),
                    tuple(solver_order(puzzle, solution)) if with_order else ())


def zebra_vocab(houses: int, attributes: int) -> int:
    """Context ids of a Zebra format: entities (attribute * m + value), the relations, houses, a pad id."""
    return attributes * houses + len(RELATIONS) + houses + 1


def zebra_instance(puzzle: ZebraPuzzle, max_clues: int) -> Instance:
    """A Zebra puzzle as an Instance: slot house * k + attribute holds the attribute's value in that house;
    the context is its clues, three ids each (entity, relation, entity or house), padded to `max_clues`."""
    m, k = puzzle.houses, puzzle.attributes
    require(len(puzzle.clues) <= max_clues, f"the puzzle has {len(puzzle.clues)} clues, more than "
            f"max_clues={max_clues}; raise max_clues.")
    relations, houses = k * m, k * m + len(RELATIONS)
    pad = houses + m
    context = []
    for clue in puzzle.clues:
        second = houses + clue.second if clue.relation in UNARY else clue.second[0] * m + clue.second[1]
        context += [clue.first[0] * m + clue.first[1], relations + RELATIONS.index(clue.relation), second]
    context += [pad] * (3 * (max_clues - len(puzzle.clues)))
    solution = tuple(v for row in puzzle.solution for v in row)
    return Instance(m, solution, (False,) * len(solution), tuple(zebra_solver_order(puzzle)), tuple(context),
                    zebra_vocab(m, k))


def shape_of(record) -> str:
    """The shape of a puzzle record: "sudoku-NxN" for a (puzzle, solution) pair of boards, "zebra-MxK" for a
    ZebraPuzzle of M houses and K attributes."""
    if isinstance(record, ZebraPuzzle):
        return f"zebra-{record.houses}x{record.attributes}"
    size = round(len(record[1]) ** 0.5)
    return f"sudoku-{size}x{size}"


def instance_of(record, max_clues: int = 0, with_order: bool = True) -> Instance:
    """The Instance of a puzzle record (`shape_of`); `max_clues` pads a Zebra puzzle's clues (Sudoku has none)."""
    if isinstance(record, ZebraPuzzle):
        return zebra_instance(record, max_clues)
    return sudoku_instance(*record, with_order=with_order)


def vocab_size(fmt: str, instance: Instance) -> int:
    """The vocabulary of a format for puzzles shaped like `instance`."""
    require(fmt in FORMATS, f"format {fmt!r} is unknown; use one of {', '.join(FORMATS)}.")
    return instance.values + (instance.slots if fmt == "pairs" else 0) + instance.context_vocab


def seq_len(fmt: str, instance: Instance) -> int:
    require(fmt in FORMATS, f"format {fmt!r} is unknown; use one of {', '.join(FORMATS)}.")
    return len(instance.context) + instance.slots * (2 if fmt == "pairs" else 1)


def _context(fmt: str, instance: Instance) -> list[int]:
    offset = instance.values + (instance.slots if fmt == "pairs" else 0)
    return [offset + c for c in instance.context]


def cells_tokens(instance: Instance) -> torch.Tensor:
    """Long[C + S]: the context, then the solution's value of every slot."""
    return torch.tensor(_context("cells", instance) + list(instance.solution), dtype=torch.long)


def cells_clamp(instance: Instance) -> torch.Tensor:
    """Long[C + S]: the clamped ids of the cells format (context and givens), -1 at the free slots."""
    values = [v if g else -1 for v, g in zip(instance.solution, instance.given)]
    return torch.tensor(_context("cells", instance) + values, dtype=torch.long)


def _pair_order(instance: Instance, order: str) -> list[int]:
    require(order in ORDERS, f"order {order!r} is unknown; use one of {', '.join(ORDERS)}.")
    givens = [s for s in range(instance.slots) if instance.given[s]]
    free = list(instance.order) if order == "solver" else [s for s in range(instance.slots) if not instance.given[s]]
    require(len(givens) + len(free) == instance.slots, "the instance has no solver order; build it with "
            "with_order=True for the solver order.")
    return givens + free


def pairs_tokens(instance: Instance, order: str) -> torch.Tensor:
    """Long[C + 2S]: the context, then (slot id, value id) for the givens and the free slots in `order`."""
    pairs = [t for s in _pair_order(instance, order) for t in (instance.values + s, instance.solution[s])]
    return torch.tensor(_context("pairs", instance) + pairs, dtype=torch.long)


def pairs_prefix(instance: Instance) -> torch.Tensor:
    """Long[C + 2G]: the prefix of the pairs format, the context and the G given pairs (the same in both orders)."""
    return pairs_tokens(instance, "rowmajor")[:len(instance.context) + 2 * sum(instance.given)]


def decode_cells(tokens, instance: Instance) -> tuple[int, ...]:
    """The value of every slot read from a cells sequence Long[C + S]; -1 where the id is not a value."""
    answer = [int(t) for t in tokens[len(instance.context):]]
    return tuple(v if 0 <= v < instance.values else -1 for v in answer)


def decode_pairs(tokens, instance: Instance) -> tuple[int, ...]:
    """The value of every slot read from a pairs sequence Long[C + 2S]: each well-formed pair (a slot id,
    then a value id) sets its slot once, the first time it appears; given slots keep their value (the
    givens are never changed); a slot no pair sets is -1."""
    answer = [v if g else -1 for v, g in zip(instance.solution, instance.given)]
    ids = [int(t) for t in tokens[len(instance.context):]]
    for slot_id, value in zip(ids[0::2], ids[1::2]):
        slot = slot_id - instance.values
        if 0 <= slot < instance.slots and answer[slot] == -1 and 0 <= value < instance.values:
            answer[slot] = value
    return tuple(answer)
