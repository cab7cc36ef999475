"""Training throughput of `edlm train` against a minimal hand-written PyTorch loop, side by side.

Both train the same MDLM (recipe text8-small unless --recipe says otherwise) on the same text8
batches in the same precision with the same optimizer work per step (AdamW, gradient clipping, EMA).
The minimal loop is what a researcher would write in a notebook: no checkpoints, no logging, no
distributed wrapper, no seeded noise bookkeeping. Rounds alternate edlm and minimal so that machine
load hits both alike; the reported ratio is the median edlm/minimal tokens/s over rounds.

    EDLM_DATA=/path/to/data python benchmarks/train_throughput.py [--steps 30] [--rounds 3]

Writes benchmarks/results/train_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time

import torch

from common import provenance, write_results
from edlm.config import load_config
from edlm.data import load_split
from edlm.models import build_model
from edlm.train import train
from edlm.train.metrics import read_metrics


def minimal_loop(cfg, data: torch.Tensor, steps: int, warmup: int) -> float:
    """Tokens per second of a plain MDLM loop over `steps` timed steps after `warmup` untimed ones."""
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model)
    ema = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, betas=(cfg.train.beta1, cfg.train.beta2),
                            weight_decay=cfg.train.weight_decay)
    mask_id, b = cfg.model.vocab_size, cfg.train.batch_size
    order = torch.randperm(len(data))
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        x0 = data[order[step * b:(step + 1) * b]]
        t = (torch.rand(()) + torch.arange(b) / b) % 1 * (1 - 1e-3) + 1e-3
        masked = torch.rand(x0.shape) < t[:, None]
        xt = torch.where(masked, mask_id, x0)
        nll = torch.nn.functional.cross_entropy(model(xt, t).float().transpose(1, 2), x0, reduction="none")
        loss = ((nll * masked).sum(1) / t).mean() / x0.shape[1]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in model.parameters()], 1 - cfg.train.ema)
    return steps * b * data.shape[1] / (time.perf_counter() - start)


def edlm_loop(cfg, steps: int, warmup: int) -> float:
    """Tokens per second of `edlm.train` over `steps` steps after `warmup` steps, from its own metrics
    rows (one every `warmup` steps; they leave the final checkpoint write out of the throughput)."""
    with tempfile.TemporaryDirectory() as out:
        cfg.train.out_dir, cfg.train.steps = out, warmup + steps
        cfg.train.log_every, cfg.train.eval_every, cfg.train.save_every = warmup, 0, 0
        train(cfg, progress=False)
        rows = [r for r in read_metrics(out) if "tokens_per_s" in r and r["step"] > warmup]
        tokens = warmup * cfg.train.batch_size * cfg.data.seq_len
        return len(rows) * tokens / sum(tokens / r["tokens_per_s"] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="text8-small")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before each timed window")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    assert args.steps % args.warmup == 0, "--steps must be a multiple of --warmup (the metrics row interval)"
    started = time.perf_counter()
    cfg = load_config(args.recipe, ["train.device=cpu", "train.precision=fp32"])
    data = load_split(cfg.data, "train")
    rounds = []
    for _ in range(args.rounds):
        ours = edlm_loop(load_config(args.recipe, ["train.device=cpu", "train.precision=fp32"]), args.steps, args.warmup)
        mini = minimal_loop(cfg, data, args.steps, args.warmup)
        rounds.append(dict(edlm_tokens_per_s=round(ours), minimal_tokens_per_s=round(mini), ratio=round(ours / mini, 3)))
        print(rounds[-1], flush=True)
    ratio = statistics.median(r["ratio"] for r in rounds)
    payload = dict(recipe=args.recipe, batch=cfg.train.batch_size, seq_len=cfg.data.seq_len, precision="fp32",
                   steps_per_round=args.steps, rounds=rounds, median_ratio=ratio, target=0.95, met=ratio >= 0.95,
                   **provenance(started))
    lines = ["# Training throughput: `edlm train` against a minimal PyTorch loop", "",
             f"Recipe `{args.recipe}` (batch {cfg.train.batch_size} x {cfg.data.seq_len} tokens, fp32, CPU), "
             f"{args.steps} timed steps per round, rounds alternating.", "",
             "| round | edlm tokens/s | minimal tokens/s | ratio |", "|---|---|---|---|"]
    lines += [f"| {i} | {r['edlm_tokens_per_s']} | {r['minimal_tokens_per_s']} | {r['ratio']} |" for i, r in enumerate(rounds)]
    lines += ["", f"Median ratio **{ratio:.3f}** (target at least 0.95: {'met' if ratio >= 0.95 else 'not met'}).", "",
              f"Command: `{payload['command']}` at {payload['git_revision']} on {payload['machine']['cpu']} "
              f"({payload['machine']['cores']} cores), torch {payload['machine']['torch']} with "
              f"{payload['machine']['torch_threads']} threads; wall time {payload['wall_time_s']} s.", ""]
    write_results("train_throughput", payload, "\n".join(lines))
    assert math.isfinite(ratio)


if __name__ == "__main__":
    main()
