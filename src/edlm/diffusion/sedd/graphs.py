"""The graphs of score-entropy discrete diffusion (SEDD): the forward rate matrix and its closed forms.

A graph is a rate matrix `R: Float64[N, N]` over N states: `R[x, y] >= 0` is the rate of `x -> y`
for `y != x`, rows sum to 0. The forward process with total noise `sigma` (`sigma_bar(t)`, a noise of
`edlm.diffusion.sedd.noise`) moves every position independently with the transition matrix
`P_sigma = exp(sigma R)`, `P_sigma[x, y]` = probability that a token `x` is `y` after total noise sigma.

- `absorb` (N = V + 1, absorbing id m = V, as MDLM's mask): `R[x, m] = 1`, `R[x, x] = -1` for data x,
  the absorbing state never leaves. `P[x, x] = e^-sigma`, `P[x, m] = 1 - e^-sigma`, `P[m, m] = 1`.
- `uniform` (N = V): `R = 11^T / N - I`. `P = e^-sigma I + (1 - e^-sigma) 11^T / N`.

Every quantity below is closed form in float64, written with expm1 / log1p / logaddexp so that it
holds for sigma from about 1e-300 to infinity; `tests/test_sedd.py` checks each against
`torch.linalg.matrix_exp`. Shapes: states `x: Long[...]`; `sigma` broadcastable to `x.shape` (one value
per sequence is `Float[B, 1]` against `Long[B, L]`); results `Float64[..., N]` over the N states y.
"""

from __future__ import annotations

import math

import torch

from edlm.diffusion.process import forward_mask
from edlm.errors import require


def _per_state(sigma, x: torch.Tensor) -> torch.Tensor:
    """sigma as Float64[..., 1] against states x: Long[...] (for broadcasting over the N columns)."""
    return torch.as_tensor(sigma, dtype=torch.float64, device=x.device).expand(x.shape)[..., None]


def _column(x: torch.Tensor, n: int, fill: float) -> torch.Tensor:
    return torch.full((*x.shape, n), fill, dtype=torch.float64, device=x.device)


