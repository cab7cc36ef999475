"""Pre-training the UL2-style model on a mixture of denoisers: `edlm train RECIPE train.objective=ul2`.

The model is `edlm.models.ul2.UL2Model` (kind "ul2"); the run is the starting point of Glauber diffusion
(`train.objective=glauber train.init_from=THIS_RUN`). Each row of the global batch gets one of four
denoisers, uniformly:

| denoiser | mode | what is predicted |
|---|---|---|
| causal | causal | every token from the ones before it (BOS first) |
| prefix-LM | infill | a suffix: positions P..L-1 masked, P uniform in 0..L-1, the prefix read bidirectionally |
| short spans | infill | spans of mean length 3 covering about 15% of the positions (rate 0.15) |
| long spans | infill | spans of mean length 32 (at most L) covering about 50% of the positions (rate 0.5) |

Spans: every position starts a span with probability -log(1 - rate) / mean length, of length
1 + Geometric (mean `mean length`), cut at the end of the sequence; overlapping spans merge. A position is
then covered unless no span reaching it started, about exp(log(1 - rate)) = 1 - rate, so about `rate` of
the positions are masked (a little less near the start of the sequence: 46% for long spans at L = 256). An infill
row with nothing masked gets one uniformly drawn position masked. The loss of a row is its mean NLL over
the tokens it predicts; the step's loss is the mean over rows (nats per predicted token, metric
"ul2_nll"). The infill mode is called without a time (t = None): the time input, which only Glauber
training uses, is frozen here (`requires_grad=False`), so it stays zero and DDP sees no unused
parameters.

`prepare` draws, for the global batch from the step's generator: the denoiser of each row, the prefix
lengths, the span starts and lengths (float64 uniforms Float64[G, L, 2]) and the fallback positions;
so runs resume exactly and do not depend on the number of processes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edlm.train.objectives import init_weights_from, register_objective

DENOISERS = ("causal", "prefix", "short", "long")
SPANS = {"short": (0.15, 3.0), "long": (0.5, 32.0)}  # (corruption rate, mean span length)


def span_mask(u: torch.Tensor, rate: float, mean: float) -> torch.Tensor:
    """Bool[G, L] spans from uniforms u: Float64[G, L, 2] (start flags, lengths); see the module doc."""
    g, length = u.shape[:2]
    mean = min(mean, float(length))
    positions = torch.arange(length, device=u.device)
    starts = u[..., 0] < -math.log1p(-rate) / mean
    if mean > 1:
        spans = 1 + torch.floor(torch.log1p(-u[..., 1]) / torch.log1p(torch.tensor(-1.0 / mean, dtype=torch.float64)))
    else:
        spans = torch.ones_like(u[..., 1])
    ends = torch.where(starts, positions + spans.clamp_max(length).long(), torch.zeros_like(positions))
    return ends.cummax(dim=1).values > positions


@register_objective("ul2")
class UL2Objective:
    """The mixture of denoisers (see the module doc)."""

    metric = "ul2_nll"

    def __init__(self, cfg, model: nn.Module, device: torch.device) -> None:
        self.mask_id = model.mask_id
        if cfg.train.init_from:
            init_weights_from(model, cfg.train.init_from)
        for name in ("time_embed", "time_proj"):
            getattr(model, name).requires_grad_(False)

    def prepare(self, x0: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """x0: Long[G, L] -> {"causal": Bool[G] rows of the causal denoiser, "xt": Long[G, L] infill inputs}."""
        g, length = x0.shape
        kind = torch.randint(len(DENOISERS), (g,), generator=generator)
        prefix = torch.randint(length, (g,), generator=generator)
        u = torch.rand((g, length, 2), generator=generator, dtype=torch.float64)
        fallback = torch.randint(length, (g,), generator=generator)
        positions = torch.arange(length)
        masks = {"causal": torch.zeros((g, length), dtype=torch.bool), "prefix": positions >= prefix[:, None],
                 **{name: span_mask(u, *SPANS[name]) for name in SPANS}}
        mask = torch.stack([masks[name] for name in DENOISERS])[kind, torch.arange(g)]
        causal = kind == DENOISERS.index("causal")
        empty = ~mask.any(1) & ~causal
        mask[empty, fallback[empty]] = True
        mask, causal = mask.to(x0.device), causal.to(x0.device)
        return {"causal": causal, "xt": torch.where(mask, torch.full_like(x0, self.mask_id), x0)}

    def loss(self, model, x0: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scalar float32: mean over rows of each row's mean NLL over the tokens it predicts."""
        causal, xt = batch["causal"], batch["xt"]
        per_row = torch.zeros(x0.shape[0], device=x0.device)
        if bool(causal.any()):
            per_row[causal] = -model.token_logprobs(x0[causal]).float().mean(1)
        infill = ~causal
        if bool(infill.any()):
            logits = model(xt[infill], None).float()
            nll = F.cross_entropy(logits.transpose(1, 2), x0[infill], reduction="none")  # [n, L]
            masked = (xt[infill] == self.mask_id).float()
            per_row[infill] = (nll * masked).sum(1) / masked.sum(1)
        return per_row.mean()
