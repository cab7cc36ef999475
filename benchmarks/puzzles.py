"""Sudoku and Zebra puzzles: Tables 6 and 7 of the Glauber-dynamics paper (App. B) at a size CPUs train.

Rows, on the test puzzles of a setting (whole-puzzle accuracy with Wilson's 95% interval, per-cell accuracy,
model calls per puzzle, and the compute each model took):

| row | model (recipe) | solving |
|---|---|---|
| AR without ordering | `SHAPE-ar` (pairs, free cells row-major) | continue the prefix of the given pairs |
| AR with ordering | `SHAPE-ar` with `pairs-solver` (the solver's order) | the same |
| MDLM vanilla / top-k probability / top-k margin | `SHAPE-mdlm` | `--unmasking random / confidence / margin` |
| Glauber N=1 / N=3 | `SHAPE-glauber` (N rounds) from `SHAPE-ul2` | causal start, N reverse rounds, `--block B` |

Settings: `sudoku-6x6` (10 givens, 50,000 training puzzles; Table 6 rows), `zebra-4x4` (4 houses, 4
attributes, 20,000 training puzzles; Table 7 rows, whose Glauber row is N=1 only), both for CPUs, and
`sudoku-9x9` (28 givens, 1.8M training puzzles, models of the paper's sizes) for GPUs
(docs/puzzles.md, The 9x9 setting on GPUs). Each setting writes its puzzles as `edlm data puzzles` does
into WORK/data/SETTING (reused when they are there), trains its models with `edlm train` into
WORK/runs/SETTING/MODEL (`--jobs` worker processes, one model at a time each with `--threads` torch
threads, its output in WORK/logs/SETTING-MODEL.log; a run that already reached its last step is reused,
one that stopped part way resumes), and solves the test puzzles with `edlm eval puzzles` into
WORK/eval/SETTING (an evaluation of the same command on the same weights is reused).

Compute: the CPU seconds (all threads of the worker process) and wall seconds of each model's training,
summed over invocations (WORK/compute/SETTING-MODEL.json); parameters; and approximate training FLOPs,
6 x parameters per trained token plus 2 x parameters per forward-only token (Glauber training's
heat-bath chain: batch x L tokens per step of the chain, counted as T = N x L steps per training step, an
upper bound). A Glauber row counts its UL2 pre-training too.

    python benchmarks/puzzles.py [--setting sudoku-6x6 zebra-4x4] [--work runs/puzzles-bench] [--jobs 2]
        [--threads 1] [--workers 2] [--device cpu] [--test 1000] [--seed 0] [--dry-run] [--out STEM]

writes STEM.json and STEM.md (default benchmarks/results/puzzles; with --dry-run WORK/dry-run). `--dry-run`
runs every step at toy sizes (a few puzzles, two training steps of one-layer models) in seconds. Solving
runs in this process with `--threads` torch threads.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from common import RESULTS, provenance, run_main, train_finished, write_results

from edlm.bench.text8 import fingerprint
from edlm.cli import main as edlm_main
from edlm.errors import require
from edlm.loading.checkpoint import read_checkpoint
from edlm.loading.pretrained import build_run_model
from edlm.puzzles.corpus import manifest, read_manifest, write_puzzle_dir
from edlm.puzzles.tokenizer import parse_shape
from edlm.train.checkpointing import latest_checkpoint
from edlm.util.atomic import write_text_atomic
from edlm.util.device import cpu_threads

# model: (recipe suffix, overrides, the model it starts from)
MODELS = {
    "ar": ("ar", [], None),
    "ar-solver": ("ar", ["data.tokenizer=puzzle:{shape}:pairs-solver"], None),
    "mdlm": ("mdlm", [], None),
    "ul2": ("ul2", [], None),
    "glauber-n1": ("glauber", ["train.init_from={runs}/ul2"], "ul2"),
    "glauber-n3": ("glauber", ["train.init_from={runs}/ul2", "train.glauber_rounds=3"], "ul2"),
}
# row: (model, `edlm eval puzzles` options; {block} is the setting's block)
ROWS = {
    "AR without ordering": ("ar", []),
    "AR with ordering": ("ar-solver", []),
    "MDLM vanilla": ("mdlm", ["--unmasking", "random"]),
    "MDLM top-k probability": ("mdlm", ["--unmasking", "confidence"]),
    "MDLM top-k margin": ("mdlm", ["--unmasking", "margin"]),
    "Glauber N=1": ("glauber-n1", ["--block", "{block}"]),
    "Glauber N=3": ("glauber-n3", ["--block", "{block}"]),
}
# The paper's accuracies (%): Table 6 (9x9 Sudoku), Table 7 (Zebra puzzles of Shah et al. 2024).
PAPER = {
    "sudoku": {"AR without ordering": 9.73, "AR with ordering": 87.18, "MDLM vanilla": 6.88,
               "MDLM top-k probability": 18.51, "MDLM top-k margin": 89.49, "Glauber N=1": 42.26,
               "Glauber N=3": 91.82},
    "zebra": {"AR without ordering": 80.3, "AR with ordering": 91.2, "MDLM vanilla": 76.9,
              "MDLM top-k probability": 98.5, "MDLM top-k margin": 98.3, "Glauber N=1": 94.1},
}
# (claim, better row, worse row): what the paper's tables show, checked at our size
CLAIMS = [
    ("margin ordering beats vanilla MDLM", "MDLM top-k margin", "MDLM vanilla"),
    ("the solver's ordering beats AR without it", "AR with ordering", "AR without ordering"),
    ("Glauber N=3 beats N=1", "Glauber N=3", "Glauber N=1"),
    ("Glauber N=3 beats AR without ordering", "Glauber N=3", "AR without ordering"),
    ("Glauber N=1 beats AR without ordering", "Glauber N=1", "AR without ordering"),
]
SIZE_9X9 = {  # the paper's sizes: about 6-7M parameters for MDLM and Glauber, 42M for AR
    "cells": ["model.vocab_size=9", "model.max_seq_len=81", "data.seq_len=81", "model.n_layers=8",
              "model.d_model=256", "model.n_heads=8"],
    "pairs": ["model.vocab_size=90", "model.max_seq_len=162", "data.seq_len=162", "model.n_layers=12",
              "model.d_model=512", "model.n_heads=8"],
}
GPU_SCHEDULE = ["train.batch_size=256", "train.lr=1e-3", "train.warmup_steps=1000", "train.ema=0.9999",
                "train.eval_every=5000", "train.save_every=5000", "train.log_every=100"]


@dataclass(frozen=True)
class Setting:
    """What one setting trains and solves: its puzzles (shape, Sudoku givens, training puzzles; 256 valid),
    the recipes `RECIPES-<model>` with overrides for every model and per model, its rows, the block of
    masked sites of Glauber solving, and the paper's numbers (PAPER key)."""

    shape: str
    givens: int | None
    train: int
    recipes: str
    block: int
    rows: tuple[str, ...]
    paper: str
    overrides: list[str] = field(default_factory=list)
    per_model: dict[str, list[str]] = field(default_factory=dict)


