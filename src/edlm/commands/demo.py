"""`edlm demo`: MDLM and EDLM samples side by side, from the models bundled with edlm (no download).

Both samplers run the same denoiser from the same seed; EDLM adds importance-sampled denoising under
the `--energy` model (k candidates, at every step with t >= 1 - window). For each sample index the two
texts are printed in two columns, then a summary per method: wall time per sample (seconds), model
forward rows per sample (a row is one sequence of seq_len tokens through the denoiser or the energy;
see `edlm.sampling.mdlm.SampleStats`) and, unless `--oracle none`, the oracle's NLL in bits per
character (nats / tokens / ln 2; a token is a character for the text8 models) averaged over samples.
"""

from __future__ import annotations

from edlm.commands.sample import DEFAULT_DENOISER

DEFAULT_ENERGY = "ar:bundled:text8-small-ar"
DEFAULT_ORACLE = "bundled:text8-small-oracle"
RESULTS = "benchmarks/results/text8.md"


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="MDLM and EDLM samples side by side from the bundled text8 models",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--denoiser", default=DEFAULT_DENOISER,
                        help=f"diffusion model spec, as for edlm sample (default {DEFAULT_DENOISER})")
    parser.add_argument("--energy", default=DEFAULT_ENERGY,
                        help=f"EDLM energy: ar:SPEC or nce:SPEC, as for edlm sample (default {DEFAULT_ENERGY})")
    parser.add_argument("--oracle", default=DEFAULT_ORACLE,
                        help=f"causal LM that scores the samples, or none (default {DEFAULT_ORACLE})")
    parser.add_argument("--num-samples", type=int, default=2, help="samples per method (default 2)")
    parser.add_argument("--seq-len", type=int, default=None, help="tokens per sample (default: the denoiser's)")
    parser.add_argument("--steps", type=int, default=32, help="reverse steps (default 32)")
    parser.add_argument("--k", type=int, default=4, help="EDLM candidates per sequence (default 4)")
    parser.add_argument("--window", type=float, default=1.0,
                        help="EDLM importance sampling at steps with t >= 1 - window (default 1 = every step)")
    parser.add_argument("--tau", type=float, default=1.0, help="temperature of the importance weights (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of both samplers (default 0)")
    parser.add_argument("--width", type=int, default=100, help="terminal columns of the layout (default 100)")
    parser.add_argument("--json", default=None, help="also write the samples and numbers to this JSON file")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    parser.set_defaults(func=run)


def side_by_side(headers: tuple[str, str], texts: tuple[str, str], width: int) -> list[str]:
    """Lines of at most `width` characters: two headers, a rule, and two texts, each wrapped into its
    half of the width, the halves split by ' | '."""
    import itertools
    import textwrap

    column = (width - 3) // 2

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
                             tau=args.tau, generator=generator, return_stats=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    n = args.num_samples
    return ids.tolist(), dict(seconds_per_sample=(time.perf_counter() - start) / n,
                              denoiser_rows_per_sample=stats.count("denoiser")[1] / n,
                              energy_rows_per_sample=stats.count("energy")[1] / n)


def load_oracle(spec: str, tokenizer, device):
    """The causal LM of an oracle spec that shares `tokenizer`; EdlmError otherwise."""
    from edlm.errors import require
    from edlm.loading.specs import load_model_spec, same_tokenizer

    loaded = load_model_spec(spec, device=str(device))
    require(loaded.causal, f"--oracle {spec!r} is not a causal LM; pass an AR model spec or none.")
    difference = same_tokenizer(tokenizer, loaded.tokenizer)
    require(difference is None, f"the oracle's tokenizer differs from the denoiser's: {difference}; "
            "use an oracle trained on the denoiser's tokenizer or --oracle none.")
    return loaded.model


def summary(methods: dict[str, dict], num_samples: int, width: int) -> list[str]:
    """The summary table (one line per method) and the note, wrapped to `width`, that it is not a benchmark."""
    import textwrap

    scored = all(m["oracle_bits_per_char"] is not None for m in methods.values())
    head = f"{'method':<8}{'s/sample':>10}{'denoiser rows/sample':>22}{'energy rows/sample':>20}"
    lines = [head + (f"{'oracle bits/char':>18}" if scored else "")]
    for name, m in methods.items():
        line = (f"{name.upper():<8}{m['seconds_per_sample']:>10.2f}{m['denoiser_rows_per_sample']:>22.1f}"
                f"{m['energy_rows_per_sample']:>20.1f}")
        lines.append(line + (f"{m['oracle_bits_per_char']:>18.3f}" if scored else ""))
    note = f"note: one seed and {num_samples} sample(s), so this is a demonstration, not a benchmark; see {RESULTS}."
    return lines + textwrap.wrap(note, width)


def run(args) -> int:
    import json
    import statistics

    from edlm.commands.sample import check_sampler_args, check_seq_len, load_denoiser, load_energy
    from edlm.errors import require
    from edlm.metrics.generative import bits_per_token
    from edlm.util.atomic import write_text_atomic
    from edlm.util.device import select_device

    check_sampler_args(args)
    require(args.width >= 20, f"--width {args.width} is too narrow for two columns; use at least 20.")
    device = select_device(args.device)
    loaded = load_denoiser(args.denoiser, device=device)
    denoiser, tokenizer = loaded.model, loaded.tokenizer
    seq_len = args.seq_len or loaded.seq_len
    check_seq_len(seq_len, denoiser, "denoiser")
    energy, _ = load_energy(args.energy, denoiser, tokenizer, seq_len, device=device)
    oracle = None if args.oracle.lower() == "none" else load_oracle(args.oracle, tokenizer, device)

    kind = "AR" if args.energy.startswith("ar:") else "NCE"
    runs = {"mdlm": (f"MDLM ({args.steps} steps)", {}),
            "edlm": (f"EDLM ({kind} energy, k={args.k}, window={args.window}, {args.steps} steps)",
                     dict(energy=energy, k=args.k, window=args.window))}
    methods = {}
    for name, (header, options) in runs.items():
        rows, numbers = run_sampler(denoiser, seq_len, args, **options)
        bits = [None] * len(rows) if oracle is None else bits_per_token(oracle, rows)
        methods[name] = dict(header=header, **numbers,
                             oracle_bits_per_char=None if oracle is None else statistics.fmean(bits),
                             samples=[dict(ids=ids, text=tokenizer.decode(ids), oracle_bits_per_char=b)
                                      for ids, b in zip(rows, bits)])

    left, right = methods["mdlm"], methods["edlm"]
    print(f"{args.num_samples} sample(s) of {seq_len} tokens, seed {args.seed}, on {device}\n")
    for i in range(args.num_samples):
        print(f"sample {i + 1}/{args.num_samples}")
        texts = (left["samples"][i]["text"], right["samples"][i]["text"])
        print("\n".join(side_by_side((left["header"], right["header"]), texts, args.width)) + "\n")
    print("\n".join(summary(methods, args.num_samples, args.width)))
    if args.json:
        settings = dict(denoiser=args.denoiser, energy=args.energy, oracle=args.oracle, num_samples=args.num_samples,
                        seq_len=seq_len, steps=args.steps, k=args.k, window=args.window, tau=args.tau,
                        seed=args.seed, device=str(device))
        write_text_atomic(args.json, json.dumps(dict(settings=settings, methods=methods), indent=1) + "\n")
    return 0
