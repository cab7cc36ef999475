"""`edlm eval gen SAMPLES.jsonl --oracle SPEC`: generative perplexity and diversity of samples."""

from __future__ import annotations

COLUMNS = ["samples", "oracle", "gen_ppl", "gen_ppl_mean_of_samples", "entropy_bits", "unique_fraction",
           "repetition_rate", "scored_tokens"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "gen", help="generative perplexity under an oracle LM, unigram entropy, unique unigrams, repetition",
        description="Generative metrics of a JSONL sample file (lines with 'ids' and/or 'text'). Text after the "
                    "first EOS is ignored (a leading EOS is dropped); the EOS itself is scored unless --no-count-eos.")
    parser.add_argument("samples", help="JSONL file of samples")
    parser.add_argument("--oracle", required=True, help="hf:ID_OR_PATH, ckpt:PATH or a path to an edlm AR checkpoint")
    parser.add_argument("--tokenizer", default="",
                        help="tokenizer that produced the samples' ids (char, gpt2, tiktoken:FILE, hf:PATH); "
                             "default: the oracle's")
    parser.add_argument("--no-count-eos", dest="count_eos", action="store_false",
                        help="do not score the EOS that ends a sample")
    parser.add_argument("--window", type=int, default=100, help="repetition window in tokens (default 100)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default=None, help="hf: oracles only, e.g. bfloat16 (default float32)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow hf: models that run their own code")
    parser.add_argument("--out", required=True, help="output prefix: writes PREFIX.json and PREFIX.md")
    parser.set_defaults(func=run)


def run(args) -> int:
    from edlm.errors import require
    from edlm.metrics.generative import generative_metrics
    from edlm.reports.report import write_report
    from edlm.metrics.samples import read_samples
    from edlm.loading.specs import load_model_spec, load_tokenizer_spec

    require(args.batch_size >= 1, f"--batch-size={args.batch_size} must be at least 1.")
    samples = read_samples(args.samples)
    sample_tokenizer = load_tokenizer_spec(args.tokenizer)
    oracle = load_model_spec(args.oracle, device=args.device, dtype=args.dtype,
                             trust_remote_code=args.trust_remote_code)
    require(hasattr(oracle.model, "token_logprobs"), f"the oracle {args.oracle!r} is not a causal LM; "
            "pass an AR checkpoint or an hf: causal LM.")
    report = generative_metrics(samples, oracle.model, oracle_tokenizer=oracle.tokenizer,
                                sample_tokenizer=sample_tokenizer, count_eos=args.count_eos, window=args.window,
                                batch_size=args.batch_size, progress=True)
    results = {"samples": args.samples, "oracle_spec": args.oracle, **report.to_dict()}
    row = {"samples": args.samples, "oracle": args.oracle, "gen_ppl": report.ppl,
           "gen_ppl_mean_of_samples": report.ppl_mean_of_samples, "entropy_bits": report.entropy_bits,
           "unique_fraction": report.unique_fraction, "repetition_rate": report.repetition_rate,
           "scored_tokens": report.num_scored_tokens}
    eos = "scored" if report.count_eos else "not scored"
    notes = (f"gen_ppl = exp(mean token NLL over all scored tokens); EOS {eos}; "
             f"retokenized: {report.retokenized}; diversity in the {report.diversity_tokens} tokenizer; "
             f"repetition window {report.repetition_window}.")
    json_path, md_path = write_report(args.out, "Generative metrics", results, [row], COLUMNS, notes)
    print(md_path.read_text(), end="")
    print(f"wrote {json_path} and {md_path}")
    return 0