SETTINGS = {
    "sudoku-6x6": Setting("sudoku-6x6", 10, 50000, "sudoku-6x6", 3, tuple(ROWS), "sudoku"),
    "zebra-4x4": Setting("zebra-4x4", None, 20000, "zebra-4x4", 4, tuple(r for r in ROWS if r != "Glauber N=3"),
                         "zebra"),
    "sudoku-9x9": Setting(
        "sudoku-9x9", 28, 1800000, "sudoku-6x6", 6, tuple(ROWS), "sudoku", GPU_SCHEDULE,
        {"ar": SIZE_9X9["pairs"] + ["data.tokenizer=puzzle:sudoku-9x9:pairs-rowmajor", "train.steps=100000"],
         "ar-solver": SIZE_9X9["pairs"] + ["train.steps=100000"],
         "mdlm": SIZE_9X9["cells"] + ["data.tokenizer=puzzle:sudoku-9x9:cells", "train.steps=100000"],
         "ul2": SIZE_9X9["cells"] + ["data.tokenizer=puzzle:sudoku-9x9:cells", "train.steps=50000"],
         **{g: SIZE_9X9["cells"] + ["data.tokenizer=puzzle:sudoku-9x9:cells", "train.steps=10000",
                                    "train.batch_size=64", "train.lr=3e-4", "train.ema=0.999"]
            for g in ("glauber-n1", "glauber-n3")}}),
}
VALID = 256
DRY_COUNTS = {"train": 16, "valid": 4}
DRY_TRAIN = ["model.n_layers=1", "model.d_model=16", "model.n_heads=2", "model.cond_dim=16", "train.steps=2",
             "train.batch_size=4", "train.warmup_steps=1", "train.eval_every=2", "train.eval_batches=1",
             "train.save_every=2", "train.log_every=1", "train.glauber_snapshots=2"]


