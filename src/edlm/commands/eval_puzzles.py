"""`edlm eval puzzles MODEL --puzzles FILE --out STEM`: solve Sudoku or Zebra puzzles with a model and score them.

FILE holds one puzzle per line (`edlm.puzzles.lines`): Sudoku boards of 16, 36 or 81 characters (digits
for the givens, `0` or `.` for blanks), or Zebra puzzles (`clue ; clue | 1: A1 B2 ; 2: ...`, a clue
section and the solution grid); a bad line stops the command with one sentence naming its number. The
model decides the method (`edlm.sampling.puzzles`): a masked diffusion model fills the answer with the
givens and clues clamped (`--steps`, `--unmasking`), a UL2-style Glauber diffusion model starts from a
causal sample with them clamped and runs its reverse rounds (`--rounds`, `--block`), an autoregressive
model continues the prefix of the clues and the given (cell, value) pairs. A model trained on puzzles
(`data.tokenizer=puzzle:SHAPE:FORMAT`) must have been trained on FILE's shape; Zebra clues are padded to
what the model's rows hold. It writes STEM-solutions.txt (one line per puzzle: the model's board, `0`
where it wrote no digit, or the Zebra grid, `?` where it wrote no value), STEM.json and STEM.md:
whole-puzzle accuracy (every cell right, the givens unchanged) with Wilson's 95% interval, per-cell
accuracy over the free cells with a puzzle-level 95% interval, and model calls per puzzle
(`edlm.puzzles.score`).
"""

from __future__ import annotations

import sys

COLUMNS = ["method", "puzzles", "board_accuracy", "board_low", "board_high", "cell_accuracy", "cell_low",
           "cell_high", "calls_per_puzzle", "givens_changed"]
SOLUTIONS = "-solutions.txt"
APPLIES = {"steps": ("--steps", "mdlm"), "unmasking": ("--unmasking", "mdlm"),
           "rounds": ("--rounds", "glauber-diffusion"), "block": ("--block", "glauber-diffusion")}


