"""Unmasking rules and ReMDM remasking on the bundled text8 models, with and without the AR energy.

For every method (MDLM's random order; confidence, margin and entropy ordering; ReMDM cap) at
T in --steps reverse steps, plain and with EDLM's AR energy (k candidates at every step, window 1, as
in `edlm demo`): --num-samples samples of --seq-len characters from the same seed, scored by the
oracle in bits per character (mean and standard error over samples) and by their mean per-sample
unigram entropy in nats (confidence ordering is known to collapse diversity). One thread by default.

Usage: python benchmarks/samplers_text8.py [--steps 32,128,256] [--num-samples 8] [--seq-len 256]
           [--k 4] [--eta 0.02] [--seed 0] [--threads 1] [--out benchmarks/results/samplers_text8]
Writes OUT.json and OUT.md with the command, git revision, machine and wall time.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import torch

import edlm
from common import RESULTS, provenance, write_results
from edlm.loading.energy_specs import load_energy_spec
from edlm.loading.specs import load_spec
from edlm.metrics.generative import bits_per_char, unigram_entropy

DENOISER, ENERGY, ORACLE = "bundled:text8-small-mdlm", "ar:bundled:text8-small-ar", "bundled:text8-small-oracle"


def methods(eta: float) -> dict[str, dict]:
    """Method name -> `edlm.sample` keywords."""
    out = {rule: dict(unmasking=rule) for rule in ("random", "confidence", "margin", "entropy")}
    out[f"remdm-cap eta={eta:g}"] = dict(remasking="cap", eta=eta)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="32,128,256")
    parser.add_argument("--num-samples", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--eta", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "samplers_text8"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    loaded = load_spec(DENOISER, device="cpu")
    denoiser, tokenizer = loaded.model, loaded.tokenizer
    energy = load_energy_spec(ENERGY, denoiser=denoiser, tokenizer=tokenizer, seq_len=args.seq_len,
                              device="cpu").energy
    oracle = load_spec(ORACLE, device="cpu", role="causal").model
    rows = []
    for steps in [int(s) for s in args.steps.split(",")]:
        for name, options in methods(args.eta).items():
            for with_energy in (False, True):
                extra = dict(energy=energy, k=args.k, window=1.0) if with_energy else {}
                t0 = time.perf_counter()
                x = edlm.sample(denoiser, args.num_samples, args.seq_len, steps, **options, **extra,
                                generator=torch.Generator().manual_seed(args.seed))
                wall = time.perf_counter() - t0
                ids = x.tolist()
                bits = bits_per_char(oracle, ids, [tokenizer.decode(r) for r in ids])
                row = dict(method=name, energy="AR k=%d" % args.k if with_energy else "none", steps=steps,
                           oracle_bits_per_char=statistics.fmean(bits),
                           stderr=statistics.stdev(bits) / math.sqrt(len(bits)) if len(bits) > 1 else float("nan"),
                           unigram_entropy_nats=statistics.fmean(unigram_entropy(r) for r in ids),
                           s_per_sample=wall / args.num_samples, example=tokenizer.decode(ids[0])[:80])
                rows.append(row)
                print(row, flush=True)
    payload = dict(settings=dict(denoiser=DENOISER, energy=ENERGY, oracle=ORACLE, **vars(args)), rows=rows,
                   provenance=provenance(started))
    lines = [f"# Samplers on text8 ({args.num_samples} x {args.seq_len} chars, oracle {ORACLE})", "",
             "| method | energy | T | oracle bits/char | unigram entropy (nats) | s/sample |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['energy']} | {r['steps']} | {r['oracle_bits_per_char']:.3f} "
                     f"± {r['stderr']:.3f} | {r['unigram_entropy_nats']:.3f} | {r['s_per_sample']:.2f} |")
    p = payload["provenance"]
    m = p["machine"]
    lines += ["", f"`{p['command']}` at {p['git_revision']} on {m.get('cpu')} ({m.get('torch_threads')} thread(s), "
              f"torch {m.get('torch')}), {p['wall_time_s']} s in all."]
    out = Path(args.out)
    write_results(out.name, payload, "\n".join(lines) + "\n", out.parent)


if __name__ == "__main__":
    main()
