"""Glauber dynamics at iso-compute (section 4.3 of the Glauber-dynamics paper): AR alone, Glauber rounds
after causal generation, and AR best-of-n with the same number of forward passes, all scored under an oracle LM.

Methods, on `--num-samples` sequences of `--seq-len` tokens:
- `ar`: causal samples from the AR model with its KV cache (temperature 1). These are also the
  initial sequences of every Glauber run (common random numbers: the comparison isolates the rounds).
- `glauber <variant>` after R rounds, for R in `--rounds`, with the AR model as the energy and the
  infill (diffusion) model as the proposal. Variants (`--variants`, comma separated):
  `single` (block 1, Metropolis), `block:M`, `joint:S` (parallel S, joint test), `persite:S`
  (parallel S, per-site tests) and `nofilter` (single-site, no Metropolis filter). Rounds run one at a
  time (the chain continues), so R = 3 costs the rounds of R = 1 plus two more.
- `best-of-n (matches ...)`: n causal samples per output, the one with the highest log-likelihood
  under the AR model itself kept, with n = the rounded forward passes per sample of the Glauber row it
  matches. The n candidates of a smaller n are the first n of a larger one.

Compute unit: sequence-length forward passes per output sample. A causal generation with the KV cache
reads each of its L inputs once and counts as 1; each infill row and each `token_logprobs` row counts
as 1 (Glauber's Metropolis tests score current and proposed sequences: 2 rows, skipped when the
proposal equals the current sequence). The AR log-likelihood that ranks best-of-n candidates is a
by-product of generation (the sampled tokens' log-probabilities) and is not charged, although this
script recomputes it with `token_logprobs` for simplicity. Glauber's energy bookkeeping is not charged.
Batched model calls (one call = one forward of a batch) are reported too.

Quality: oracle NLL per token (nats; and its exp, the generative perplexity) on all L tokens of
every sample, the AR model's own NLL per token (the energy the Metropolis filter targets), and the
mean per-sample unigram entropy (nats; best-of-n and low-temperature chains lose diversity).

Usage:
  python benchmarks/glauber_isocompute.py --ar AR_CKPT --infill MDLM_CKPT --oracle ORACLE_CKPT \
      [--num-samples 64] [--seq-len L] [--rounds 1,3] [--variants single,joint:16] [--seed 0]
      [--batch-size 64] [--max-best-of 4096] [--device auto] [--out benchmarks/results/glauber_isocompute]
Models are model specs (`edlm.load`: a run or checkpoint directory, ckpt:, pretrained:, bundled:, hf:; EMA
weights of checkpoints unless --no-ema).
Writes OUT.json and OUT.md (atomically).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

import edlm
from common import git_revision, machine, run_main
from edlm.util.device import module_device
from edlm.errors import require
from edlm.metrics.generative import sequence_nll, unigram_entropy
from edlm.sampling import ar_sample

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ["method", "rounds", "forward_passes_per_sample", "model_calls", "oracle_nll_per_token", "oracle_ppl",
           "ar_nll_per_token", "entropy_nats", "acceptance_last_round", "wall_s"]
VARIANT_KINDS = ("single", "block", "joint", "persite", "nofilter")


def parse_variants(text: str) -> list[tuple[str, dict]]:
    """'single,block:8,joint:16,persite:16,nofilter' -> [(name, glauber kwargs)]."""
    out = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        kind, _, arg = item.partition(":")
        require(kind in VARIANT_KINDS,
                f"variant {item!r} is unknown; use one of {VARIANT_KINDS} (block/joint/persite take :N).")
        require((arg != "") == (kind in ("block", "joint", "persite")),
                f"variant {item!r}: block, joint and persite need :N (e.g. joint:16); single and nofilter take none.")
        require(arg == "" or (arg.isdigit() and int(arg) >= 1), f"variant {item!r}: N must be a positive integer.")
        n = int(arg or 1)
        kw = {"single": {}, "nofilter": {"metropolis": False}, "block": {"block": n}, "joint": {"parallel": n},
              "persite": {"parallel": n, "parallel_test": "per_site"}}[kind]
        out.append((item, kw))
    require(bool(out), "--variants names no variant; pass e.g. single,joint:16.")
    return out


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def quality(samples: torch.Tensor, ar, oracle, batch_size: int) -> dict:
    """Oracle and AR NLL per token (nats) over all tokens, oracle PPL, mean unigram entropy (nats)."""
    rows = samples.cpu().tolist()
    tokens = samples.numel()
    oracle_nll = sum(sequence_nll(oracle, rows, batch_size)) / tokens
    ar_nll = sum(sequence_nll(ar, rows, batch_size)) / tokens
    return dict(oracle_nll_per_token=oracle_nll, oracle_ppl=math.exp(oracle_nll), ar_nll_per_token=ar_nll,
                entropy_nats=sum(unigram_entropy(r) for r in rows) / len(rows))


@torch.no_grad()
def run_isocompute(ar, infill, oracle, *, num_samples: int, seq_len: int, rounds=(1, 3), variants="single,joint:16",
                   seed: int = 0, batch_size: int | None = None, max_best_of: int = 4096,
                   progress: bool = False) -> dict:
    """The benchmark's core on loaded models: returns {"rows": [...], "settings": {...}} (module docstring)."""
    require(hasattr(ar, "token_logprobs") and hasattr(oracle, "token_logprobs"),
            "--ar and --oracle must be causal LMs (AR checkpoints).")
    require(ar.vocab_size == infill.vocab_size == oracle.vocab_size,
            f"vocab sizes differ: ar {ar.vocab_size}, infill {infill.vocab_size}, oracle {oracle.vocab_size}; "
            "use checkpoints trained on the same tokenizer.")
    rounds = sorted(set(int(r) for r in rounds))
    require(bool(rounds) and rounds[0] >= 1, f"rounds={rounds} must be positive integers.")
    require(max_best_of >= 1, f"max_best_of={max_best_of} must be at least 1.")
    parsed = parse_variants(variants) if isinstance(variants, str) else list(variants)
    device = module_device(ar)
    score_batch = batch_size or 64
    rows = []

    def generator(offset: int) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(seed * 1000 + offset)

    _sync(device)
    start = time.perf_counter()
    init = ar_sample(ar, num_samples, seq_len, generator=generator(0), batch_size=batch_size, progress=progress)
    _sync(device)
    ar_s = time.perf_counter() - start
    rows.append(dict(method="ar", rounds=0, forward_passes_per_sample=1.0, model_calls=seq_len,
                     wall_s=ar_s, **quality(init, ar, oracle, score_batch)))

    for v, (name, kw) in enumerate(parsed):
        x, passes, calls, wall, acceptance = init, 1.0, seq_len, ar_s, []
        for r in range(1, rounds[-1] + 1):
            _sync(device)
            start = time.perf_counter()
            x, stats = edlm.glauber(ar, infill, num_samples, seq_len, 1, init=x, generator=generator(100 * (v + 1) + r),
                                    batch_size=batch_size, return_stats=True, progress=progress, **kw)
            _sync(device)
            wall += time.perf_counter() - start
            fp = stats.forward_passes()
            passes += (fp["infill"] + fp["lm"]) / num_samples
            calls += stats.count("infill")[0] + stats.count("lm")[0]
            acceptance.append(float(stats.acceptance[0]))
            if r in rounds:
                rows.append(dict(method=f"glauber {name}", rounds=r, forward_passes_per_sample=passes,
                                 model_calls=calls, acceptance=list(acceptance),
                                 acceptance_last_round=acceptance[-1], wall_s=wall,
                                 **quality(x, ar, oracle, score_batch)))

    matched = [(row["method"], row["rounds"], max(1, round(row["forward_passes_per_sample"]))) for row in rows[1:]]
    n_max = min(max_best_of, max(n for *_, n in matched))
    _sync(device)
    start = time.perf_counter()
    cand = ar_sample(ar, num_samples * n_max, seq_len, generator=generator(1), batch_size=batch_size, progress=progress)
    _sync(device)
    gen_s = time.perf_counter() - start
    logp = -torch.tensor(sequence_nll(ar, cand.cpu().tolist(), score_batch), dtype=torch.float64)
    cand, logp = cand.view(num_samples, n_max, seq_len), logp.view(num_samples, n_max)  # batch-major
    for method, r, n_wanted in matched:
        n = min(n_wanted, n_max)
        best = cand[torch.arange(num_samples), logp[:, :n].argmax(1).to(cand.device)]
        rows.append(dict(method=f"best-of-{n} (matches {method} R={r})", rounds=0, forward_passes_per_sample=float(n),
                         model_calls=math.ceil(num_samples * n / (batch_size or num_samples * n_max)) * seq_len,
                         best_of=n, matched_forward_passes=n_wanted, capped=n < n_wanted,
                         wall_s=gen_s * n / n_max, **quality(best, ar, oracle, score_batch)))
    settings = dict(num_samples=num_samples, seq_len=seq_len, rounds=rounds, variants=[n for n, _ in parsed],
                    seed=seed, batch_size=batch_size, max_best_of=max_best_of, best_of_generated=n_max,
                    device=str(device))
    return dict(settings=settings, rows=rows)