def register(subparsers) -> None:
    from edlm.sampling.unmasking import UNMASKING

    parser = subparsers.add_parser(
        "puzzles", help="solve Sudoku or Zebra puzzles with a model: whole-puzzle and per-cell accuracy, model calls",
        description="Solve the puzzles of --puzzles (one per line: Sudoku boards of 16, 36 or 81 characters, digits "
                    "for givens, 0 or . for blanks; or Zebra puzzles, clues | solution grid) with MODEL and score the "
                    "answers against each puzzle's unique solution.")
    parser.add_argument("model", metavar="MODEL", help="model spec: a masked diffusion model or a UL2-style Glauber "
                                                      "diffusion model (cells format), or a causal LM (pairs format)")
    parser.add_argument("--puzzles", required=True, metavar="FILE", help="text file, one Sudoku or Zebra puzzle per line")
    parser.add_argument("--steps", type=int, default=None,
                        help="masked diffusion models: reverse steps (default: one per cell of the answer)")
    parser.add_argument("--unmasking", default=None, choices=UNMASKING,
                        help="masked diffusion models: which masked cells a step reveals (default: random; "
                             "confidence and margin are the top-k probability and top-k margin orders)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="Glauber diffusion models: reverse rounds (default: the rounds the model was trained "
                             "with, else 1)")
    parser.add_argument("--block", type=int, default=None,
                        help="Glauber diffusion models: sites masked together per model call (default: 1)")
    parser.add_argument("--max-puzzles", type=int, default=0, help="solve only the first N puzzles (default 0: all)")
    parser.add_argument("--batch-size", type=int, default=64, help="puzzles per sampler batch (default: 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler's draws (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    parser.add_argument("--no-ema", action="store_true", help="use a checkpoint's trained weights instead of its EMA")
    parser.add_argument("--out", required=True, metavar="STEM",
                        help="writes STEM.json, STEM.md and STEM-solutions.txt")
    parser.set_defaults(func=run)


def check_options(args, method: str) -> None:
    """Refuse, in one sentence, a sampler option given for a method it does not apply to."""
    from edlm.errors import require

    for dest, (flag, owner) in APPLIES.items():
        require(getattr(args, dest) is None or method == owner,
                f"{flag} applies to {owner} models, and MODEL {args.model!r} is solved by {method}; drop {flag}.")
    for dest in ("steps", "rounds", "block"):
        value = getattr(args, dest)
        require(value is None or value >= 1, f"--{dest} {value} must be at least 1.")


def puzzle_tokenizer(loaded, shape: str, method: str, model: str):
    """The PuzzleTokenizer that MODEL was trained with (EdlmError unless it takes `shape` puzzles in the
    method's format), or, for a model trained on something else, the one of `shape` in the method's format."""
    from edlm.errors import require
    from edlm.puzzles.tokenizer import PuzzleTokenizer, puzzle_spec
    from edlm.sampling.puzzles import FORMAT

    trained = loaded.tokenizer if isinstance(loaded.tokenizer, PuzzleTokenizer) else None
    if trained is None:
        return PuzzleTokenizer(puzzle_spec(shape, "cells" if FORMAT[method] == "cells" else "pairs-rowmajor"))
    require(trained.shape == shape, f"MODEL {model!r} was trained on {trained.shape} puzzles ({trained.name}), but "
            f"--puzzles holds {shape} puzzles; pass a model trained on puzzles of this shape.")
    require(trained.format == FORMAT[method], f"MODEL {model!r} was trained on the {trained.format} format "
            f"({trained.name}), but {method} models solve in the {FORMAT[method]} format; pass a model trained on it.")
    return trained


def run(args) -> int:
    import torch

    from edlm.commands.glauber_diffusion_options import resolve_rounds
    from edlm.errors import require
    from edlm.loading.specs import load_spec, max_seq_len
    from edlm.puzzles.lines import read_puzzle_file
    from edlm.puzzles.score import score_answers
    from edlm.puzzles.tokens import seq_len, shape_of
    from edlm.reports.report import write_report
    from edlm.sampling.puzzles import FORMAT, method_of, solve
    from edlm.util.atomic import write_text_atomic
    from edlm.util.device import module_device, select_device
    from edlm.util.outputs import check_output_path

    stem = check_output_path(args.out, option="--out", kind="stem", suffixes=(".json", ".md", SOLUTIONS))
    require(args.max_puzzles >= 0, f"--max-puzzles {args.max_puzzles} must be at least 0 (0 means all).")
    require(args.batch_size >= 1, f"--batch-size {args.batch_size} must be at least 1.")
    puzzles = read_puzzle_file(args.puzzles)[: args.max_puzzles or None]
    shape = shape_of(puzzles[0])
    loaded = load_spec(args.model, device=select_device(args.device), ema=not args.no_ema, what="MODEL")
    require(loaded.role in ("denoiser", "causal"), f"MODEL {args.model!r} is a {loaded.role} model; pass a masked "
            "diffusion model, a UL2-style Glauber diffusion model or a causal LM.")
    model = loaded.model
    method = method_of(model)
    check_options(args, method)
    tokenizer = puzzle_tokenizer(loaded, shape, method, args.model)
    limit = max_seq_len(model)
    rows = loaded.seq_len or limit
    max_clues = 0
    if tokenizer.kind == "zebra":
        require(rows is not None, f"MODEL {args.model!r} does not say how long its rows are, which Zebra clues are "
                "padded to; pass an edlm model.")
        max_clues = tokenizer.max_clues(rows, f"the rows of {rows} tokens of MODEL {args.model!r}")
    instances = tokenizer.instances(puzzles, max_clues, f"a row of MODEL {args.model!r}")
    length = seq_len(FORMAT[method], instances[0])
    require(limit is None or length <= limit, f"these puzzles take {length} tokens in the {FORMAT[method]} format, "
            f"more than MODEL {args.model!r} reads ({limit}); pass a model trained on puzzles of this shape.")
    options = {}
    if method == "mdlm":
        options = dict(steps=args.steps or instances[0].slots, unmasking=args.unmasking or "random")
    elif method == "glauber-diffusion":
        rounds = resolve_rounds(args.rounds, loaded, length, f"MODEL {args.model!r}", "the puzzles' length",
                                "pass puzzles of its shape")
        options = dict(rounds=rounds, block=args.block or 1)
    generator = torch.Generator(device=module_device(model)).manual_seed(args.seed)
    solved = solve(model, instances, generator=generator, batch_size=args.batch_size, progress=True, **options)
    scores = score_answers(solved.answers, instances)
    calls = solved.calls.double()
    report = {"model": str(args.model), "puzzles_file": str(args.puzzles), "shape": shape,
              "method": method, "format": FORMAT[method], "seed": args.seed, **options, **scores,
              "calls_per_puzzle": calls.mean().item(), "calls_max": int(calls.max().item()),
              "units": "accuracies are fractions; board: every cell right and the givens unchanged (Wilson 95% "
                       "interval); cell: free cells filled right (puzzle-level 95% interval); calls: model "
                       "forward calls per puzzle"}
    row = {"method": method, "puzzles": scores["puzzles"], "board_accuracy": scores["board_accuracy"],
           "board_low": scores["board_interval"][0], "board_high": scores["board_interval"][1],
           "cell_accuracy": scores["cell_accuracy"], "cell_low": scores["cell_interval"][0],
           "cell_high": scores["cell_interval"][1], "calls_per_puzzle": report["calls_per_puzzle"],
           "givens_changed": scores["givens_changed"]}
    lines = [tokenizer.answer_text(answer) for answer in solved.answers]
    settings = ", ".join(f"{k} {v}" for k, v in options.items())
    notes = (f"{shape} puzzles of {args.puzzles} solved by {args.model} ({method}{', ' + settings if settings else ''}, "
             f"seed {args.seed}); 95% intervals.")
    solutions_path = stem.with_name(stem.name + SOLUTIONS)
    write_text_atomic(solutions_path, "\n".join(lines) + "\n")
    json_path, md_path = write_report(stem, "Puzzle accuracy", report, [row], COLUMNS, notes)
    print(md_path.read_text(), end="")
    print(f"wrote {json_path}, {md_path} and {solutions_path}", file=sys.stderr)
    return 0
