"""EDLM-NCE fine-tuning (Algorithm 2): `edlm train RECIPE train.objective=nce train.init_from=MDLM_CKPT`.

The trainable model is an `NCEEnergy` with the denoiser's model config, initialised from the
checkpoint's EMA weights (zero head: E = 0, EDLM-NCE starts as MDLM). The same checkpoint, loaded a
second time, is the frozen proposal mu_theta: EMA weights, eval mode (docs/pitfalls.md, item 6), `requires_grad=False`,
held by the objective (not a submodule of the model), so it is never in the optimizer, the EMA, DDP
or the checkpoints. A resumed run loads it again from `train.init_from`.

One optimizer step, for the global batch x0 ~ data (G rows), K = `train.nce_negatives`:

- `prepare` (all randomness, drawn for the global batch from the step's generator): stratified
  times t in (t_lo, 1] with `t_lo = train.nce_t_min` when positive (e.g. `1 - window` to train only
  where the sampler will use the energy), else `train.t_min`; xt ~ q(xt | x0) under `train.schedule`;
  and uniforms u: Float64[G, K, L] that pick the negatives.
- `loss`: the frozen denoiser proposes mu_theta(.|xt); each negative x0^- ~ mu_theta(.|xt) is drawn
  by inverse-CDF sampling in float64 from u (`draw_negatives`); visible tokens are carried over
  (SUBS). Positives and negatives are scored in one batch-major call (rows `b*(K+1) + j`, j = 0 the
  positive: docs/pitfalls.md, item 3) and the loss is `nce_loss`:
  `mean_b [ -logsigmoid(-E(x0_b)) - mean_k logsigmoid(E(x0^-_{b,k})) ]` in float64 (docs/pitfalls.md, item 5).

Averaging (not summing) the K negative terms weighs the two classes equally, so for each (xt, t) the
loss is minimised by `E*(x0, xt, t) = log mu_theta(x0 | xt) - log q(x0 | xt)`, with `Z(xt) = 1`; with
a sum the optimum would shift by the constant log K. The loss is in nats per (positive, K negatives)
group, not per token, so the loop's `val_bits_per_token` is meaningless for this objective; its
initial value is `2 log 2 ≈ 1.386` (E = 0).

Drawing negatives from uniforms (inverse CDF) instead of the exponential race of
`edlm.sampling.draw_candidates`: the race needs K*L*V noise numbers per row, too many to draw for the
global batch on every rank; K*L uniforms per row are cheap to draw in `prepare`, so the negatives do
not depend on the number of processes or accumulation steps, and exact resume holds. Both are exact
categorical samplers in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edlm.diffusion import antithetic_times, forward_mask, make_schedule
from edlm.errors import require
from edlm.models.config import config_differences
from edlm.models.nce import NCEEnergy
from edlm.sampling.categorical import inverse_cdf, rows_per_chunk
from edlm.train.objectives import register_objective


def nce_loss(e_pos: torch.Tensor, e_neg: torch.Tensor) -> torch.Tensor:
    """Conditional NCE loss of energies (lower = more probable), float64 with logsigmoid.

    e_pos: Float[B] energies of the positives (data); e_neg: Float[B, K] of their K negatives (drawn
    from the proposal with the same xt). Returns the scalar float64
    `mean_b [ -logsigmoid(-e_pos_b) - mean_k logsigmoid(e_neg_bk) ]`.
    """
    require(e_neg.dim() == 2 and e_pos.shape == e_neg.shape[:1],
            f"nce_loss needs e_pos [B] and e_neg [B, K], got {tuple(e_pos.shape)} and {tuple(e_neg.shape)}.")
    e_pos, e_neg = e_pos.double(), e_neg.double()
    return (-F.logsigmoid(-e_pos) - F.logsigmoid(e_neg).mean(dim=1)).mean()


def draw_negatives(logits: torch.Tensor, xt: torch.Tensor, mask_id: int, u: torch.Tensor) -> torch.Tensor:
    """Draws from the factorised proposal mu(x0 | xt) = softmax(logits) at masked positions, by inverse
    CDF in float64; visible positions are carried over (SUBS).

    logits: Float[B, L, V]; xt: Long[B, L]; u: Float[B, K, L] uniforms in [0, 1). Returns Long[B, K, L]
    (batch-major). Draw (b, k) at masked position i is the first token v with
    `cdf_v >= (1 - u[b, k, i]) * cdf_{V-1}`, so tokens of probability 0 are never drawn.
    """
    b, length, vocab = logits.shape
    k = u.shape[1]
    require(u.shape == (b, k, length) and xt.shape == (b, length),
            f"draw_negatives got logits {tuple(logits.shape)}, xt {tuple(xt.shape)} and u {tuple(u.shape)}; "
            "u must be [B, K, L] for logits [B, L, V].")
    flat_logits = logits.reshape(-1, vocab)
    flat_u = u.to(device=logits.device, dtype=torch.float64).permute(0, 2, 1).reshape(-1, k)  # [(b, i), K]
    rows = (xt == mask_id).reshape(-1).nonzero().squeeze(1)
    out = xt.reshape(-1, 1).repeat(1, k)  # [(b, i), K]
    step = rows_per_chunk(vocab)  # index_select copies rows: chunk them here too
    for start in range(0, rows.numel(), step):
        r = rows[start:start + step]
        out[r] = inverse_cdf(flat_logits.index_select(0, r), flat_u.index_select(0, r))
    return out.view(b, length, k).permute(0, 2, 1).contiguous()


def load_frozen_denoiser(spec: str, cfg, device) -> nn.Module:
    """The EMA denoiser of the mdlm model that spec `spec` names (`edlm.loading.specs`), checked against
    the run config `cfg` and frozen."""
    from edlm.loading.specs import ROLE_WORDS, load_spec

    require(bool(spec), "train.objective=nce needs train.init_from=MODEL, the mdlm model whose denoiser "
            "proposes the negatives and initialises the energy.")
    loaded = load_spec(spec, device=device, ema=True, what="train.init_from")
    denoiser = loaded.model
    require(loaded.role == "denoiser", f"train.init_from={spec!r} is {ROLE_WORDS[loaded.role]}; NCE needs the mdlm "
            "(masked diffusion) model whose denoiser proposes the negatives.")
    require(denoiser.config.vocab_size == cfg.model.vocab_size,
            f"train.init_from={spec!r} has model.vocab_size={denoiser.config.vocab_size} but this run has "
            f"model.vocab_size={cfg.model.vocab_size}; use the denoiser's vocabulary and tokenizer.")
    theirs = loaded.tokenizer_spec
    require(loaded.config is None or theirs == cfg.data.tokenizer,
            f"train.init_from={spec!r} was trained with data.tokenizer={theirs!r} but this run uses "
            f"{cfg.data.tokenizer!r}; use the denoiser's tokenizer.")
    require(denoiser.config == cfg.model,
            f"train.init_from={spec!r} has a different model config ({config_differences(denoiser.config, cfg.model)}, "
            "checkpoint vs run); the energy copies the denoiser's weights, so pass the same model.* settings.")
    return freeze(denoiser)


def freeze(denoiser):
    """Eval mode and requires_grad=False on every parameter (where the denoiser is an nn.Module)."""
    if isinstance(denoiser, nn.Module):
        denoiser.eval().requires_grad_(False)
    return denoiser


@register_objective("nce")
class NCEObjective:
    """EDLM-NCE (see the module doc). `denoiser=` replaces loading `train.init_from` (for tests and for
    callers that hold a denoiser already); the training loop never passes it."""

    metric = "nce"

    def __init__(self, cfg, model: nn.Module, device: torch.device, denoiser=None) -> None:
        tc = cfg.train  # nce_negatives >= 1 and nce_t_min in [0, 1) are checked with the config (edlm.config)
        self.schedule = make_schedule(tc.schedule, tc.eps)
        self.t_min = tc.nce_t_min if tc.nce_t_min > 0 else tc.t_min
        self.negatives = tc.nce_negatives
        if denoiser is None:
            denoiser = load_frozen_denoiser(tc.init_from, cfg, device)
            if isinstance(model, NCEEnergy):
                model.copy_denoiser_weights(denoiser)
        self.denoiser = freeze(denoiser)
        self.mask_id = denoiser.vocab_size
        energy_vocab = getattr(model, "vocab_size", None)
        require(energy_vocab is None or energy_vocab == self.mask_id,
                f"the energy has vocab_size={energy_vocab} but the denoiser has vocab_size={self.mask_id}; "
                "use one vocabulary for both.")

    def prepare(self, x0: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """x0: Long[G, L] -> {"t": Float[G], "xt": Long[G, L], "u": Float64[G, K, L]}."""
        g, length = x0.shape
        t = antithetic_times(g, generator, device=x0.device, t_min=self.t_min)
        xt = forward_mask(x0, self.schedule.alpha(t), self.mask_id, generator)
        noise_device = generator.device if generator is not None else x0.device
        u = torch.rand((g, self.negatives, length), generator=generator, dtype=torch.float64, device=noise_device)
        return {"t": t, "xt": xt, "u": u.to(x0.device)}

    @torch.no_grad()
    def propose(self, xt: torch.Tensor, t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Negatives Long[B, K, L] from the frozen denoiser at xt (see `draw_negatives`)."""
        if isinstance(self.denoiser, nn.Module) and self.denoiser.training:
            self.denoiser.eval()  # docs/pitfalls.md, item 6, whatever the caller did to it
        logits = self.denoiser(xt, t)
        require(tuple(logits.shape) == (*xt.shape, self.mask_id),
                f"the denoiser returned shape {tuple(logits.shape)} for input {tuple(xt.shape)}; "
                f"return logits [B, L, V] with V = {self.mask_id}.")
        return draw_negatives(logits, xt, self.mask_id, u)

    def loss(self, model, x0: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scalar float32 NCE loss of these rows (see `nce_loss`)."""
        t, xt, u = batch["t"], batch["xt"], batch["u"]
        b, length = x0.shape
        group = u.shape[1] + 1
        candidates = torch.cat([x0[:, None], self.propose(xt, t, u)], dim=1)  # [b, 1 + K, L], positive first
        energies = model(candidates.reshape(b * group, length), xt.repeat_interleave(group, dim=0),
                         t.repeat_interleave(group))
        require(tuple(energies.shape) == (b * group,),
                f"the energy returned shape {tuple(energies.shape)} for {b * group} sequences; "
                "return one value per sequence.")
        energies = energies.view(b, group)
        return nce_loss(energies[:, 0], energies[:, 1:]).float()