NOTES = """Forward passes per sample: an AR generation with the KV cache = 1; each infill row and each
token_logprobs row (Metropolis tests score current + proposed = 2 rows, skipped when nothing changes) = 1.
Best-of-n keeps the candidate with the highest AR log-likelihood (a by-product of generation, not charged),
n = the rounded forward passes of the Glauber row it matches (capped at --max-best-of: see `capped`).
Glauber rows start from the `ar` row's samples. oracle_nll_per_token in nats over all tokens; oracle_ppl = its exp;
ar_nll_per_token is the AR model's own NLL (the Metropolis target); entropy_nats is the mean per-sample unigram entropy.
model_calls counts batched forward calls (AR: one per position)."""


def main(argv: list[str] | None = None) -> int:
    from edlm.reports.report import write_report
    from edlm.loading.specs import load_spec

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ar", required=True, help="AR checkpoint: the causal initialisation and the energy")
    parser.add_argument("--infill", required=True, help="diffusion (mdlm) checkpoint: the infill proposal")
    parser.add_argument("--oracle", required=True, help="AR checkpoint that scores the samples")
    parser.add_argument("--num-samples", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=None, help="default: the AR checkpoint's data.seq_len")
    parser.add_argument("--rounds", default="1,3")
    parser.add_argument("--variants", default="single,joint:16")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-best-of", type=int, default=4096)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-ema", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "glauber_isocompute"), help="output prefix (writes .json, .md)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    loaded_ar = load_spec(args.ar, ema=not args.no_ema, device=args.device, role="causal", what="--ar")
    ar = loaded_ar.model
    infill = load_spec(args.infill, ema=not args.no_ema, device=module_device(ar), role="denoiser",
                       what="--infill").model
    oracle = load_spec(args.oracle, ema=not args.no_ema, device=module_device(ar), role="causal", what="--oracle").model
    seq_len = args.seq_len or loaded_ar.seq_len
    for name, model in (("--ar", ar), ("--infill", infill), ("--oracle", oracle)):
        limit = getattr(getattr(model, "config", None), "max_seq_len", None)
        require(limit is None or seq_len <= limit,
                f"--seq-len {seq_len} exceeds the {name} model's max_seq_len={limit}; use a shorter --seq-len.")
    rounds = [int(r) for r in args.rounds.split(",") if r.strip()]
    result = run_isocompute(ar, infill, oracle, num_samples=args.num_samples, seq_len=seq_len, rounds=rounds,
                            variants=args.variants, seed=args.seed, batch_size=args.batch_size,
                            max_best_of=args.max_best_of, progress=True)
    command = ["python", "benchmarks/glauber_isocompute.py"] + (sys.argv[1:] if argv is None else argv)
    result.update(checkpoints=dict(ar=args.ar, infill=args.infill, oracle=args.oracle, ema=not args.no_ema),
                  git_revision=git_revision(), machine=machine(), wall_s=time.perf_counter() - started,
                  command=" ".join(command))
    notes = (f"Command: `{result['command']}`  \nGit revision: `{result['git_revision']}`  \n"
             f"Machine: {result['machine']['gpu'] or result['machine']['cpu']}, torch {result['machine']['torch']}  \n"
             f"Wall time: {result['wall_s']:.1f} s; {args.num_samples} samples of {seq_len} tokens.\n\n" + NOTES)
    title = "Glauber dynamics at iso-compute"
    json_path, md_path = write_report(args.out, title, result, result["rows"], COLUMNS, notes)
    print(md_path.read_text(), end="")
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    run_main(main, "glauber_isocompute")
