"""`edlm demo`: MDLM and EDLM samples side by side, from the models bundled with edlm (no download).

Both samplers run the same denoiser from the same seed (and `--temperature`: tokens drawn from
softmax(logits / temperature), 1 = the models); EDLM adds importance-sampled denoising under
the `--energy` model (k candidates, at every step with t >= 1 - window). For each sample index the two
texts are printed in two columns, then a summary per method: wall time per sample (seconds), model
forward rows per sample (a row is one sequence of seq_len tokens through the denoiser or the energy;
see `edlm.sampling.mdlm.SampleStats`) and, unless `--oracle none`, the oracle's NLL in bits per
character of the sample text (nats / characters / ln 2), averaged over samples. An oracle with another
tokenizer than the denoiser's scores the decoded text encoded by its own tokenizer (`oracle_retokenized`
in the JSON), so bits per character stay comparable. Real words: the fraction of the samples'
whitespace-separated words (all samples of a method together) found among the distinct words of the
text8 train split the denoiser was trained on (`edlm.metrics.words`), beside the same fraction for the
first `--num-samples` test sequences of `--seq-len` characters; text8 is read from `--data`, else the
denoiser's data.path, else $EDLM_DATA, never downloaded: without a local copy (or for a denoiser not
trained on text8) the fractions are left out.
"""

from __future__ import annotations

from edlm.commands.arguments import DEFAULT_DENOISER

