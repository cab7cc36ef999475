"""`edlm eval mauve`: MAUVE of model samples against human text, mean and std over sampling seeds."""

from __future__ import annotations

COLUMNS = ["group", "mauve", "std", "frontier_integral", "num_samples"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "mauve", help="MAUVE against human text (features from a local featurizer or precomputed)",
        description="MAUVE (mauve-text) of each sample file (or each 'seed' value inside one) against a reference; "
                    "reports every score, their mean and std. The SEDD-vs-GPT-2 evaluation's protocol: 50-token "
                    "prompts, 50-token continuations, 5 seeds (edlm sample --prompts FILE --seed S); samples "
                    "longer than --prompt-len + --cont-len are read up to that length.")
    parser.add_argument("--reference", help="human text: a JSONL sample file, or a text file cut into windows of "
                                            "prompt-len + cont-len tokens")
    parser.add_argument("--samples", nargs="+", default=[], help="JSONL sample files (one per seed)")
    parser.add_argument("--featurizer", help="model spec of the model whose hidden states are the features "
                                             "(hf:ID_OR_PATH or an edlm model)")
    parser.add_argument("--tokenizer", default="",
                        help="tokenizer of the samples' ids (char, gpt2, tiktoken:FILE, hf:PATH); default: the one "
                             "the sample files record, else the samples' text is featurized (--span full)")
    parser.add_argument("--reference-features", help="precomputed reference features (.npy, [N, D])")
    parser.add_argument("--sample-features", nargs="+", default=[], help="precomputed features (.npy), one per seed")
    parser.add_argument("--prompt-len", type=int, default=50, help="prompt tokens of each sample (default 50)")
    parser.add_argument("--cont-len", type=int, default=50, help="continuation tokens of each sample (default 50)")
    parser.add_argument("--span", choices=["full", "continuation"], default="full",
                        help="featurize prompt + continuation (default) or the continuation only")
    parser.add_argument("--pool", choices=["last", "mean"], default=None,
                        help="pooling of hidden states (default: last for causal, mean for bidirectional models)")
    parser.add_argument("--num-reference", type=int, default=0, help="reference samples (default: largest group)")
    parser.add_argument("--num-buckets", default="auto", help="k-means clusters: auto (N/10) or an integer")
    parser.add_argument("--kmeans-redo", type=int, default=5, help="k-means restarts; the best is kept (default 5)")
    parser.add_argument("--kmeans-iter", type=int, default=500, help="k-means iterations per restart (default 500)")
    parser.add_argument("--scaling", type=float, default=5.0, help="MAUVE scaling constant c (default 5)")
    parser.add_argument("--seed", type=int, default=25, help="k-means seed (default 25)")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per featurizer call (default 32)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    parser.add_argument("--dtype", default=None, help="hf: featurizers only (default float32)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow an hf: featurizer to run its own code")
    parser.add_argument("--out", required=True, metavar="STEM", help="writes STEM.json and STEM.md")
    parser.set_defaults(func=run)


def _load_features(path: str):
    import numpy as np

    from edlm.errors import EdlmError

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise EdlmError(f"could not read features from {path!r} ({err}); pass a .npy array of shape [N, D].") from None


def run(args) -> int:
    from edlm.errors import require
    from edlm.metrics.mauve import group_samples, load_reference, mauve_eval, mauve_from_features
    from edlm.reports.report import write_report
    from edlm.util.outputs import check_output_path

    check_output_path(args.out, option="--out", kind="stem")
    require(args.num_buckets == "auto" or args.num_buckets.isdigit(),
            f"--num-buckets {args.num_buckets!r} must be auto or a positive integer.")
    require(args.prompt_len >= 0 and args.cont_len >= 1,
            f"--prompt-len {args.prompt_len} must be at least 0 and --cont-len {args.cont_len} at least 1.")
    require(args.num_reference >= 0, f"--num-reference {args.num_reference} must be at least 0 (0: the largest group).")
    require(args.batch_size >= 1, f"--batch-size {args.batch_size} must be at least 1.")
    require(args.kmeans_redo >= 1 and args.kmeans_iter >= 1,
            f"--kmeans-redo {args.kmeans_redo} and --kmeans-iter {args.kmeans_iter} must be at least 1.")
    require(args.scaling > 0, f"--scaling {args.scaling} must be positive.")
    buckets = args.num_buckets if args.num_buckets == "auto" else int(args.num_buckets)
    kwargs = dict(num_buckets=buckets, kmeans_num_redo=args.kmeans_redo, kmeans_max_iter=args.kmeans_iter,
                  scaling=args.scaling, seed=args.seed)
    if args.reference_features or args.sample_features:
        require(bool(args.reference_features and args.sample_features) and not args.featurizer,
                "precomputed features need both --reference-features and --sample-features, and no --featurizer.")
        groups = {path: _load_features(path) for path in args.sample_features}
        report = mauve_from_features(_load_features(args.reference_features), groups,
                                     settings={"features": "precomputed"}, **kwargs)
    else:
        from edlm.loading.specs import load_spec
        from edlm.loading.tokenizer_specs import load_tokenizer_spec
        from edlm.metrics.samples import recorded_tokenizer, text_only

        require(bool(args.featurizer and args.reference and args.samples),
                "pass --featurizer, --reference and --samples (or precomputed --reference-features and "
                "--sample-features).")
        groups = group_samples(args.samples)
        # The samples' ids are read in their own tokenizer (--tokenizer, else the one they record); when
        # it is unknown, their text is featurized instead, never their ids as the featurizer's.
        spec = args.tokenizer or recorded_tokenizer([s for g in groups.values() for s in g], "the sample files")
        if not spec:
            groups = {name: text_only(group, name) for name, group in groups.items()}
        featurizer = load_spec(args.featurizer, device=args.device, dtype=args.dtype,
                               trust_remote_code=args.trust_remote_code, role=("causal", "denoiser"),
                               what="--featurizer")
        sample_tokenizer = load_tokenizer_spec(spec)
        num = args.num_reference or max(len(g) for g in groups.values())
        reference = load_reference(args.reference, sample_tokenizer or featurizer.tokenizer,
                                   args.prompt_len + args.cont_len, num)
        if not spec and args.reference.endswith(".jsonl"):
            reference = text_only(reference, args.reference)
        report = mauve_eval(reference, groups, featurizer.model, sample_tokenizer=sample_tokenizer,
                            featurizer_tokenizer=featurizer.tokenizer, prompt_len=args.prompt_len,
                            cont_len=args.cont_len, span=args.span, pool=args.pool, batch_size=args.batch_size,
                            progress=True, **kwargs)
        report.settings["featurizer"] = args.featurizer
    rows = [{"group": name, "mauve": score, "frontier_integral": report.frontier_integrals[name],
             "num_samples": report.num_per_group[name]} for name, score in report.scores.items()]
    rows.append({"group": f"mean over {len(rows)} groups", "mauve": report.mean, "std": report.std})
    notes = f"Reference: {report.num_reference} samples; settings: {report.settings}; buckets: {report.num_buckets}."
    json_path, md_path = write_report(args.out, "MAUVE", report.to_dict(), rows, COLUMNS, notes)
    print(md_path.read_text(), end="")
    print(f"wrote {json_path} and {md_path}")
    return 0