def models_of(setting: Setting) -> list[str]:
    """The models the setting's rows need, each after the model it starts from."""
    needed = {ROWS[row][0] for row in setting.rows}
    needed |= {MODELS[m][2] for m in needed if MODELS[m][2]}
    return [m for m in MODELS if m in needed]


def train_argv(setting: Setting, model: str, work: Path, args) -> list[str]:
    """`edlm train` arguments of one model of a setting."""
    suffix, overrides, _ = MODELS[model]
    runs = work / "runs" / setting.shape
    extra = [o.format(shape=setting.shape, runs=runs) for o in overrides]
    extra += setting.overrides + setting.per_model.get(model, [])
    extra += DRY_TRAIN if args.dry_run else []
    return [f"{setting.recipes}-{suffix}", *extra, f"data.path={work / 'data' / setting.shape}",
            f"train.out_dir={runs / model}", f"train.device={args.device}"]


def puzzle_manifest(setting: Setting, args) -> dict:
    counts = DRY_COUNTS if args.dry_run else {"train": setting.train, "valid": VALID}
    return manifest(setting.shape, setting.givens, 0, {**counts, "test": args.test})


def data_command(meta: dict) -> str:
    """The `edlm data puzzles` command that writes the directory of manifest `meta`."""
    kind, a, b = parse_shape(meta["shape"])
    shape = f"--size {a} --givens {meta['givens']}" if kind == "sudoku" else f"--houses {a} --attributes {b}"
    counts = " ".join(f"--{split} {n}" for split, n in meta["counts"].items())
    return f"edlm data puzzles {kind} DIR {shape} {counts} --seed {meta['seed']}"


def prepare_data(setting: Setting, work: Path, args) -> Path:
    """The setting's puzzle directory (as `edlm data puzzles` writes it): reused when its manifest matches."""
    directory = work / "data" / setting.shape
    meta = puzzle_manifest(setting, args)
    if read_manifest(directory) != meta:
        write_puzzle_dir(directory, meta, workers=1 if args.dry_run else args.workers)
    return directory


def compute_path(work: Path, setting: Setting, model: str) -> Path:
    return work / "compute" / f"{setting.shape}-{model}.json"


def train_one(argv: list[str], threads: int, log: str) -> tuple[float, float]:
    """Run `edlm train ARGV` in this process with `threads` torch threads, its output appended to `log`;
    return its (CPU seconds of this process, all threads; wall seconds)."""
    started_cpu, started = time.process_time(), time.perf_counter()
    with open(log, "a") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), cpu_threads(threads):
        code = edlm_main(["train", *argv])
    require(code == 0, f"edlm train {' '.join(argv)} failed; see {log}.")
    return time.process_time() - started_cpu, time.perf_counter() - started


def train_all(settings: list[Setting], work: Path, args) -> None:
    """Train every model that is not finished, in `args.jobs` worker processes (one model at a time each), a
    model after the one it starts from; add each model's CPU and wall seconds to its compute record."""
    pending = [(s, m) for s in settings for m in models_of(s) if not train_finished(train_argv(s, m, work, args))]
    (work / "logs").mkdir(parents=True, exist_ok=True)
    running = {}
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        while pending or running:
            busy = {(s.shape, m) for s, m in [*running.values(), *pending]}
            for setting, model in [(s, m) for s, m in pending if (s.shape, MODELS[m][2]) not in busy]:
                pending.remove((setting, model))
                log = work / "logs" / f"{setting.shape}-{model}.log"
                future = pool.submit(train_one, train_argv(setting, model, work, args), args.threads, str(log))
                running[future] = (setting, model)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                setting, model = running.pop(future)
                cpu_s, wall_s = future.result()
                path = compute_path(work, setting, model)
                record = json.loads(path.read_text()) if path.is_file() else {"cpu_s": 0.0, "wall_s": 0.0}
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"cpu_s": record["cpu_s"] + cpu_s, "wall_s": record["wall_s"] + wall_s})
                                + "\n")


