"""`edlm data`: check corpora before training.

- `edlm data text8 [--data PATH] [--seq-len N]`: find (or download and verify) text8, check every character, and
  print where it lives, its md5, and each split's character range and number of chunks.
- `edlm data stats RECIPE [KEY=VALUE ...]`: the tokenizer and the sequences and tokens of each split of a recipe.
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


def run(args) -> int:
    return _text8(args) if args.data_command == "text8" else _stats(args)


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