class Graph:
    """What both graphs share. Subclasses give the closed forms (`log_transition`, `rate_into`,
    `staggered`, `transition_into`, `prior_kl`) and the draws (`limit`, `sample_transition`)."""

    name: str
    absorbing: bool

    def __init__(self, vocab_size: int, num_states: int) -> None:
        self.vocab_size = vocab_size
        self.num_states = num_states

    def transition(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """Row x of P_sigma: Float64[..., N], the distribution of a token x after total noise sigma."""
        return self.log_transition(x, sigma).exp()

    def log_ratio(self, xt: torch.Tensor, x0: torch.Tensor, sigma) -> torch.Tensor:
        """log P_sigma[x0, y] / P_sigma[x0, xt] for every y: Float64[..., N] (-inf where P_sigma[x0, y] = 0).

        These are the ratios the denoising score entropy regresses the model's scores onto: the concrete
        score of the forward process conditioned on x0."""
        log_p = self.log_transition(x0, sigma)
        return log_p - log_p.gather(-1, xt[..., None])

    def rate_matrix(self) -> torch.Tensor:
        """R: Float64[N, N], R[x, y] the rate of x -> y (rows sum to 0)."""
        eye = torch.eye(self.num_states, dtype=torch.float64)
        states = torch.arange(self.num_states)
        into = torch.stack([self.rate_into(states[y]) for y in range(self.num_states)], dim=1)  # into[x, y] = R[x, y]
        return into - eye * into.sum(dim=1, keepdim=True)


class AbsorbingGraph(Graph):
    """`absorb`: every data token jumps to the absorbing id V at rate 1 (N = V + 1)."""

    name = "absorb"
    absorbing = True

    def __init__(self, vocab_size: int) -> None:
        super().__init__(vocab_size, vocab_size + 1)
        self.mask_id = vocab_size

    def log_transition(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """log P_sigma[x, :]: -sigma at x and log(1 - e^-sigma) at m for data x; 0 at m for x = m."""
        s = _per_state(sigma, x)
        out = _column(x, self.num_states, float("-inf"))
        out[..., self.mask_id] = torch.log(-torch.expm1(-s[..., 0]))
        is_mask = (x == self.mask_id)[..., None]
        return out.scatter(-1, x[..., None], torch.where(is_mask, torch.zeros_like(s), -s))

    def rate_into(self, x: torch.Tensor) -> torch.Tensor:
        """R[y, x] for y != x (0 at y = x): Float64[..., N]. Only the absorbing state is entered: 1 from
        every data id."""
        out = _column(x, self.num_states, 0.0)
        out[..., :self.vocab_size] = (x == self.mask_id)[..., None].double()
        return out

    def transition_into(self, x: torch.Tensor, dsigma) -> torch.Tensor:
        """Column x of P_dsigma, P_dsigma[y, x] for every y: Float64[..., N]."""
        s = _per_state(dsigma, x)
        is_mask = (x == self.mask_id)[..., None]
        out = torch.where(is_mask, -torch.expm1(-s), torch.zeros_like(s)).expand(*x.shape, self.num_states).clone()
        return out.scatter(-1, x[..., None], torch.where(is_mask, torch.ones_like(s), torch.exp(-s)))

    def staggered(self, score: torch.Tensor, dsigma) -> torch.Tensor:
        """sum_z score_z exp(-dsigma R)[z, y]: Float64[..., N] from scores Float64[..., N].

        exp(-dsigma R)[z, z] = e^dsigma and [z, m] = -(e^dsigma - 1) for data z, [m, m] = 1."""
        s = torch.as_tensor(dsigma, dtype=torch.float64, device=score.device).expand(score.shape[:-1])
        out = score * s.exp()[..., None]
        data = score[..., :self.vocab_size].sum(dim=-1)
        out[..., self.mask_id] = score[..., self.mask_id] - torch.expm1(s) * data
        return out

    def prior_kl(self, sigma: float) -> float:
        """KL(P_sigma[x0, :] || delta_m) in nats per token: 0 at sigma = inf, infinite otherwise."""
        return 0.0 if math.isinf(sigma) else math.inf

    def limit(self, shape, generator: torch.Generator | None, device) -> torch.Tensor:
        """The state at the end of the forward process: Long[shape], every position absorbed."""
        return torch.full(shape, self.mask_id, dtype=torch.long, device=device)

    def sample_transition(self, x0: torch.Tensor, sigma: torch.Tensor,
                          generator: torch.Generator | None = None) -> torch.Tensor:
        """xt ~ P_sigma[x0, :] per position: x0 Long[B, L], sigma Float[B] (MDLM's forward_mask with
        alpha = e^-sigma, the same float32 uniforms)."""
        return forward_mask(x0, torch.exp(-sigma.double()), self.mask_id, generator)


class UniformGraph(Graph):
    """`uniform`: every token jumps to a uniformly drawn id (itself included) at rate 1 (N = V)."""

    name = "uniform"
    absorbing = False

    def __init__(self, vocab_size: int) -> None:
        super().__init__(vocab_size, vocab_size)

    def log_transition(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """log P_sigma[x, :]: log((1 - e^-sigma) / N) off x, log(e^-sigma + (1 - e^-sigma) / N) at x."""
        s = _per_state(sigma, x)
        move = torch.log(-torch.expm1(-s)) - math.log(self.num_states)
        stay = torch.logaddexp(-s, move)
        return move.expand(*x.shape, self.num_states).clone().scatter(-1, x[..., None], stay)

    def rate_into(self, x: torch.Tensor) -> torch.Tensor:
        """R[y, x] = 1/N for y != x, 0 at y = x: Float64[..., N]."""
        out = _column(x, self.num_states, 1.0 / self.num_states)
        return out.scatter(-1, x[..., None], 0.0)

    def transition_into(self, x: torch.Tensor, dsigma) -> torch.Tensor:
        """Column x of P_dsigma (P is symmetric, so the row): Float64[..., N]."""
        return self.transition(x, dsigma)

    def staggered(self, score: torch.Tensor, dsigma) -> torch.Tensor:
        """sum_z score_z exp(-dsigma R)[z, y] = e^dsigma score_y - (e^dsigma - 1) mean_z score_z."""
        s = torch.as_tensor(dsigma, dtype=torch.float64, device=score.device).expand(score.shape[:-1])[..., None]
        return score * s.exp() - torch.expm1(s) * score.mean(dim=-1, keepdim=True)

    def prior_kl(self, sigma: float) -> float:
        """KL(P_sigma[x0, :] || uniform) in nats per token (the same for every x0); 0 at sigma = inf.

        With a = e^-sigma: N P[x0, x0] = 1 + (N - 1) a and N P[x0, y] = 1 - a for y != x0."""
        n, a = self.num_states, math.exp(-sigma)
        stay = a + (1 - a) / n
        return stay * math.log1p((n - 1) * a) + (n - 1) * (1 - a) / n * math.log1p(-a)

    def limit(self, shape, generator: torch.Generator | None, device) -> torch.Tensor:
        """The stationary distribution: Long[shape] of uniform ids (drawn on the generator's device)."""
        noise_device = generator.device if generator is not None else device
        return torch.randint(self.num_states, shape, generator=generator, device=noise_device).to(device)

    def sample_transition(self, x0: torch.Tensor, sigma: torch.Tensor,
                          generator: torch.Generator | None = None) -> torch.Tensor:
        """xt ~ P_sigma[x0, :] per position: with probability 1 - e^-sigma (float32 uniforms, as
        forward_mask) the token is replaced by a uniform id. x0 Long[B, L], sigma Float[B]."""
        noise_device = generator.device if generator is not None else x0.device
        u = torch.rand(x0.shape, generator=generator, device=noise_device).to(x0.device)
        move = u < -torch.expm1(-sigma.double()).reshape(-1, 1).to(x0.device)
        fresh = torch.randint(self.num_states, x0.shape, generator=generator, device=noise_device).to(x0.device)
        return torch.where(move, fresh, x0)


GRAPHS = {"absorb": AbsorbingGraph, "uniform": UniformGraph}


def make_graph(name: str, vocab_size: int) -> Graph:
    """The graph `name` ("absorb" or "uniform") over a data vocabulary of `vocab_size` ids."""
    require(name in GRAPHS, f"graph={name!r} is unknown; use one of {sorted(GRAPHS)}.")
    require(isinstance(vocab_size, int) and vocab_size >= (1 if name == "absorb" else 2),
            f"vocab_size={vocab_size} is too small for the {name} graph; pass the data vocabulary size.")
    return GRAPHS[name](vocab_size)