def model_compute(work: Path, setting: Setting, model: str) -> dict:
    """Parameters, training steps and sequences, approximate FLOPs (module doc), CPU and wall seconds of one
    model, with the model it starts from added (its FLOPs and seconds)."""
    cfg = read_checkpoint(work / "runs" / setting.shape / model).config
    params = sum(p.numel() for p in build_run_model(cfg).parameters())
    tc, length = cfg.train, cfg.data.seq_len
    if tc.objective == "glauber":
        chain = tc.steps * tc.batch_size * length * tc.glauber_rounds * length
        flops = 6 * params * tc.steps * tc.batch_size * tc.glauber_snapshots * length + 2 * params * chain
    else:
        flops = 6 * params * tc.steps * tc.batch_size * length
    path = compute_path(work, setting, model)
    record = json.loads(path.read_text()) if path.is_file() else {"cpu_s": None, "wall_s": None}
    out = {"params": params, "steps": tc.steps, "batch_size": tc.batch_size, "seq_len": length, "train_flops": flops,
           "train_cpu_s": record["cpu_s"], "train_wall_s": record["wall_s"]}
    start = MODELS[model][2]
    if start:
        before = model_compute(work, setting, start)
        for key in ("train_flops", "train_cpu_s", "train_wall_s"):
            out[key] = None if out[key] is None or before[key] is None else out[key] + before[key]
    return out


def evaluate(setting: Setting, row: str, work: Path, data: Path, args) -> dict:
    """One row: `edlm eval puzzles` on the test puzzles, its results, CPU and wall seconds. A finished
    evaluation of the same command on the same model weights (OUT-cost.json records both) is reused."""
    model, options = ROWS[row]
    run = work / "runs" / setting.shape / model
    out = work / "eval" / setting.shape / row.lower().replace(" ", "-").replace("=", "")
    argv = ["eval", "puzzles", str(run), "--puzzles", str(data / "test.txt"),
            *[o.format(block=setting.block) for o in options], "--seed", str(args.seed), "--device", args.device,
            "--out", str(out)]
    cost_path = out.with_name(out.name + "-cost.json")
    weights = fingerprint(latest_checkpoint(run))
    cost = json.loads(cost_path.read_text()) if cost_path.is_file() else {}
    if not (cost.get("argv") == argv and cost.get("weights") == weights and out.with_suffix(".json").is_file()):
        started_cpu, started = time.process_time(), time.perf_counter()
        require(edlm_main(argv) == 0, f"edlm eval puzzles failed for {setting.shape} {row}.")
        cost = dict(argv=argv, weights=weights, eval_cpu_s=time.process_time() - started_cpu,
                    eval_wall_s=time.perf_counter() - started)
        write_text_atomic(cost_path, json.dumps(cost, indent=2) + "\n")
    results = json.loads(out.with_suffix(".json").read_text())["results"]
    keep = ("puzzles", "solved", "board_accuracy", "board_interval", "cell_accuracy", "cell_interval",
            "calls_per_puzzle", "givens_changed", "method", "rounds", "block", "unmasking", "steps")
    return {"row": row, "model": model, "paper_accuracy": PAPER[setting.paper].get(row),
            **{k: results[k] for k in keep if k in results}, "eval_cpu_s": cost["eval_cpu_s"],
            "eval_wall_s": cost["eval_wall_s"], **model_compute(work, setting, model)}


def difference(better: dict, worse: dict) -> tuple[float, float, float]:
    """(difference, low, high) of two accuracies with Newcombe's 95% interval from their Wilson intervals, as
    for independent samples (the rows share their test puzzles, so it is conservative)."""
    p, (p_low, p_high) = better["board_accuracy"], better["board_interval"]
    q, (q_low, q_high) = worse["board_accuracy"], worse["board_interval"]
    return (p - q, p - q - ((p - p_low) ** 2 + (q_high - q) ** 2) ** 0.5,
            p - q + ((p_high - p) ** 2 + (q - q_low) ** 2) ** 0.5)


