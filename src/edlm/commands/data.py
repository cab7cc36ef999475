"""`edlm data`: check corpora before training.

- `edlm data text8 [--data PATH] [--seq-len N]`: find (or download and verify) text8, check every character, and
  print where it lives, its md5, and each split's character range and number of chunks.
- `edlm data stats RECIPE [KEY=VALUE ...]`: the tokenizer and the sequences and tokens of each split of a recipe.
- `edlm data puzzles sudoku|zebra OUT_DIR ...`: generate a directory of train, valid and test puzzles
  (`edlm.puzzles.corpus`) for `data.corpus=puzzles` and `edlm eval puzzles`.
"""

from __future__ import annotations

from edlm.errors import EdlmError


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="check corpora: find or download text8, count the tokens of a recipe")
    inner = parser.add_subparsers(dest="data_command", required=True, metavar="WHAT",
                                  help="run `edlm data WHAT --help` for its options")
    text8 = inner.add_parser("text8", help="find or download text8, verify it, and print its splits")
    text8.add_argument("--data", default="", help="a directory or file holding text8 (default: $EDLM_DATA, "
                                                  "else download into $EDLM_CACHE)")
    text8.add_argument("--seq-len", type=int, default=256, help="characters per chunk (default 256)")
    text8.set_defaults(func=run)
    stats = inner.add_parser("stats", help="sequences and tokens per split of a recipe's data")
    stats.add_argument("recipe", metavar="RECIPE", help="a shipped recipe name or a YAML file")
    stats.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. data.seq_len=128")
    stats.set_defaults(func=run)
    puzzles = inner.add_parser("puzzles", help="generate train, valid and test Sudoku or Zebra puzzles, each with "
                               "one solution", description="Write OUT_DIR/train.txt, valid.txt and test.txt (one "
                               "puzzle per line; Sudoku solutions in OUT_DIR/SPLIT-solutions.txt) and OUT_DIR/puzzles.json. Puzzle i "
                               "of a split depends only on the shape, --givens, --seed, the split and i.")
    puzzles.add_argument("kind", choices=("sudoku", "zebra"), help="Sudoku boards or Zebra (Einstein) puzzles")
    puzzles.add_argument("out", metavar="OUT_DIR", help="the directory to write (replaced if it exists)")
    puzzles.add_argument("--size", type=int, help="sudoku: board size 4, 6 or 9 (default 6)")
    puzzles.add_argument("--givens", type=int, help="sudoku: givens per board, fewer is harder (default 10)")
    puzzles.add_argument("--houses", type=int, help="zebra: houses, 3 to 6 (default 4)")
    puzzles.add_argument("--attributes", type=int, help="zebra: attributes, 3 to 6 (default 4)")
    for split, count in (("train", 10000), ("valid", 256), ("test", 1000)):
        puzzles.add_argument(f"--{split}", type=int, default=count, help=f"{split} puzzles (default {count})")
    puzzles.add_argument("--seed", type=int, default=0, help="seed of the puzzles (default 0)")
    puzzles.add_argument("--workers", type=int, default=1, help="processes that generate puzzles (default 1)")
    puzzles.set_defaults(func=run)


PUZZLE_OPTIONS = {"sudoku": ("size", "givens"), "zebra": ("houses", "attributes")}
PUZZLE_DEFAULTS = {"size": 6, "givens": 10, "houses": 4, "attributes": 4}


def run(args) -> int:
    return {"text8": _text8, "stats": _stats, "puzzles": _puzzles}[args.data_command](args)


def _text8(args) -> int:
    from edlm.data.files import file_digest
    from edlm.data.text8 import KNOWN_MD5, chunk_count, find_text8, read_text8
    from edlm.errors import require

    require(args.seq_len >= 1, f"--seq-len {args.seq_len} must be at least 1.")
    source = find_text8(args.data)
    md5 = file_digest(source.origin, "md5")
    print(f"text8: {source.path} ({'standard 90M/5M/5M split' if source.full else 'prefix split, not the standard one'})")
    if source.origin != source.path:
        print(f"  extracted from {source.origin}")
    print(f"  md5 of {source.origin.name}: {md5} ({KNOWN_MD5.get(md5, 'not a known text8 file')})")
    for split, (start, stop) in source.splits.items():
        chunks = chunk_count(read_text8(source, split).size, split, args.seq_len)
        print(f"  {split:5s} characters [{start:,}, {stop:,}): {chunks:,} chunks of {args.seq_len}")
    return 0


def _stats(args) -> int:
    from edlm.config import load_config
    from edlm.data import SPLITS, build_tokenizer, load_split

    cfg = load_config(args.recipe, args.overrides).data
    tokenizer = build_tokenizer(cfg)
    print(f"corpus {cfg.corpus} {cfg.path or cfg.hf_name or ''}".rstrip()
          + f"; tokenizer {tokenizer.name}: {tokenizer.vocab_size:,} ids, EOS {tokenizer.eos_id}")
    failed = 0
    for split in SPLITS:
        try:
            rows = load_split(cfg, split)
        except EdlmError as err:
            print(f"  {split:5s} error: {err}")
            failed += 1
            continue
        print(f"  {split:5s} {rows.shape[0]:,} sequences x {rows.shape[1]} = {rows.numel():,} tokens")
    return 2 if failed else 0


def _puzzles(args) -> int:
    import time

    from edlm.errors import require
    from edlm.puzzles.corpus import manifest, write_puzzle_dir
    from edlm.util.outputs import check_output_path

    for kind, names in PUZZLE_OPTIONS.items():
        for name in names:
            require(kind == args.kind or getattr(args, name) is None,
                    f"--{name} applies to {kind} puzzles, not to {args.kind}; drop it.")
    value = {name: PUZZLE_DEFAULTS[name] if getattr(args, name) is None else getattr(args, name)
             for name in PUZZLE_OPTIONS[args.kind]}
    shape = (f"sudoku-{value['size']}x{value['size']}" if args.kind == "sudoku"
             else f"zebra-{value['houses']}x{value['attributes']}")
    counts = {"train": args.train, "valid": args.valid, "test": args.test}
    meta = manifest(shape, value.get("givens"), args.seed, counts)
    out = check_output_path(args.out, option="OUT_DIR", kind="dir")
    started = time.perf_counter()
    write_puzzle_dir(out, meta, workers=args.workers)
    written = ", ".join(f"{n:,} {split}" for split, n in meta["counts"].items())
    givens = "" if meta["givens"] is None else f" with {meta['givens']} givens"
    print(f"wrote {written} {shape} puzzles{givens} (seed {args.seed}) to {out} in "
          f"{time.perf_counter() - started:.1f} s")
    return 0
