"""`edlm eval plot RESULTS.json --out STEM`: quality against steps, wall time and model calls, entropy
against quality (EDLM Figures 1a/1b and 4) as PNGs. The records format is documented in `edlm.reports.plots`."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "plot", help="plot quality against steps / wall time / model calls and entropy against quality (PNG)",
        description="Reads a JSON file of records ({\"records\": [...]} or a list), each with method, steps, "
                    "wall_time (s), model_calls (sequence-length forward rows per sample: denoiser + energy "
                    "rows), gen_ppl or oracle_nll (nats/token), entropy (nats) or entropy_bits; records "
                    "without steps are references (horizontal lines). Writes STEM-steps.png, "
                    "STEM-walltime.png, STEM-calls.png and STEM-entropy.png, each when the records "
                    "support it.")
    parser.add_argument("records", metavar="RECORDS", help="JSON file of records")
    parser.add_argument("--metric", choices=["gen_ppl", "oracle_nll"], default="gen_ppl",
                        help="quality axis: generative perplexity or oracle NLL in nats per token (default gen_ppl)")
    parser.add_argument("--entropy-unit", choices=["nats", "bits"], default="nats",
                        help="unit of the entropy axis (default nats)")
    parser.add_argument("--title", default=None, help="figure title (default: the file's 'title', if any)")
    parser.add_argument("--out", required=True, metavar="STEM", help="writes STEM-<figure>.png")
    parser.set_defaults(func=run)


def run(args) -> int:
    from edlm.reports.plots import load_records, plot_all
    from edlm.util.outputs import check_output_path

    check_output_path(args.out, option="--out", kind="stem", suffixes=())
    records, meta = load_records(args.records)
    title = args.title if args.title is not None else meta.get("title")
    paths = plot_all(records, args.out, metric=args.metric, entropy_unit=args.entropy_unit,
                     title=title if isinstance(title, str) else None)
    for name, path in paths.items():
        print(f"wrote {path} ({name})")
    return 0
