"""Training throughput of `edlm train` against two minimal hand-written PyTorch loops, side by side.

Three runs train on the same text8 batches (the recipe's data order) of recipe text8-small (or
--recipe, plus any --override key=value), fp32 on the CPU on one torch thread:

- edlm: `edlm.train.train`, the real training loop, timed by its own metrics rows (which leave
  the final checkpoint write out);
- minimal: the loop a researcher would write in a notebook around the same `nn.Module` that edlm
  builds (`edlm.models.build_model`): the MDLM NELBO with the log-linear schedule (one forward,
  cross-entropy on the masked positions weighted by 1/t), backward, gradient clipping, AdamW,
  EMA lerp. edlm/minimal measures the overhead of edlm's loop;
- reference: the same minimal loop around `Reference`, a plain pre-norm transformer written here
  (nn.LayerNorm, fused qkv, SDPA, rotary positions, GELU MLP of ratio 4) whose width is chosen so
  that its per-token parameters match edlm's model. edlm/reference measures the overhead of
  edlm's architecture and its implementation.

Each run reports tokens/s and its model FLOP/s as a fraction of this machine's matmul peak, measured
here: the best of timed fp32 1024x1024 @ 1024x1024 products on the same one thread. Model FLOPs per
training token are 6 N + 12 n_layers d_model seq_len (forward and backward: 2 + 4 per parameter, and
the attention scores and weighted sums), N being the per-token parameters: all but the token
embedding and the time conditioning (time embedder, adaLN modulations), which run once per
sequence. Every round runs all three, in an order rotated from round to round so that machine load
hits them alike; the ratios are medians over rounds (target: edlm at least 0.95 of each).

    EDLM_DATA=/path/to/data python benchmarks/train_throughput.py [--recipe text8-small]
        [--override model.adaln=false] [--steps 30] [--warmup 3] [--rounds 3]

Writes benchmarks/results/train_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from common import provenance, write_results
from edlm.config import load_config
from edlm.data import load_split
from edlm.errors import require
from edlm.models import build_model
from edlm.train import train
from edlm.train.metrics import read_metrics
from edlm.train.order import DataOrder, DataPosition

TARGET = 0.95
RUNS = ("edlm", "minimal", "reference")


class ReferenceBlock(nn.Module):
    """Pre-norm block: x + attention(LN(x)), then x + MLP(LN(x)); x: [B, L, d]."""

    def __init__(self, d: int, n_heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, mlp_ratio * d), nn.GELU(), nn.Linear(mlp_ratio * d, d))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(rotate(q, cos, sin), rotate(k, cos, sin), v)
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding (rotate-half) of x: [B, H, L, head_dim] by cos, sin: [L, head_dim]."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Reference(nn.Module):
    """A plain transformer: ids [B, L] in 0..V (V = mask) -> logits [B, L, V]; it ignores t."""

    def __init__(self, vocab: int, d: int, n_layers: int, n_heads: int, seq_len: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab + 1, d)
        self.blocks = nn.ModuleList(ReferenceBlock(d, n_heads, mlp_ratio) for _ in range(n_layers))
        self.norm, self.out = nn.LayerNorm(d), nn.Linear(d, vocab)
        half = d // n_heads // 2
        angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), 10000.0 ** (-torch.arange(half) / half))
        self.register_buffer("cos", angles.cos().repeat(1, 2), persistent=False)
        self.register_buffer("sin", angles.sin().repeat(1, 2), persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        n = x.shape[1]
        h = self.embed(x)
        for block in self.blocks:
            h = block(h, self.cos[:n], self.sin[:n])
        return self.out(self.norm(h))


def per_token_parameters(model: nn.Module) -> int:
    """Parameters that do matmul work at every position: all but the token embedding and the time
    conditioning (`time_embed`, `adaLN_modulation`: one evaluation per sequence)."""
    return sum(p.numel() for name, p in model.named_parameters() if not re.search(r"embed|adaLN_modulation", name))


def reference_width(cfg, target: int) -> int:
    """The d_model (a multiple of 2 n_heads) at which `Reference`'s per-token parameters come closest
    to `target`; EdlmError when even the closest is more than 5% off."""
    m = cfg.model

    def count(d: int) -> int:
        with torch.device("meta"):
            return per_token_parameters(Reference(m.vocab_size, d, m.n_layers, m.n_heads, cfg.data.seq_len))

    step = 2 * m.n_heads
    width = min(range(step, 4 * m.d_model + 1, step), key=lambda d: abs(count(d) - target))
    require(abs(count(width) - target) <= 0.05 * target,
            f"no reference width matches the {target:,} per-token parameters of the recipe's model within 5% "
            f"with n_layers={m.n_layers}, n_heads={m.n_heads}; benchmark another model shape.")
    return width


def flops_per_token(params: int, n_layers: int, d_model: int, seq_len: int) -> int:
    """Training FLOPs per token: 6 N (forward and backward) + 12 n_layers d_model seq_len (attention)."""
    return 6 * params + 12 * n_layers * d_model * seq_len


def matmul_peak(size: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of the fastest of `repeats` timed fp32 size x size matrix products (after one untimed)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def minimal_loop(model: nn.Module, cfg, data: torch.Tensor, batches: list[torch.Tensor], warmup: int) -> float:
    """Tokens/s of a notebook MDLM loop training `model` on data[rows] for rows in `batches`, the
    first `warmup` untimed. model(xt: Long[B, L], t: Float[B]) -> logits Float[B, L, V]."""
    tc, mask_id = cfg.train, cfg.model.vocab_size
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, betas=(tc.beta1, tc.beta2), weight_decay=tc.weight_decay)
    ema = [p.detach().clone() for p in model.parameters()]
    generator = torch.Generator().manual_seed(tc.seed)
    model.train()
    for step, rows in enumerate(batches):
        if step == warmup:
            start = time.perf_counter()
        x0 = data[rows]
        b, n = x0.shape
        t = tc.t_min + (1 - tc.t_min) * (1 - (torch.rand((), generator=generator) + torch.arange(b) / b) % 1)
        masked = torch.rand(b, n, generator=generator) < (1 - tc.eps) * t[:, None]
        nll = F.cross_entropy(model(x0.masked_fill(masked, mask_id), t)[masked], x0[masked], reduction="none")
        loss = (nll / t[:, None].expand(b, n)[masked]).sum() / (b * n)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, list(model.parameters()), 1 - tc.ema)
    return (len(batches) - warmup) * len(batches[0]) * data.shape[1] / (time.perf_counter() - start)


def edlm_loop(cfg, steps: int, warmup: int) -> float:
    """Tokens/s of `edlm.train` over `steps` steps after `warmup` steps, from its own metrics rows
    (one every `warmup` steps; they leave the final checkpoint write out of the throughput)."""
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
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override, repeatable (train.device and train.precision stay cpu and fp32)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before each timed window")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three runs")
    args = parser.parse_args()
    require(min(args.warmup, args.steps, args.rounds) >= 1, "--steps, --warmup and --rounds must be positive.")
    require(args.steps % args.warmup == 0, "--steps must be a multiple of --warmup (the metrics row interval).")
    torch.set_num_threads(1)
    started = time.perf_counter()
    overrides = [*args.override, "train.device=cpu", "train.precision=fp32"]
    cfg = load_config(args.recipe, overrides)
    tc, m = cfg.train, cfg.model
    require(tc.objective == "mdlm" and tc.schedule == "loglinear" and tc.grad_accum == 1 and not tc.compile,
            "the minimal loops train MDLM with the log-linear schedule, no gradient accumulation and no "
            "torch.compile; use train.objective=mdlm train.schedule=loglinear train.grad_accum=1 train.compile=false.")
    data = load_split(cfg.data, "train")
    order, position, batches = DataOrder(len(data), tc.batch_size, tc.seed), DataPosition(), []
    for _ in range(args.warmup + args.steps):  # edlm's own data order, so all three see the same batches
        rows, position = order.batch(position)
        batches.append(rows)

    edlm_model = build_model(m, tc.objective)
    params = dict(edlm=per_token_parameters(edlm_model), minimal=per_token_parameters(edlm_model))
    width = reference_width(cfg, params["edlm"])
    with torch.device("meta"):
        reference_model = Reference(m.vocab_size, width, m.n_layers, m.n_heads, cfg.data.seq_len)
    params["reference"] = per_token_parameters(reference_model)
    total = {name: sum(p.numel() for p in model.parameters())
             for name, model in (("edlm", edlm_model), ("minimal", edlm_model), ("reference", reference_model))}
    widths = dict(edlm=m.d_model, minimal=m.d_model, reference=width)
    flops = {name: flops_per_token(params[name], m.n_layers, widths[name], cfg.data.seq_len) for name in RUNS}

    def run(name: str) -> float:
        if name == "edlm":
            return edlm_loop(load_config(args.recipe, overrides), args.steps, args.warmup)
        torch.manual_seed(tc.seed)
        model = (build_model(m, tc.objective) if name == "minimal"
                 else Reference(m.vocab_size, width, m.n_layers, m.n_heads, cfg.data.seq_len))
        return minimal_loop(model, cfg, data, batches, args.warmup)

    rounds = []
    for i in range(args.rounds):
        names = RUNS[i % 3:] + RUNS[:i % 3]
        result = dict(order=list(names), peak_flops=round(matmul_peak()))
        result.update({f"{name}_tokens_per_s": round(run(name), 1) for name in names})
        for name in ("minimal", "reference"):
            result[f"edlm/{name}"] = round(result["edlm_tokens_per_s"] / result[f"{name}_tokens_per_s"], 3)
        rounds.append(result)
        print(result, flush=True)

    peak = max(r["peak_flops"] for r in rounds)
    runs = {}
    for name in RUNS:
        tokens_per_s = statistics.median(r[f"{name}_tokens_per_s"] for r in rounds)
        runs[name] = dict(parameters=total[name], per_token_parameters=params[name], d_model=widths[name],
                          flops_per_token=flops[name], median_tokens_per_s=round(tokens_per_s, 1),
                          model_flops_per_s=round(tokens_per_s * flops[name]),
                          fraction_of_peak=round(tokens_per_s * flops[name] / peak, 4))
    ratios = {name: statistics.median(r[f"edlm/{name}"] for r in rounds) for name in ("minimal", "reference")}
    payload = dict(recipe=args.recipe, overrides=args.override, batch=tc.batch_size, seq_len=cfg.data.seq_len,
                   n_layers=m.n_layers, n_heads=m.n_heads, adaln=m.adaln, precision="fp32", torch_threads=1,
                   warmup_steps_per_run=args.warmup, steps_per_run=args.steps,
                   flops_per_token="6 N + 12 n_layers d_model seq_len; N = per-token parameters (all but the token "
                                   "embedding, time embedder and adaLN modulations)",
                   peak_flops=peak,
                   peak_method="best of 5 timed fp32 1024x1024 @ 1024x1024 products per round, one thread",
                   runs=runs, rounds=rounds, median_ratio_edlm_over_minimal=ratios["minimal"],
                   median_ratio_edlm_over_reference=ratios["reference"], target=TARGET,
                   met=all(r >= TARGET for r in ratios.values()), **provenance(started))
    write_results("train_throughput", payload, markdown(args, cfg, payload))


def markdown(args, cfg, payload: dict) -> str:
    """The results page of `payload`."""
    m, runs, peak = cfg.model, payload["runs"], payload["peak_flops"]
    recipe = f"`{args.recipe}`" + (f" with `{' '.join(args.override)}`" if args.override else "")
    lines = ["# Training throughput: `edlm train` against minimal PyTorch loops", "",
             f"Recipe {recipe}: {m.n_layers} layers x {m.d_model}, {m.n_heads} heads, adaLN {m.adaln}, batch "
             f"{cfg.train.batch_size} x {cfg.data.seq_len} tokens; fp32 on the CPU on one torch thread. Steps per run: "
             f"{args.warmup} untimed, then {args.steps} timed, on the same batches. Rounds: {args.rounds}, each "
             "running the three in an order rotated from round to round.", "",
             "- **edlm**: `edlm.train.train` (timed by its metrics rows).",
             "- **minimal**: a notebook loop over the same `nn.Module` (`edlm.models.build_model`): masked-token "
             "cross-entropy weighted by 1/t, backward, gradient clipping, AdamW, EMA lerp. edlm/minimal is the "
             "loop's overhead.",
             f"- **reference**: the same loop over a plain pre-norm transformer written in the benchmark "
             f"(nn.LayerNorm, fused qkv, SDPA, rotary, GELU MLP x4) of width {runs['reference']['d_model']}, "
             "sized to edlm's per-token parameters. edlm/reference is the architecture's overhead.", "",
             "Model FLOPs per training token: 6 N + 12 n_layers d_model seq_len, N = per-token parameters (all but "
             "the token embedding and the time conditioning, i.e. time embedder and adaLN modulations, which run "
             f"once per sequence). Peak: {peak / 1e9:.1f} GFLOP/s, the best of timed fp32 1024x1024 @ 1024x1024 "
             "products on the same thread (5 per round).", "",
             "| run | parameters | per-token parameters | FLOPs/token | median tokens/s | model GFLOP/s | "
             "fraction of peak |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {name} | {r['parameters']:,} | {r['per_token_parameters']:,} | {r['flops_per_token'] / 1e6:.2f}M | "
              f"{r['median_tokens_per_s']:.0f} | {r['model_flops_per_s'] / 1e9:.2f} | {r['fraction_of_peak']:.3f} |"
              for name, r in runs.items()]
    lines += ["", "| round | order | edlm tokens/s | minimal tokens/s | reference tokens/s | edlm/minimal | "
              "edlm/reference | peak GFLOP/s |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {i} | {', '.join(r['order'])} | {r['edlm_tokens_per_s']:.0f} | {r['minimal_tokens_per_s']:.0f} | "
              f"{r['reference_tokens_per_s']:.0f} | {r['edlm/minimal']} | {r['edlm/reference']} | "
              f"{r['peak_flops'] / 1e9:.1f} |" for i, r in enumerate(payload["rounds"])]

    def verdict(ratio: float) -> str:
        return f"**{ratio:.3f}** (target at least {TARGET}: {'met' if ratio >= TARGET else 'not met'})"

    lines += ["", f"Median edlm/minimal {verdict(payload['median_ratio_edlm_over_minimal'])}; median edlm/reference "
              f"{verdict(payload['median_ratio_edlm_over_reference'])}.", "",
              f"Command: `{payload['command']}` at {payload['git_revision']} on {payload['machine']['cpu']} "
              f"({payload['machine']['cores']} cores), torch {payload['machine']['torch']} with "
              f"{payload['machine']['torch_threads']} thread(s); wall time {payload['wall_time_s']} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
