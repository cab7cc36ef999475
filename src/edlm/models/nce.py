"""The NCE energy of EDLM (section 4.2.2 of the EDLM paper): a bidirectional transformer `E_phi(x0, xt, t)` trained by
conditional noise-contrastive estimation against the frozen denoiser (`train.objective=nce`).

Residual form. The denoising kernel the sampler and the likelihood estimators use is

    p(x0 | xt) ∝ mu_theta(x0 | xt) exp(-E_phi(x0, xt, t)),

so `E_phi` is a *residual* correction on top of the denoiser's factorised proposal mu_theta; unlike
`AREnergy`, which builds the residual `-log p_AR + log mu` from a full model of the data, the NCE
energy is the residual itself and ignores `proposal_logp`. At the optimum of the NCE loss (positives
x0 ~ data, negatives x0 ~ mu_theta(.|xt), classes weighted equally) it is
`E*(x0, xt, t) = log mu_theta(x0 | xt) - log q(x0 | xt)`, whose partition function
`E_{x0 ~ mu}[exp(-E*)]` is 1 for every xt.

Architecture. The backbone is a `Transformer` with the denoiser's `ModelConfig` (and, by
`from_denoiser`, its weights). It reads the pair (x0, xt) as one sequence of L inputs:

    h_i = embed(x0_i) + xt_embed[xt_i == mask]

with `xt_embed` a learned 2-row table (visible / masked), initialised to zero so the initial network
is the denoiser's backbone run on the clean x0. Every pair the energy is trained or used on is
*consistent* (x0 agrees with xt wherever xt is unmasked: positives are data, negatives and sampler
candidates come from the SUBS proposal, which carries visible tokens over), so the mask pattern is
all the information xt adds to x0. Concatenating [xt; x0] along the sequence would carry the same
information at twice the length: 4x the attention cost, and `max_seq_len >= 2L`, which the text8 and
OWT recipes (L = max_seq_len) do not have. t enters through adaLN when `model.time_conditioning` is
on (as in the denoiser; otherwise t = 0 is fed). The last hidden states go through the backbone's
final (adaLN-modulated) norm, are mean-pooled over the L positions and projected by a scalar head
`Linear(d_model, 1)` initialised to zero, so the initial energy is exactly 0 and EDLM-NCE starts as
MDLM. The denoiser's vocabulary projection is dropped (the energy has no use for it). The head runs
in float32 outside autocast; energies are returned in float64 (docs/pitfalls.md, item 5).

The module is an `nn.Module` that satisfies the Energy protocol (docs/contracts.md, Energy):
`energy(x0, xt, t, proposal_logp=None) -> Float64[B]`; gradients flow when called with grad enabled
(training), and `edlm.sample` / `edlm.nelbo` call it under `torch.no_grad`.
"""

from __future__ import annotations

import torch
from torch import nn

from edlm.errors import require
from edlm.models.config import ModelConfig, config_differences
from edlm.models.lms import BackboneModel

class NCEEnergy(BackboneModel):
    """Bidirectional residual energy `E_phi(x0, xt, t)` on the shared backbone (see the module doc).

    Parameters: `backbone.*` (the denoiser's names, minus `backbone.output.linear`), `xt_embed.weight`
    [2, d_model] and `head.weight` [1, d_model], `head.bias` [1].
    """

    def __init__(self, config: ModelConfig) -> None:
        require(not config.causal, "an NCE energy is bidirectional; set model.causal=false (the denoiser's config).")
        super().__init__(config)
        self.backbone.output.linear = nn.Identity()  # final norm (+ adaLN) only: features, not vocab logits
        self.xt_embed = nn.Embedding(2, config.d_model)
        self.head = nn.Linear(config.d_model, 1)
        nn.init.zeros_(self.xt_embed.weight)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def mask_id(self) -> int:
        return self.config.vocab_size

    # ----------------------------------------------------------------------------------------------
    # construction

    @classmethod
    def from_denoiser(cls, denoiser) -> "NCEEnergy":
        """A new energy (zero head, so E = 0) whose backbone is a copy of an edlm MDLM denoiser's
        (a `MaskedDiffusionLM`), on the denoiser's device. Train mode, like any new nn.Module."""
        require(hasattr(denoiser, "backbone") and isinstance(getattr(denoiser, "config", None), ModelConfig),
                f"{type(denoiser).__name__} is not an edlm MaskedDiffusionLM; the NCE energy copies an edlm "
                "denoiser's backbone, so pass one (edlm.load on an mdlm model).")
        require(not hasattr(denoiser, "token_logprobs") and not denoiser.config.causal,
                f"{type(denoiser).__name__} is a causal LM; initialise the NCE energy from an mdlm denoiser.")
        energy = cls(denoiser.config)
        energy.copy_denoiser_weights(denoiser)
        param = next(denoiser.parameters(), None)
        return energy.to(param.device) if param is not None else energy

    def copy_denoiser_weights(self, denoiser) -> None:
        """Overwrite the backbone with the denoiser's weights (configs must be equal); head and xt_embed
        are reset to zero, so afterwards E = 0."""
        diffs = config_differences(denoiser.config, self.config)
        require(denoiser.config == self.config, f"the denoiser's model config differs from the energy's in {diffs}; "
                "build the energy with the denoiser's model config.")
        state = {k: v for k, v in denoiser.backbone.state_dict().items() if not k.startswith("output.linear.")}
        with torch.no_grad():
            self.backbone.load_state_dict(state, strict=True)
            nn.init.zeros_(self.xt_embed.weight)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    # ----------------------------------------------------------------------------------------------
    # the energy

    def forward(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor | None = None,
                proposal_logp: torch.Tensor | None = None) -> torch.Tensor:
        """x0, xt: Long[B, L] (mask id V in xt); t: Float[B] -> energies Float64[B] in nats (lower =
        more probable), on the device of `proposal_logp` when given, else the model's.

        `proposal_logp` (the Energy protocol's 4th argument) is not used: E_phi is already the
        residual on top of the proposal.
        """
        require(x0.shape == xt.shape and x0.dim() == 2,
                f"x0 {tuple(x0.shape)} and xt {tuple(xt.shape)} must be LongTensors of the same shape [B, L].")
        device = self.head.weight.device
        x0, xt = x0.to(device), xt.to(device)
        b, n = x0.shape
        bb = self.backbone
        require(n <= self.config.max_seq_len,
                f"sequence length {n} exceeds the energy's model.max_seq_len={self.config.max_seq_len}; "
                "use shorter sequences or an energy built for longer ones.")
        if t is not None:
            t = torch.as_tensor(t, dtype=torch.float32, device=device).expand(b)
        c = bb.condition(t, b, device)
        cos, sin = bb.rotary(torch.arange(n, device=device))
        h = bb.embed(x0) + self.xt_embed((xt == self.mask_id).long())
        for i, block in enumerate(bb.blocks):  # as Transformer.features, with the pair embedding above
            h = block(h, c, cos, sin, None, i)
        h = bb.output(h, c)  # final norm and adaLN modulation (its vocab projection is removed)
        with torch.autocast(device_type=device.type, enabled=False):
            energy = self.head(h.float().mean(dim=1)).squeeze(-1)
        energy = energy.double()
        return energy if proposal_logp is None else energy.to(proposal_logp.device)

    def extra_repr(self) -> str:
        c = self.config
        return (f"vocab_size={c.vocab_size}, n_layers={c.n_layers}, d_model={c.d_model}, "
                f"time_conditioning={c.time_conditioning}")
