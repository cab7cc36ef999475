"""Zebra (Einstein) puzzles: m houses in a row, k attributes with m values each; every value of an
attribute lives in exactly one house. Clues relate values (docs/puzzles.md), and the answer is the
solution grid, the value of every attribute in every house (the format of Shah et al. 2024: a clue
section, then the grid).

A value is an entity `(attribute, value)`, written `A1` (attribute letter, 1-based value). Clue
relations, on the houses h(x), h(y) of two entities (1-based houses in text):

    same: h(x) = h(y)          not-same: h(x) != h(y)        left-of: h(x) < h(y)     right-of: h(x) > h(y)
    next-to: |h(x) - h(y)| = 1  just-left-of: h(y) = h(x) + 1  in: h(x) = house      not-in: h(x) != house

The exact solver keeps, for every entity, the bitmask of houses it may still be in; it propagates the
clues (each binary clue narrowed in both directions) and the attributes' all-different constraints
(a house left to one value; a value left in one house) and branches on the entity with the fewest
houses. The generator draws a random grid, adds random true clues until the solver finds one
solution, then drops every clue it can without losing uniqueness (a minimal clue set).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from edlm.errors import EdlmError, require

RELATIONS = ("same", "not-same", "left-of", "right-of", "next-to", "just-left-of", "in", "not-in")
UNARY = ("in", "not-in")
SIZES = range(3, 7)  # houses and attributes each
LETTERS = "ABCDEF"


@dataclass(frozen=True)
class Clue:
    """One clue: `relation` between entity `first` = (attribute, value) and `second`, an entity for the
    binary relations or a house index (0-based) for "in" / "not-in"."""

    relation: str
    first: tuple[int, int]
    second: tuple[int, int] | int

    def holds(self, grid) -> bool:
        """Whether the clue is true of a solution grid (grid[house][attribute] = value)."""
        hx = _house(grid, self.first)
        hy = self.second if self.relation in UNARY else _house(grid, self.second)
        return {"same": hx == hy, "not-same": hx != hy, "left-of": hx < hy, "right-of": hx > hy,
                "next-to": abs(hx - hy) == 1, "just-left-of": hy == hx + 1, "in": hx == hy,
                "not-in": hx != hy}[self.relation]

    def text(self) -> str:
        second = str(self.second + 1) if self.relation in UNARY else entity_text(self.second)
        return f"{entity_text(self.first)} {self.relation} {second}"


@dataclass(frozen=True)
class ZebraPuzzle:
    """houses m, attributes k, clues, and the solution grid: `solution[h][a]` is the value (0-based) of
    attribute a in house h."""

    houses: int
    attributes: int
    clues: tuple[Clue, ...]
    solution: tuple[tuple[int, ...], ...]

    def text(self) -> str:
        """One line: `clue ; clue ; ... | 1: A2 B1 ; 2: A1 B2 ; ...` (the clue section, then the grid)."""
        return " ; ".join(c.text() for c in self.clues) + " | " + grid_text(self.solution)


def entity_text(entity: tuple[int, int]) -> str:
    """`A1` for (attribute 0, value 0); `A?` for a value of -1 (unknown)."""
    return f"{LETTERS[entity[0]]}{entity[1] + 1 if entity[1] >= 0 else '?'}"


def grid_text(grid) -> str:
    """The grid section of a puzzle's line, `1: A2 B1 ; 2: A1 B2 ; ...` (grid[house][attribute] = value)."""
    return " ; ".join(f"{h + 1}: " + " ".join(entity_text((a, v)) for a, v in enumerate(row))
                      for h, row in enumerate(grid))


def _house(grid, entity: tuple[int, int]) -> int:
    attribute, value = entity
    return next(h for h, row in enumerate(grid) if row[attribute] == value)


def _check_size(houses: int, attributes: int) -> None:
    require(houses in SIZES and attributes in SIZES,
            f"a Zebra puzzle of {houses} houses and {attributes} attributes is not supported; use 3 to 6 of each.")


# ---- the exact solver ------------------------------------------------------------------------------

_CONVERSE = {"same": "same", "not-same": "not-same", "left-of": "right-of", "right-of": "left-of",
             "next-to": "next-to", "just-left-of": "just-right-of"}