DEFAULT_ENERGY = "ar:bundled:text8-small-ar"
DEFAULT_ORACLE = "bundled:text8-small-oracle"
RESULTS = "benchmarks/results/text8.md"
SUMMARY_COLUMNS = ["method", "seconds_per_sample", "denoiser_rows_per_sample", "energy_rows_per_sample",
                   "oracle_bits_per_char", "real_word_fraction"]


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="MDLM and EDLM samples side by side from the bundled text8 models",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--denoiser", default=DEFAULT_DENOISER,
                        help=f"diffusion model spec, as for edlm sample (default {DEFAULT_DENOISER})")
    parser.add_argument("--energy", default=DEFAULT_ENERGY,
                        help=f"EDLM energy: ar:MODEL, coar:MODEL or nce:MODEL, as for edlm sample "
                             f"(default {DEFAULT_ENERGY})")
    parser.add_argument("--oracle", default=DEFAULT_ORACLE,
                        help=f"causal LM (any model spec) that scores the samples in bits per character, or none "
                             f"(default {DEFAULT_ORACLE})")
    parser.add_argument("--num-samples", type=int, default=2, help="samples per method (default 2)")
    parser.add_argument("--seq-len", type=int, default=None, help="tokens per sample (default: the denoiser's)")
    parser.add_argument("--steps", type=int, default=32, help="reverse steps (default 32)")
    parser.add_argument("--k", type=int, default=4, help="EDLM candidates per sequence (default 4)")
    parser.add_argument("--window", type=float, default=1.0,
                        help="EDLM importance sampling at steps with t >= 1 - window (default 1 = every step)")
    parser.add_argument("--tau", type=float, default=1.0, help="temperature of the importance weights (default 1)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="both samplers draw tokens from softmax(logits / temperature) (default 1 = the model)")
    parser.add_argument("--seed", type=int, default=0, help="seed of both samplers (default 0)")
    parser.add_argument("--columns", type=int, default=100, help="terminal columns of the layout (default 100)")
    parser.add_argument("--data", default="", help="text8 location for the real-word fractions (default: the "
                        "denoiser's data.path, else $EDLM_DATA; never downloaded, left out when not found)")
    parser.add_argument("--out", default=None, metavar="STEM",
                        help="also write the samples and numbers to STEM.json and the summary to STEM.md")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    parser.set_defaults(func=run)


def side_by_side(headers: tuple[str, str], texts: tuple[str, str], columns: int) -> list[str]:
    """Lines of at most `columns` characters: two headers, a rule, and two texts, each wrapped into its
    half of the line, the halves split by ' | '."""
    import itertools
    import textwrap

    column = (columns - 3) // 2

    def pairs(left: str, right: str) -> list[str]:
        rows = itertools.zip_longest(textwrap.wrap(left, column), textwrap.wrap(right, column), fillvalue="")
        return [f"{a:<{column}} | {b}".rstrip() for a, b in rows]

    return pairs(*headers) + ["-" * column + "-+-" + "-" * column] + pairs(*texts)


def run_sampler(denoiser, seq_len: int, args, *, energy=None, k: int = 1, window: float = 0.0) -> tuple[list, dict]:
    """Draw args.num_samples sequences of seq_len tokens from args.seed: (lists of token ids, numbers:
    `seconds_per_sample` (wall time), `denoiser_rows_per_sample`, `energy_rows_per_sample`)."""
    import time

    import torch

    from edlm.sampling import sample
    from edlm.util.device import module_device

    device = module_device(denoiser)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    start = time.perf_counter()
    ids, stats = sample(denoiser, args.num_samples, seq_len, args.steps, energy=energy, k=k, window=window,
                        tau=args.tau, temperature=args.temperature, generator=generator, return_stats=True,
                        progress=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    n = args.num_samples
    return ids.tolist(), dict(seconds_per_sample=(time.perf_counter() - start) / n,
                              denoiser_rows_per_sample=stats.count("denoiser")[1] / n,
                              energy_rows_per_sample=stats.count("energy")[1] / n)


def real_words(loaded, data: str, num_samples: int, seq_len: int) -> tuple[set[str] | None, list[str], str]:
    """(vocabulary, test texts, why): the distinct words of the train split of text8, which the denoiser
    (its `LoadedModel`) was trained on, and its first `num_samples` test sequences of `seq_len` characters
    as text, both decoded by the denoiser's tokenizer; or (None, [], why they are left out) when the
    denoiser was not trained on text8 or no local copy is named (`data`, else its data.path, else
    $EDLM_DATA): the demo downloads nothing."""
    import dataclasses

    from edlm.data import load_split
    from edlm.data.files import data_root
    from edlm.metrics.words import word_vocabulary

    if loaded.config is None or loaded.config.data.corpus != "text8":
        return None, [], "the denoiser was not trained on text8"
    cfg = dataclasses.replace(loaded.config.data, path=data or loaded.config.data.path)
    if not cfg.path and data_root() is None:
        return None, [], "text8 was not found: pass --data DIR or set EDLM_DATA"
    decode = loaded.tokenizer.decode
    vocabulary = word_vocabulary(decode(load_split(cfg, "train").flatten().tolist()))
    test = load_split(dataclasses.replace(cfg, seq_len=seq_len), "test")[:num_samples]
    return vocabulary, [decode(row) for row in test.tolist()], ""


def summary(methods: dict[str, dict], num_samples: int, columns: int, words: str) -> list[str]:
    """The summary table (one line per method), then the line `words` that explains the real-word column
    and the note that this is not a benchmark, both wrapped to `columns`."""
    import textwrap

    scored = all(m["oracle_bits_per_char"] is not None for m in methods.values())
    counted = all(m["real_word_fraction"] is not None for m in methods.values())
    head = f"{'method':<8}{'s/sample':>10}{'denoiser rows/sample':>22}{'energy rows/sample':>20}"
    lines = [head + (f"{'oracle bits/char':>18}" if scored else "") + (f"{'real words':>12}" if counted else "")]
    for name, m in methods.items():
        line = (f"{name.upper():<8}{m['seconds_per_sample']:>10.2f}{m['denoiser_rows_per_sample']:>22.1f}"
                f"{m['energy_rows_per_sample']:>20.1f}")
        line += f"{m['oracle_bits_per_char']:>18.3f}" if scored else ""
        lines.append(line + (f"{m['real_word_fraction']:>12.3f}" if counted else ""))
    note = f"note: one seed and {num_samples} sample(s), so this is a demonstration, not a benchmark; see {RESULTS}."
    return lines + textwrap.wrap(words, columns) + textwrap.wrap(note, columns)


def run(args) -> int:
    import statistics
    import sys

    from edlm.commands.arguments import check_sampler_args, load_denoiser
    from edlm.errors import require
    from edlm.loading.energy_specs import load_energy_spec
    from edlm.loading.specs import check_seq_len
    from edlm.metrics.judge import judge_bits_per_char, load_judge
    from edlm.metrics.words import real_word_fraction
    from edlm.reports.report import write_report
    from edlm.util.device import select_device
    from edlm.util.outputs import check_output_path

    check_output_path(args.out, option="--out", kind="stem")
    check_sampler_args(args)
    require(args.k > 1 and args.window > 0, f"--k {args.k} and --window {args.window:g} make the EDLM column plain "
            "MDLM; pass --k 2 or more and a --window above 0.")
    require(args.columns >= 20, f"--columns {args.columns} is too narrow for two columns of text; use at least 20.")
    device = select_device(args.device)
    loaded = load_denoiser(args.denoiser, device=device)
    denoiser, tokenizer = loaded.model, loaded.tokenizer
    seq_len = args.seq_len or loaded.seq_len
    check_seq_len(seq_len, denoiser, "denoiser")
    loaded_energy = load_energy_spec(args.energy, denoiser=denoiser, tokenizer=tokenizer, seq_len=seq_len,
                                     device=device, what="--energy")
    energy = loaded_energy.energy
    oracle = None if args.oracle.lower() == "none" else load_judge(args.oracle, device)
    vocabulary, test_texts, why = real_words(loaded, args.data, args.num_samples, seq_len)

    def fraction(texts: list[str]) -> float | None:
        """The real-word fraction of the words of all `texts` together; None without a vocabulary."""
        return None if vocabulary is None else real_word_fraction(" ".join(texts), vocabulary)

    kind = {"ar": "AR", "coar": "coAR", "nce": "NCE"}[loaded_energy.kind]
    retokenized = None
    runs = {"mdlm": (f"MDLM ({args.steps} steps)", {}),
            "edlm": (f"EDLM ({kind} energy, k={args.k}, window={args.window}, {args.steps} steps)",
                     dict(energy=energy, k=args.k, window=args.window))}
    methods = {}
    for name, (header, options) in runs.items():
        rows, numbers = run_sampler(denoiser, seq_len, args, **options)
        bits = [None] * len(rows)
        if oracle is not None:
            bits, retokenized = judge_bits_per_char(oracle, rows, tokenizer)
        texts = [tokenizer.decode(ids) for ids in rows]
        methods[name] = dict(header=header, **numbers,
                             oracle_bits_per_char=None if oracle is None else statistics.fmean(bits),
                             real_word_fraction=fraction(texts),
                             samples=[dict(ids=ids, text=text, oracle_bits_per_char=b,
                                           real_word_fraction=fraction([text])) for ids, text, b in zip(rows, texts, bits)])

    left, right = methods["mdlm"], methods["edlm"]
    tempered = "" if args.temperature == 1 else f", temperature {args.temperature:g}"
    print(f"{args.num_samples} sample(s) of {seq_len} tokens, seed {args.seed}{tempered}, on {device}\n")
    for i in range(args.num_samples):
        print(f"sample {i + 1}/{args.num_samples}")
        texts = (left["samples"][i]["text"], right["samples"][i]["text"])
        print("\n".join(side_by_side((left["header"], right["header"]), texts, args.columns)) + "\n")
    test_fraction = fraction(test_texts)
    words = (f"real words: fraction of the samples' words found among the {len(vocabulary):,} distinct words of "
             f"the text8 train split; real text (the first {len(test_texts)} test sequence(s) of {seq_len} "
             f"characters): {test_fraction:.3f}." if vocabulary is not None else f"real words: left out, since {why}.")
    lines = summary(methods, args.num_samples, args.columns, words)
    print("\n".join(lines))
    if args.out:
        settings = dict(tokenizer=loaded.tokenizer_spec, denoiser=args.denoiser, energy=args.energy,
                        oracle=args.oracle, oracle_retokenized=retokenized, num_samples=args.num_samples,
                        seq_len=seq_len, steps=args.steps, k=args.k, window=args.window, tau=args.tau,
                        temperature=args.temperature, seed=args.seed, device=str(device), data=args.data)
        real = None if vocabulary is None else dict(vocabulary_size=len(vocabulary), test_texts=test_texts,
                                                    test_real_word_fraction=test_fraction)
        rows = [dict(m, method=m["header"]) for m in methods.values()]
        json_path, md_path = write_report(args.out, "MDLM and EDLM side by side", dict(settings=settings,
                                          methods=methods, real_words=real), rows, SUMMARY_COLUMNS,
                                          " ".join(lines[len(methods) + 1:]))
        print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0
