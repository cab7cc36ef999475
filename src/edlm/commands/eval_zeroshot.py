"""`edlm eval zeroshot MODEL --corpus ptb|wikitext2|lambada|FILE|hf:NAME`: zero-shot perplexity."""

from __future__ import annotations

COLUMNS = ["model", "corpus", "split", "detokenizer", "ppl_label", "ppl", "ppl_mean_of_sequences", "nats_per_token",
           "stderr", "num_tokens", "kind"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "zeroshot", help="zero-shot perplexity on PTB, WikiText-2, LAMBADA, a text file or an HF dataset",
        description="Per-token likelihood of a model on another corpus, detokenized as in MDLM / SEDD and wrapped "
                    "as edlm's training data. Diffusion models (MDLM, SEDD) give upper bounds (kind upper_bound). "
                    "ppl is exp(mean NLL per token); ppl_mean_of_sequences the mean of each row's exp(NLL per "
                    "token), the order SEDD's code reports.")
    parser.add_argument("model", metavar="MODEL", help="model spec of the model evaluated (an edlm MDLM, SEDD "
                                                       "or AR model, or hf:ID_OR_PATH)")
    parser.add_argument("--corpus", required=True, help="ptb, wikitext2, lambada, hf:NAME, or a .txt / .jsonl file")
    parser.add_argument("--split", default="test", help="split of the corpus (default: test)")
    parser.add_argument("--data", default=None, help="where the corpus lives: a local file, or the data directory "
                                                     "holding ptb/ and wikitext-2/ (default: $EDLM_DATA); for "
                                                     "hf:NAME, the data_files of load_dataset")
    parser.add_argument("--detokenizer", default=None, choices=["ptb", "wikitext", "lambada", "none"],
                        help="default: the corpus's own (none for files and hf: datasets)")
    parser.add_argument("--hf-config", default="", help="configuration of an hf: dataset")
    parser.add_argument("--text-field", default="text", help="text column of an hf: dataset")
    parser.add_argument("--seq-len", type=int, default=0, help="row length (default: the model's training length)")
    parser.add_argument("--num-t", type=int, default=16, help="Monte Carlo times per sequence (denoisers)")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per model call (default 16)")
    parser.add_argument("--max-sequences", type=int, default=0,
                        help="evaluate only the first N rows of the corpus (default 0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the Monte Carlo draws (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    parser.add_argument("--dtype", default=None, help="hf: models only (default float32)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow an hf: model to run its own code")
    parser.add_argument("--out", required=True, metavar="STEM", help="writes STEM.json and STEM.md")
    parser.set_defaults(func=run)


def run(args) -> int:
    from edlm.errors import require
    from edlm.reports.report import write_report
    from edlm.loading.specs import load_spec
    from edlm.metrics.zeroshot import zeroshot_perplexity
    from edlm.util.outputs import check_output_path

    check_output_path(args.out, option="--out", kind="stem")
    require(args.batch_size >= 1 and args.num_t >= 1,
            f"--batch-size {args.batch_size} and --num-t {args.num_t} must be at least 1.")
    require(args.max_sequences >= 0, f"--max-sequences {args.max_sequences} must be at least 0 (0 means all).")
    require(args.seq_len == 0 or args.seq_len >= 3,
            f"--seq-len {args.seq_len} must be 0 (the model's training length) or at least 3.")
    loaded = load_spec(args.model, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code,
                       role=("denoiser", "score", "causal"), what="MODEL")
    require(loaded.tokenizer is not None, f"the model {args.model!r} has no tokenizer to read text with; "
            "save its tokenizer with the checkpoint.")
    seq_len = args.seq_len or loaded.seq_len
    require(seq_len is not None and seq_len >= 3, f"the model {args.model!r} does not say its sequence length "
            "(or it is below 3); pass --seq-len N with N at least 3.")
    result = zeroshot_perplexity(loaded.model, loaded.tokenizer, args.corpus, seq_len=seq_len, split=args.split,
                                 detokenizer=args.detokenizer, path=args.data, hf_config=args.hf_config,
                                 text_field=args.text_field, num_t=args.num_t, batch_size=args.batch_size,
                                 max_sequences=args.max_sequences or None, seed=args.seed, progress=True)
    results = {"model": args.model, **result.to_dict()}
    notes = ("kind upper_bound: the MDLM NELBO or the SEDD score-entropy bound, so the perplexity is an upper bound "
             "(up to Monte Carlo error `stderr`, in nats per token)." if result.kind == "upper_bound" else
             f"kind {result.kind}.")
    notes += (" ppl = exp(mean NLL per token over the corpus); ppl_mean_of_sequences = mean over rows of "
              "exp(row NLL per token), exp then mean, as SEDD's code reports it.")
    json_path, md_path = write_report(args.out, "Zero-shot perplexity", results, [results], COLUMNS, notes)
    print(md_path.read_text(), end="")
    print(f"wrote {json_path} and {md_path}")
    return 0
