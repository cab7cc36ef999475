"""Glauber diffusion training (Algorithm 1 of the Glauber-dynamics paper, made exact):
`edlm train RECIPE train.objective=glauber [train.init_from=UL2_MODEL] train.glauber_rounds=N`.

The trained model is the UL2-style `edlm.models.ul2.UL2Model` (kind "glauber"), usually initialised
from a model pre-trained on the mixture of denoisers (`train.objective=ul2`); its zero-initialised time
input makes it that model at every t at the start. The frozen copy F that drives the forward chain is the
run's EMA model (`train.ema`; the loop hands it over through `use_ema`), so F follows the trained
weights as their moving average, and, since the EMA is checkpointed, a resumed run repeats the
uninterrupted one exactly. F is called in infill mode at t = 1 (`edlm.sampling.glauber_diffusion`).

One optimizer step, for the global batch x0 ~ data (G rows), T = N * L, K = `train.glauber_snapshots`:

- `prepare` (all randomness, for the global batch): the chain's uniforms Float64[G, T] (one float64
  inverse-CDF draw per forward step) and K distinct snapshot steps per row, uniform over 1..T.
- `loss`: the forward chain of these rows with F (fixed permutations `fixed_order(N, L)`), batched over
  the rows, run up to the micro-batch's last snapshot, one F call per step. At a snapshot s of a row the
  input is x_{s-1} with site j = j_s masked (which is also x_s with it masked) and t = s / T; the loss
  is the mean over the b * K snapshots of
  - "exact" (`train.glauber_loss=exact`, default): the cross-entropy of the pre-step token x_{s-1, j}.
    Its minimiser is p_{s-1}(x_j | x_{-j}), the exact reverse step (docs/pitfalls.md, item 11), and
    T times it is the model's part of the likelihood bound (`edlm.glauber_diffusion.bound`);
  - "seed" (`train.glauber_loss=seed`): the score entropy as the Glauber-dynamics paper describes it.
    With the model's ratios `s_y = q(y | x_{-j}) / q(x_{s,j} | x_{-j})` (q: its softmax at site j) and
    the last forward step's ratios `r_y = F(y | x_{-j}) / F(x_{s,j} | x_{-j})` as targets, the sum over
    y != x_{s,j} of `s_y - r_y log s_y + r_y (log r_y - 1)` (>= 0, and 0 iff s = r). Its minimiser is
    q = F(. | x_{-j}), the frozen model's own conditional: there is nothing to learn
    (tests/test_glauber_training.py shows it on an enumerable toy). It is here to be compared, not used.

The loss is in nats per reverse step (one predicted token each), so `val_bits_per_token` reads as bits
per predicted token; the metric is "glauber_ce" or "glauber_se".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edlm.errors import require
from edlm.sampling.glauber_diffusion import check_permutations, fixed_order, forward_steps
from edlm.train.nce_objective import freeze
from edlm.train.objectives import init_weights_from, register_objective


def exact_reverse_loss(logits: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy Float[] of the pre-step tokens before: Long[M] under logits Float[M, V]."""
    return F.cross_entropy(logits.float(), before)