def claims(rows: list[dict]) -> list[dict]:
    """Each claim of CLAIMS whose rows exist: the difference and its interval, and the verdict."""
    by_row = {r["row"]: r for r in rows}
    out = []
    for claim, better, worse in CLAIMS:
        if better in by_row and worse in by_row:
            d, low, high = difference(by_row[better], by_row[worse])
            verdict = "holds" if low > 0 else "reversed" if high < 0 else "not resolved (interval covers 0)"
            out.append({"claim": claim, "difference": d, "interval": [low, high], "verdict": verdict})
    return out


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _num(x, digits=0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def markdown(payload: dict) -> str:
    lines = ["# Puzzles: Tables 6 and 7 of the Glauber-dynamics paper at our size", "",
             "Whole-puzzle accuracy (every cell right, the givens unchanged) with Wilson's 95% interval on the "
             "test puzzles of each setting, per-cell accuracy over the free cells, model calls per puzzle, and "
             "the training compute of each row's model (a Glauber row includes its UL2 pre-training). The paper's "
             "numbers are for 9x9 Sudoku (Table 6) and the Zebra puzzles of Shah et al. (Table 7) with larger "
             "models and data. Made by `benchmarks/puzzles.py`" + (" in its dry run (toy sizes: the numbers mean "
                                                                    "nothing)" if payload["dry_run"] else "") + ".", ""]
    for name, part in payload["settings"].items():
        lines += [f"## {name}", "", part["description"], "",
                  "| row | paper % | ours: board % [95% CI] | cell % | calls / puzzle | params | train steps x batch "
                  "| train CPU s | train wall s | train FLOPs (approx.) |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in part["rows"]:
            low, high = r["board_interval"]
            lines.append(f"| {r['row']} | {_num(r['paper_accuracy'], 2)} | {_pct(r['board_accuracy'])} "
                         f"[{_pct(low)}, {_pct(high)}] | {_pct(r['cell_accuracy'])} | {r['calls_per_puzzle']:.1f} "
                         f"| {r['params'] / 1e6:.2f}M | {r['steps']:,} x {r['batch_size']} | {_num(r['train_cpu_s'])} "
                         f"| {_num(r['train_wall_s'])} | {r['train_flops']:.2e} |")
        lines += ["", "| claim | difference (points) [95% CI] | at our size |", "|---|---|---|"]
        lines += [f"| {c['claim']} | {100 * c['difference']:+.1f} [{100 * c['interval'][0]:+.1f}, "
                  f"{100 * c['interval'][1]:+.1f}] | {c['verdict']} |" for c in part["claims"]]
        lines.append("")
    lines += [f"Command: `{payload['command']}` at {payload['git_revision']} on {payload['machine']['cpu']} "
              f"({payload['machine']['cores']} cores, GPU {payload['machine']['gpu']}); wall time "
              f"{payload['wall_time_s']} s.", ""]
    return "\n".join(lines)


def describe(setting: Setting, data: Path, args) -> str:
    meta = read_manifest(data)
    return (f"Puzzles: `{data_command(meta)}`. Recipes `{setting.recipes}-*`"
            f"{' with ' + ' '.join(setting.overrides) if setting.overrides else ''}; Glauber rows mask "
            f"{setting.block} sites per call; device {args.device}, {args.threads} thread(s) per training process.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", nargs="+", choices=sorted(SETTINGS), default=["sudoku-6x6", "zebra-4x4"],
                        help="settings to run (default: sudoku-6x6 zebra-4x4)")
    parser.add_argument("--work", type=Path, default=Path("runs/puzzles-bench"),
                        help="directory of the puzzles, runs, logs and evaluations (default runs/puzzles-bench)")
    parser.add_argument("--jobs", type=int, default=2, help="training processes at a time (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training process (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="processes that generate puzzles (default 2)")
    parser.add_argument("--device", default="cpu", help="device of training and solving (default cpu)")
    parser.add_argument("--test", type=int, default=1000, help="test puzzles per setting (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the solvers' draws (default 0)")
    parser.add_argument("--dry-run", action="store_true", help="toy sizes: check that every step runs (seconds)")
    parser.add_argument("--out", type=Path, help="STEM of the results (default benchmarks/results/puzzles; with "
                                                 "--dry-run WORK/dry-run)")
    args = parser.parse_args()
    require(args.jobs >= 1 and args.threads >= 1 and args.test >= 1,
            f"--jobs {args.jobs}, --threads {args.threads} and --test {args.test} must each be at least 1.")
    started = time.perf_counter()
    settings = [SETTINGS[name] for name in args.setting]
    work = args.work.resolve()
    data = {s.shape: prepare_data(s, work, args) for s in settings}
    train_all(settings, work, args)
    parts = {}
    for s in settings:
        with cpu_threads(args.threads):
            rows = [evaluate(s, row, work, data[s.shape], args) for row in s.rows]
        parts[s.shape] = {"description": describe(s, data[s.shape], args), "rows": rows, "claims": claims(rows)}
    payload = {**provenance(started), "dry_run": args.dry_run, "settings": parts}
    out = args.out or (work / "dry-run" if args.dry_run else RESULTS / "puzzles")
    write_results(out.name, payload, markdown(payload), out.parent)
    print(markdown(payload))
    return 0


if __name__ == "__main__":
    run_main(main, "puzzles")
