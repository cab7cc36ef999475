"""Puzzle directories: the train, valid and test puzzles of one shape, as `edlm data puzzles` writes them
and `data.corpus=puzzles` reads them (docs/puzzles.md, Training data).

Layout: `train.txt`, `valid.txt`, `test.txt`, one puzzle per line (`edlm.puzzles.lines`); for Sudoku also
`train-solutions.txt` and so on, the solution of each line; and `puzzles.json`, what made them:
{"format": "edlm-puzzles", "version": 1, "shape", "givens" (Sudoku; null for Zebra), "seed", "counts":
{split: count}}. Puzzle i of a split is `edlm.puzzles.datasets`' puzzle i for that shape, givens and
seed, so a directory is a pure function of its manifest, whatever the number of worker processes.
"""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from edlm.errors import require
from edlm.puzzles.datasets import SPLITS, sudoku_set, zebra_set
from edlm.puzzles.lines import board_text, read_puzzle_file, read_solved_sudoku
from edlm.puzzles.sudoku import MIN_GIVENS
from edlm.puzzles.tokenizer import parse_shape
from edlm.util.atomic import atomic_directory
from edlm.util.progress import progress_bar

MANIFEST = "puzzles.json"
FORMAT, VERSION = "edlm-puzzles", 1
CHUNK = 100  # puzzles per task of a worker process


def puzzle_path(directory, split: str) -> Path:
    return Path(directory) / f"{split}.txt"


def solutions_path(directory, split: str) -> Path:
    return Path(directory) / f"{split}-solutions.txt"


def manifest(shape: str, givens: int | None, seed: int, counts: dict[str, int]) -> dict:
    """The manifest of a directory; EdlmError for a shape, givens or counts that cannot be generated."""
    kind, size, _ = parse_shape(shape)
    if kind == "sudoku":
        require(givens is not None and MIN_GIVENS[size] <= givens <= size * size,
                f"--givens {givens} is out of range for {shape} boards; use {MIN_GIVENS[size]} to {size * size}.")
    else:
        require(givens is None, f"--givens applies to Sudoku boards, not to {shape} puzzles; drop it.")
    require(set(counts) == set(SPLITS) and all(n >= 0 for n in counts.values()),
            f"the counts {counts} must give train, valid and test, each at least 0.")
    return {"format": FORMAT, "version": VERSION, "shape": shape, "givens": givens, "seed": seed,
            "counts": {split: counts[split] for split in SPLITS}}


def generate_lines(meta: dict, split: str, first: int, count: int) -> list[tuple[str, str | None]]:
    """(puzzle line, solution line or None) of puzzles first .. first + count - 1 of `split`."""
    kind, a, b = parse_shape(meta["shape"])
    if kind == "sudoku":
        pairs = sudoku_set(a, meta["givens"], count, split, meta["seed"], first)
        return [(board_text(p), board_text(s)) for p, s in pairs]
    return [(z.text(), None) for z in zebra_set(a, b, count, split, meta["seed"], first)]


def _task(args) -> list[tuple[str, str | None]]:
    return generate_lines(*args)


def write_puzzle_dir(out, meta: dict, workers: int = 1, progress: bool = True) -> Path:
    """Generate the puzzles of manifest `meta` into directory `out` (replaced atomically when it exists), with
    `workers` processes; returns `out`."""
    require(workers >= 1, f"--workers {workers} must be at least 1.")
    tasks = [(meta, split, first, min(CHUNK, meta["counts"][split] - first))
             for split in SPLITS for first in range(0, meta["counts"][split], CHUNK)]
    lines = {split: [] for split in SPLITS}
    bar = progress_bar(total=sum(meta["counts"].values()), desc=f"{meta['shape']} puzzles", unit="puzzle",
                       enabled=progress)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 1 else None
    try:
        for task, made in zip(tasks, pool.map(_task, tasks) if pool else map(_task, tasks)):
            lines[task[1]] += made
            bar.update(len(made))
    finally:
        bar.close()
        if pool:
            pool.shutdown(cancel_futures=True)
    with atomic_directory(Path(out)) as tmp:
        for split, made in lines.items():
            puzzle_path(tmp, split).write_text("".join(p + "\n" for p, _ in made))
            if made and made[0][1] is not None:
                solutions_path(tmp, split).write_text("".join(s + "\n" for _, s in made))
        (tmp / MANIFEST).write_text(json.dumps(meta, indent=2) + "\n")
    return Path(out)


def read_manifest(directory) -> dict | None:
    """The manifest of a puzzle directory, or None when it has none (puzzles from elsewhere), an unreadable one
    or one of another format."""
    path = Path(directory) / MANIFEST
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT and meta.get("version") == VERSION else None


def read_split(directory, split: str) -> list:
    """The puzzle records of `split` (`edlm.puzzles.lines`): Sudoku with a solutions file is read with
    `read_solved_sudoku` (no search), any other file with `read_puzzle_file`."""
    path, answers = puzzle_path(directory, split), solutions_path(directory, split)
    if answers.is_file():
        return read_solved_sudoku(path, answers)
    return read_puzzle_file(path, option="data.path")
