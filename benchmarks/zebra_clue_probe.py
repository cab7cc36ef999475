"""Does a Zebra model read the clues? A probe of masked diffusion models trained on Zebra puzzles (cells
format), for the puzzles benchmark's table (docs/puzzles.md): per-cell argmax accuracy and NLL of the
answer cells

- with one cell masked and the other cells given: the permutation structure alone (each attribute takes
  every value once) decides the cell, so a model that learned it scores 100% without reading a clue;
- with the whole answer masked, under the puzzle's own clues and under the clues of another test puzzle
  (rows rolled by one): a model that reads the clues does better with its own; one that does not scores
  the same, at chance (1/houses, NLL ln(houses) nats).

    OMP_NUM_THREADS=1 python benchmarks/zebra_clue_probe.py --model RUN [--model RUN ...] --puzzles FILE

writes benchmarks/results/zebra_clue_probe.{json,md} (--out STEM elsewhere).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from common import RESULTS, markdown_table, provenance, run_main, write_results
from edlm.errors import require
from edlm.loading.specs import load_spec
from edlm.puzzles.lines import read_puzzle_file
from edlm.puzzles.tokens import cells_tokens

NAME = "zebra_clue_probe"
COLUMNS = ["model", "puzzles", "one_masked_acc", "one_masked_nll", "own_clues_acc", "own_clues_nll",
           "other_clues_acc", "other_clues_nll", "chance_acc", "chance_nll"]


def answer_scores(model, x: torch.Tensor, masked: torch.Tensor, context: int, values: int) -> tuple[float, float]:
    """(argmax accuracy, mean NLL in nats) over the masked answer cells of x Long[B, C + S]; masked: Bool[B, S]."""
    y = x.clone()
    y[:, context:][masked] = model.mask_id
    t = masked.double().mean(-1).to(torch.float32)
    logp = model(y, t)[:, context:, :values].float().log_softmax(-1)
    answer = x[:, context:]
    right = (logp.argmax(-1) == answer)[masked]
    nll = -logp.gather(-1, answer[..., None])[..., 0][masked]
    return float(right.double().mean()), float(nll.double().mean())


@torch.no_grad()
def probe(spec: str, path: str, limit: int) -> dict:
    """The probe's row for one model (module doc) on the first `limit` puzzles of `path`."""
    loaded = load_spec(spec, device="cpu", ema=True, what="--model")
    model, tokenizer = loaded.model, loaded.tokenizer
    require(getattr(tokenizer, "kind", None) == "zebra" and tokenizer.format == "cells",
            f"--model {spec!r} was not trained on Zebra puzzles in the cells format; pass a Zebra MDLM run.")
    puzzles = read_puzzle_file(path)[:limit]
    instances = tokenizer.instances(puzzles, tokenizer.max_clues(loaded.seq_len), f"a row of --model {spec!r}")
    x = torch.stack([cells_tokens(i) for i in instances])
    context, slots, values = len(instances[0].context), instances[0].slots, instances[0].values
    singles = [answer_scores(model, x, torch.eye(slots, dtype=torch.bool)[j].expand(len(x), -1), context, values)
               for j in range(slots)]
    everything = torch.ones(len(x), slots, dtype=torch.bool)
    own = answer_scores(model, x, everything, context, values)
    other = answer_scores(model, torch.cat([x[:, :context].roll(1, 0), x[:, context:]], 1), everything, context, values)
    return dict(model=spec, puzzles=len(x), one_masked_acc=sum(a for a, _ in singles) / slots,
                one_masked_nll=sum(n for _, n in singles) / slots, own_clues_acc=own[0], own_clues_nll=own[1],
                other_clues_acc=other[0], other_clues_nll=other[1], chance_acc=1 / values, chance_nll=math.log(values))


def markdown(rows: list[dict], meta: dict) -> str:
    lines = ["# Do the Zebra models read the clues?", "",
             "Per-cell argmax accuracy and NLL (nats) of the answer cells: one cell masked with the rest given "
             "(decided by the permutation structure alone), and the whole answer masked under the puzzle's own "
             "clues and under another puzzle's. Made by `benchmarks/zebra_clue_probe.py`.", "",
             *markdown_table(COLUMNS, rows)]
    machine = meta["machine"]
    lines += ["", f"Command: `{meta['command']}` at {meta['git_revision']} on {machine['cpu']} ({machine['cores']} "
                  f"cores, torch {machine['torch']}); wall time {meta['wall_time_s']} s.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="a Zebra MDLM (cells format) spec or run")
    parser.add_argument("--puzzles", required=True, help="Zebra puzzle file, one per line")
    parser.add_argument("--max-puzzles", type=int, default=1000, help="first N puzzles (default 1000)")
    parser.add_argument("--out", help="writes OUT.json and OUT.md (default benchmarks/results/zebra_clue_probe)")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = [probe(spec, args.puzzles, args.max_puzzles) for spec in args.model]
    meta = provenance(started)
    out = Path(args.out) if args.out else RESULTS / NAME
    write_results(out.name, dict(meta=meta, rows=rows), markdown(rows, meta), out.parent)
    print(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    run_main(main, NAME)