def seed_score_entropy(logits: torch.Tensor, log_f: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Mean score entropy Float[] (module doc) of the model's ratios against the last forward step's.

    logits: Float[M, V] the model's at site j; log_f: Float64[M, V] F's log-conditional at that step;
    after: Long[M] the post-step tokens x_{s,j}. Computed in float64."""
    log_q = torch.log_softmax(logits.double(), dim=-1)
    log_s = log_q - log_q.gather(1, after[:, None])
    log_r = log_f - log_f.gather(1, after[:, None])
    r = log_r.exp()
    terms = log_s.exp() - r * log_s + r * (log_r - 1)
    others = torch.ones_like(terms, dtype=torch.bool).scatter_(1, after[:, None], False)
    return (terms * others).sum(1).mean().float()


@register_objective("glauber")
class GlauberObjective:
    """Glauber diffusion (see the module doc). `frozen=` fixes F (tests, callers holding a model); without
    it F is the training loop's EMA model, handed over by `use_ema`."""

    def __init__(self, cfg, model: nn.Module, device: torch.device, frozen=None) -> None:
        tc = cfg.train
        self.permutations = fixed_order(tc.glauber_rounds, cfg.data.seq_len)
        self.total = self.permutations.numel()
        require(tc.glauber_snapshots <= self.total,
                f"train.glauber_snapshots={tc.glauber_snapshots} exceeds the chain's T = train.glauber_rounds x "
                f"data.seq_len = {self.total} steps; lower it or raise train.glauber_rounds.")
        self.snapshots = tc.glauber_snapshots
        self.kind = tc.glauber_loss
        self.metric = "glauber_ce" if self.kind == "exact" else "glauber_se"
        if tc.init_from:
            init_weights_from(model, tc.init_from)
        self.fixed = frozen is not None
        self.frozen = freeze(frozen) if frozen is not None else None

    def use_ema(self, ema_model: nn.Module) -> None:
        """Make the training loop's EMA model F (unless `frozen=` fixed it)."""
        if not self.fixed:
            self.frozen = ema_model

    def set_permutations(self, permutations: torch.Tensor) -> None:
        """Use other permutations Long[N, L] (tests); training and sampling use `fixed_order`."""
        self.permutations = check_permutations(permutations, self.permutations.shape[1])
        self.total = self.permutations.numel()

    def prepare(self, x0: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """x0: Long[G, L] -> {"u": Float64[G, T] chain uniforms, "times": Long[G, K] snapshot steps in 1..T}."""
        g = x0.shape[0]
        noise_device = generator.device if generator is not None else x0.device
        u = torch.rand((g, self.total), generator=generator, dtype=torch.float64, device=noise_device)
        order = torch.rand((g, self.total), generator=generator, device=noise_device).argsort(dim=1)
        return {"u": u.to(x0.device), "times": (order[:, :self.snapshots] + 1).to(x0.device)}

    def snapshots_of(self, x0: torch.Tensor, u: torch.Tensor, times: torch.Tensor):
        """Run F's chain on x0 Long[b, L] up to the last snapshot; return, for the M = b * K snapshots in step
        order, a dict of their rows, steps, sites (Long[M] each), masked inputs Long[M, L], pre- and post-step
        tokens (Long[M] each) and F's log-conditionals Float64[M, V]."""
        require(self.frozen is not None, "the glauber objective has no frozen model; pass frozen= or let the "
                "training loop hand it the EMA model (use_ema).")
        if isinstance(self.frozen, nn.Module) and self.frozen.training:
            self.frozen.eval()
        parts = {key: [] for key in ("row", "masked", "s", "site", "before", "after", "log_f")}
        last = int(times.max())
        for step in forward_steps(self.frozen, x0, self.permutations, u[:, :last]):
            rows = (times == step.s).any(1).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            parts["row"].append(rows)
            parts["masked"].append(step.masked[rows])
            parts["s"].append(torch.full_like(rows, step.s))
            parts["site"].append(torch.full_like(rows, step.site))
            parts["before"].append(step.before[rows])
            parts["after"].append(step.after[rows])
            parts["log_f"].append(step.log_f[rows])
        return {key: torch.cat(value) for key, value in parts.items()}

    def loss(self, model, x0: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scalar float32 mean over the rows' snapshots of the exact or the seed loss (module doc)."""
        snap = self.snapshots_of(x0, batch["u"], batch["times"])
        t = snap["s"].float() / self.total
        logits = model(snap["masked"], t)
        require(tuple(logits.shape) == (*snap["masked"].shape, model.vocab_size),
                f"the model returned shape {tuple(logits.shape)} for input {tuple(snap['masked'].shape)}; "
                "return logits [B, L, V].")
        at_site = logits[torch.arange(logits.shape[0], device=logits.device), snap["site"]]
        if self.kind == "exact":
            return exact_reverse_loss(at_site, snap["before"])
        return seed_score_entropy(at_site, snap["log_f"], snap["after"])
