"""ReMDM remasking (Wang et al. 2025): a reverse step that may also mask again tokens already revealed.

Schedule alpha_t = 1 - t (the log-linear schedule's eps cancels in MDLM's step and is taken as 0
here). With remasking probability sigma for a revealed free position, ReMDM's step from t to s < t is,
per position,

    revealed:  keep with prob 1 - sigma, mask again with prob sigma
    masked:    reveal (a draw of x0) with prob (alpha_s - (1 - sigma) alpha_t) / (1 - alpha_t)
                 = 1 / (steps - j) + sigma (1 - t) / t          on edlm's grid t_j = 1 - j / steps,

so each position's marginal q(z_s | x) = alpha_s for every sigma in [0, sigma_max],
sigma_max = min(1, (1 - alpha_s) / alpha_t) = min(1, s / (1 - t)) (sigma_max = 1 at t = 1, and
0 at the last step, which still reveals every mask). The schedules of sigma:

    cap:      sigma = min(eta, sigma_max)                    eta in [0, 1]
    rescale:  sigma = eta * sigma_max                        eta in [0, 1]
    conf:     sigma_l = eta * sigma_max * w_l,  w = softmax over revealed free positions of -psi,
              psi_l the probability the denoiser gave the token when position l was revealed;
              masked positions use sigma = 0 (ReMDM's conf is eta = 1).

`window = (t_on, t_off)` switches remasking on only at steps whose start time t has
t_off < t <= t_on (ReMDM's "loop" strategy remasks inside such a window; ReMDM also holds alpha
fixed there, which edlm does not). eta = 0, or a step outside the window, is MDLM's step exactly
and draws no random numbers for remasking. cap and rescale with a sampler that draws x0 from the
exact joint posterior keep the data distribution; conf makes the remasked positions depend on the
revealed values and is a heuristic.
"""

from __future__ import annotations

import torch

REMASKING = (None, "cap", "rescale", "conf")
TOL = 1e-12  # grid-point tolerance for the window bounds


def sigma_max(t: float, s: float) -> float:
    """min(1, (1 - alpha_s) / alpha_t) with alpha = 1 - time (1 at t = 1)."""
    return 1.0 if t >= 1.0 else min(1.0, s / (1.0 - t))


def is_on(kind: str | None, eta: float, window: tuple[float, float], t: float, s: float) -> bool:
    """Whether the step from t to s remasks anything."""
    t_on, t_off = window
    return kind is not None and eta > 0 and t_off + TOL < t <= t_on + TOL and sigma_max(t, s) > 0


def remask_probs(kind: str, eta: float, t: float, s: float, revealed: torch.Tensor,
                 psi: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(sigma Float64[B, L], reveal_bonus) of one remasking step from t to s.

    revealed: Bool[B, L], the free positions revealed at t (the only ones that may be masked again);
    psi: Float64[B, L] probabilities of the revealed tokens (used by "conf"). sigma is 0 elsewhere.
    reveal_bonus: the scalar sigma (1 - t) / t added to every masked position's reveal probability
    (0 for conf, whose masked positions have sigma = 0).
    """
    top = sigma_max(t, s)
    if kind == "conf":
        logits = torch.where(revealed, -psi, torch.full_like(psi, float("-inf")))
        w = torch.softmax(logits, dim=1).nan_to_num(0.0)  # a row with nothing revealed: all zero
        return eta * top * w, 0.0
    sigma = min(eta, top) if kind == "cap" else eta * top
    return torch.where(revealed, sigma, 0.0).double(), sigma * (1.0 - t) / t
