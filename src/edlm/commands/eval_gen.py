"""`edlm eval gen SAMPLES.jsonl --oracle MODEL`: generative perplexity and diversity of samples.

The samples' ids are read in their own tokenizer (`--tokenizer`, else the `tokenizer` that `edlm sample`
records in each line): when it is not the oracle's, their text is retokenized by the oracle's tokenizer
(`retokenized: true`); when it is unknown, their text is scored, or the command refuses when they have
only ids. Bits per character make oracles of different tokenizers comparable."""

from __future__ import annotations

COLUMNS = ["samples", "oracle", "gen_ppl", "gen_ppl_mean_of_samples", "bits_per_char", "entropy_bits",
           "unique_fraction", "repetition_rate", "scored_tokens"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "gen", help="generative perplexity under an oracle LM, unigram entropy, unique unigrams, repetition",
        description="Generative metrics of a JSONL sample file (lines with 'ids' and/or 'text'). Text after the "
                    "first EOS is ignored (a leading EOS is dropped); the EOS itself is scored unless --no-count-eos.")
    parser.add_argument("samples", metavar="SAMPLES", help="JSONL file of samples (edlm sample --out)")
    parser.add_argument("--oracle", required=True, help="model spec of the causal LM that scores the samples "
                                                        "(an edlm AR model, or hf:ID_OR_PATH)")
    parser.add_argument("--tokenizer", default="",
                        help="tokenizer that produced the samples' ids (char, gpt2, tiktoken:FILE, hf:PATH); "
                             "default: the one the sample file records, else the samples' text is scored")
    parser.add_argument("--no-count-eos", dest="count_eos", action="store_false",
                        help="do not score the EOS that ends a sample")
    parser.add_argument("--repetition-window", type=int, default=100,
                        help="a token repeats if it occurred in the previous N tokens (default 100)")
    parser.add_argument("--batch-size", type=int, default=8, help="samples per oracle call (default 8)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    parser.add_argument("--dtype", default=None, help="hf: oracles only, e.g. bfloat16 (default float32)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow hf: models that run their own code")
    parser.add_argument("--out", required=True, metavar="STEM", help="writes STEM.json and STEM.md")
    parser.set_defaults(func=run)


def run(args) -> int:
    from edlm.errors import require
    from edlm.loading.specs import load_spec
    from edlm.metrics.generative import generative_metrics
    from edlm.metrics.samples import read_samples, samples_tokenizer
    from edlm.reports.report import write_report
    from edlm.util.outputs import check_output_path

    check_output_path(args.out, option="--out", kind="stem")
    require(args.batch_size >= 1, f"--batch-size {args.batch_size} must be at least 1.")
    require(args.repetition_window >= 1, f"--repetition-window {args.repetition_window} must be at least 1.")
    samples, sample_tokenizer = samples_tokenizer(read_samples(args.samples), args.tokenizer, args.samples)
    oracle = load_spec(args.oracle, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code,
                       role="causal", what="--oracle")
    require(oracle.tokenizer is not None, f"--oracle {args.oracle!r} has no known tokenizer, so the samples cannot "
            "be checked or retokenized for it; save its tokenizer beside it.")
    report = generative_metrics(samples, oracle.model, oracle_tokenizer=oracle.tokenizer,
                                sample_tokenizer=sample_tokenizer, count_eos=args.count_eos,
                                window=args.repetition_window,
                                batch_size=args.batch_size, progress=True)
    results = {"samples": args.samples, "oracle_spec": args.oracle, **report.to_dict()}
    row = {"samples": args.samples, "oracle": args.oracle, "gen_ppl": report.ppl,
           "gen_ppl_mean_of_samples": report.ppl_mean_of_samples, "bits_per_char": report.bits_per_char,
           "entropy_bits": report.entropy_bits,
           "unique_fraction": report.unique_fraction, "repetition_rate": report.repetition_rate,
           "scored_tokens": report.num_scored_tokens}
    eos = "scored" if report.count_eos else "not scored"
    notes = (f"gen_ppl = exp(mean token NLL over all scored tokens); bits_per_char = total NLL / ln 2 / characters "
             f"of the content text; EOS {eos}; "
             f"retokenized: {report.retokenized}; diversity in the {report.diversity_tokens} tokenizer; "
             f"repetition window {report.repetition_window}.")
    json_path, md_path = write_report(args.out, "Generative metrics", results, [row], COLUMNS, notes)
    print(md_path.read_text(), end="")
    print(f"wrote {json_path} and {md_path}")
    return 0
