"""Enumerable toy distributions with exact models, for tests with known answers.

With V symbols and length L there are V**L sequences, so every likelihood, posterior marginal and
conditional is computed exactly by enumeration. The exact models satisfy the public protocols
(DESIGN.md §3), so they plug into every sampler and estimator like a trained network would.
"""

from __future__ import annotations

import itertools

import torch


class ToyDistribution:
    """A distribution over all V**L sequences: sequences Long[N, L], probs Float64[N] (N = V**L)."""

    def __init__(self, vocab_size: int, seq_len: int, probs: torch.Tensor) -> None:
        self.vocab_size = vocab_size
        self.seq_len = seq_len
        self.sequences = torch.tensor(list(itertools.product(range(vocab_size), repeat=seq_len)), dtype=torch.long)
        self.probs = (probs / probs.sum()).double()

    @classmethod
    def random(cls, vocab_size: int, seq_len: int, generator: torch.Generator, temperature: float = 1.0):
        """A random distribution with log-probabilities ~ N(0, temperature^2)."""
        logits = torch.randn(vocab_size ** seq_len, generator=generator, dtype=torch.float64) * temperature
        return cls(vocab_size, seq_len, logits.softmax(0))

    def index(self, x: torch.Tensor) -> torch.Tensor:
        """Row index into `sequences` of each sequence in x: Long[B, L] -> Long[B]."""
        powers = self.vocab_size ** torch.arange(self.seq_len - 1, -1, -1, device=x.device)
        return (x * powers).sum(-1)

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """Exact -log p(x) in nats: Float64[B]."""
        return -self.probs[self.index(x.cpu())].log()

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.sequences[torch.multinomial(self.probs, n, replacement=True, generator=generator)]

    def empirical(self, x: torch.Tensor) -> torch.Tensor:
        """Empirical distribution Float64[N] of the sequences in x."""
        counts = torch.bincount(self.index(x.cpu()), minlength=len(self.probs)).double()
        return counts / counts.sum()

    def tv(self, x: torch.Tensor, target: torch.Tensor | None = None) -> float:
        """Total variation between the empirical distribution of x and `target` (default: self.probs)."""
        target = self.probs if target is None else target
        return 0.5 * float((self.empirical(x) - target).abs().sum())


class ExactDenoiser:
    """Denoiser protocol with the exact posterior marginals p(x0^i | xt) of a ToyDistribution."""

    time_conditioned = False

    def __init__(self, dist: ToyDistribution) -> None:
        self.dist = dist
        self.vocab_size = dist.vocab_size
        self.calls = 0

    def __call__(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """xt: Long[B, L] -> Float[B, L, V] log-marginals (used as logits)."""
        self.calls += 1
        seqs = self.dist.sequences
        free = xt[:, None, :] == self.vocab_size
        consistent = ((seqs[None] == xt[:, None, :]) | free).all(-1)  # [B, N]
        weights = consistent.double() * self.dist.probs[None]
        onehot = torch.nn.functional.one_hot(seqs, self.vocab_size).double()  # [N, L, V]
        marginals = torch.einsum("bn,nlv->blv", weights, onehot) / weights.sum(-1)[:, None, None]
        return marginals.log().float()


class ExactCausalLM:
    """Causal LM protocol with the exact conditionals p(x_i | x_<i) of a ToyDistribution."""

    def __init__(self, dist: ToyDistribution) -> None:
        self.dist = dist
        self.vocab_size = dist.vocab_size
        self.calls = 0

    def token_logprobs(self, x: torch.Tensor) -> torch.Tensor:
        """x: Long[B, L] -> Float[B, L] exact log p(x_i | x_<i)."""
        self.calls += 1
        seqs, probs = self.dist.sequences, self.dist.probs
        match = (seqs[None] == x[:, None, :]).cumprod(-1).double()  # [B, N, L]: prefix x_<=i matches
        prefix_mass = torch.einsum("bnl,n->bl", match, probs)  # P(x_<=i)
        previous = torch.cat([torch.ones_like(prefix_mass[:, :1]), prefix_mass[:, :-1]], dim=1)
        return (prefix_mass.log() - previous.log()).float()