def _support(relation: str, other: int, full: int) -> int:
    """The houses of x (a bitmask) that have a partner in `other` (the houses y may be in) under relation."""
    if relation == "same":
        return other
    if relation == "not-same":
        return full & ~other if other.bit_count() == 1 else full
    if relation == "left-of":  # h(x) < max h(y)
        return (1 << (other.bit_length() - 1)) - 1 if other else 0
    if relation == "right-of":  # h(x) > min h(y)
        return full & ~((other & -other) * 2 - 1) if other else 0
    if relation == "next-to":
        return ((other << 1) | (other >> 1)) & full
    if relation == "just-left-of":  # h(y) = h(x) + 1
        return other >> 1
    return (other << 1) & full  # just-right-of: h(x) = h(y) + 1


class _Solver:
    """Domains: one bitmask of houses per entity, index attribute * m + value."""

    def __init__(self, houses: int, attributes: int, clues) -> None:
        self.m, self.k, self.clues = houses, attributes, tuple(clues)
        self.full = (1 << houses) - 1

    def start(self) -> list[int] | None:
        domains = [self.full] * (self.m * self.k)
        for clue in self.clues:
            if clue.relation in UNARY:
                x = clue.first[0] * self.m + clue.first[1]
                bit = 1 << clue.second
                domains[x] &= bit if clue.relation == "in" else ~bit
        return domains if self.propagate(domains) else None

    def propagate(self, domains: list[int]) -> bool:
        """Narrow `domains` in place to a fixed point; False when some entity has no house left."""
        changed = True
        while changed:
            changed = False
            for clue in self.clues:
                if clue.relation in UNARY:
                    continue
                x = clue.first[0] * self.m + clue.first[1]
                y = clue.second[0] * self.m + clue.second[1]
                for a, b, rel in ((x, y, clue.relation), (y, x, _CONVERSE[clue.relation])):
                    narrowed = domains[a] & _support(rel, domains[b], self.full)
                    if narrowed != domains[a]:
                        domains[a], changed = narrowed, True
            for attribute in range(self.k):
                row = range(attribute * self.m, (attribute + 1) * self.m)
                for i in row:
                    if domains[i].bit_count() == 1:
                        for j in row:
                            if j != i and domains[j] & domains[i]:
                                domains[j] &= ~domains[i]
                                changed = True
                for h in range(self.m):
                    holders = [i for i in row if domains[i] >> h & 1]
                    if len(holders) == 1 and domains[holders[0]] != 1 << h:
                        domains[holders[0]] = 1 << h
                        changed = True
            if any(d == 0 for d in domains):
                return False
        return True

    def grid(self, domains: list[int]) -> tuple[tuple[int, ...], ...]:
        grid = [[0] * self.k for _ in range(self.m)]
        for i, d in enumerate(domains):
            grid[d.bit_length() - 1][i // self.m] = i % self.m
        return tuple(map(tuple, grid))

    def solutions(self, limit: int) -> list[tuple[tuple[int, ...], ...]]:
        found = []

        def search(domains: list[int]) -> None:
            open_ = [i for i, d in enumerate(domains) if d.bit_count() > 1]
            if not open_:
                found.append(self.grid(domains))
                return
            i = min(open_, key=lambda j: (domains[j].bit_count(), j))
            for h in range(self.m):
                if domains[i] >> h & 1 and len(found) < limit:
                    branch = list(domains)
                    branch[i] = 1 << h
                    if self.propagate(branch):
                        search(branch)

        domains = self.start()
        if domains is not None:
            search(domains)
        return found


def zebra_solutions(houses: int, attributes: int, clues, limit: int = 2) -> list[tuple[tuple[int, ...], ...]]:
    """Up to `limit` solution grids (grid[house][attribute] = value) of the clues, found exactly."""
    _check_size(houses, attributes)
    return _Solver(houses, attributes, clues).solutions(limit)


def zebra_solver_order(puzzle: ZebraPuzzle) -> list[int]:
    """The cells of the solution grid (index house * k + attribute) in the order the propagation solver
    fixes them: after each full propagation the newly fixed cells in index order; when stuck, the entity
    with the fewest houses left (lowest index first) is put in its house of the solution."""
    solver = _Solver(puzzle.houses, puzzle.attributes, puzzle.clues)
    m = puzzle.houses
    truth = [_house(puzzle.solution, (i // m, i % m)) for i in range(m * puzzle.attributes)]
    domains = solver.start()
    require(domains is not None, "the puzzle's clues contradict each other; pass a puzzle with a solution.")
    order, fixed = [], set()
    while True:
        new = [i for i, d in enumerate(domains) if d.bit_count() == 1 and i not in fixed]
        fixed.update(new)
        order += sorted((domains[i].bit_length() - 1) * puzzle.attributes + i // m for i in new)
        open_ = [i for i, d in enumerate(domains) if d.bit_count() > 1]
        if not open_:
            return order
        i = min(open_, key=lambda j: (domains[j].bit_count(), j))
        domains[i] = 1 << truth[i]
        require(solver.propagate(domains), "the solution contradicts the clues; pass the puzzle's own solution.")


# ---- the generator ---------------------------------------------------------------------------------

def _random_clue(grid, houses: int, attributes: int, rng: random.Random) -> Clue | None:
    """A random clue that is true of `grid`, or None when the drawn relation has no true instance."""
    relation = rng.choice(RELATIONS)
    a = rng.randrange(attributes)
    x = (a, rng.randrange(houses))
    hx = _house(grid, x)
    if relation in UNARY:
        others = [h for h in range(houses) if (h == hx) == (relation == "in")]
        return Clue(relation, x, rng.choice(others))
    pairs = [(b, grid[h][b]) for h in range(houses) for b in range(attributes) if b != a]
    true = [y for y in pairs if Clue(relation, x, y).holds(grid)]
    return Clue(relation, x, rng.choice(true)) if true else None


def generate_zebra(houses: int, attributes: int, rng: random.Random, accept=None,
                   max_clues: int = 200) -> ZebraPuzzle:
    """A Zebra puzzle with exactly one solution and a minimal set of clues (module doc); its grid is drawn
    again until `accept(grid)` holds (None accepts every grid; a split keeps only its own solutions)."""
    _check_size(houses, attributes)
    while True:
        columns = [rng.sample(range(houses), houses) for _ in range(attributes)]
        grid = tuple(tuple(columns[a][h] for a in range(attributes)) for h in range(houses))
        if accept is None or accept(grid):
            break
    clues: list[Clue] = []
    while len(zebra_solutions(houses, attributes, clues)) > 1:
        require(len(clues) < max_clues, f"no unique Zebra puzzle within {max_clues} clues; raise max_clues.")
        clue = _random_clue(grid, houses, attributes, rng)
        if clue is not None and clue not in clues:
            clues.append(clue)
    for clue in rng.sample(clues, len(clues)):
        rest = [c for c in clues if c != clue]
        if len(zebra_solutions(houses, attributes, rest)) == 1:
            clues = rest
    return ZebraPuzzle(houses, attributes, tuple(clues), grid)


def parse_zebra(line: str, number: int) -> ZebraPuzzle:
    """The puzzle of one line of `ZebraPuzzle.text()`; EdlmError naming line `number` when it is malformed,
    its clues contradict the grid, or its clues have more than one solution."""
    try:
        clue_part, grid_part = line.strip().split(" | ")
        rows = [part.split(": ")[1].split() for part in grid_part.split(" ; ")]
        solution = tuple(tuple(int(e[1:]) - 1 for e in row) for row in rows)
        clues = []
        for text in clue_part.split(" ; ") if clue_part else []:
            first, relation, second = text.split()
            entity = (LETTERS.index(first[0]), int(first[1:]) - 1)
            other = int(second) - 1 if relation in UNARY else (LETTERS.index(second[0]), int(second[1:]) - 1)
            if relation not in RELATIONS:
                raise ValueError(relation)
            clues.append(Clue(relation, entity, other))
    except (ValueError, IndexError):
        raise EdlmError(f"line {number} is not a Zebra puzzle ('clue ; clue | 1: A1 B2 ; 2: ...' with relations "
                        f"{', '.join(RELATIONS)}); fix or remove it.") from None
    puzzle = ZebraPuzzle(len(solution), len(solution[0]) if solution else 0, tuple(clues), solution)
    require(puzzle.houses in SIZES and puzzle.attributes in SIZES,
            f"line {number} has {puzzle.houses} houses and {puzzle.attributes} attributes; use 3 to 6 of each.")
    found = zebra_solutions(puzzle.houses, puzzle.attributes, clues)
    require(len(found) == 1 and found[0] == solution,
            f"line {number}: its clues have {len(found) if len(found) < 2 else 'several'} solution(s)"
            f"{'' if len(found) != 1 else ', and not the grid given'}; pass a puzzle whose clues fix its grid.")
    return puzzle
