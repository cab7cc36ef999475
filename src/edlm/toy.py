"""Enumerable toy distributions with exact models, for tests with known answers.

With V symbols and length L there are V**L sequences, so every likelihood, posterior marginal and
conditional is computed exactly by enumeration. The exact models satisfy the public protocols
(docs/contracts.md), so they plug into every sampler and estimator like a trained network would.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

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

    def expected_tv(self, n: int, target: torch.Tensor | None = None) -> float:
        """Exact E[TV] between `target` (default self.probs) and the empirical distribution of n
        i.i.d. draws from it: the sampling-noise floor of `tv` (0.5 * sum_i E|X_i / n - p_i|, X_i ~ Bin(n, p_i))."""
        p = (self.probs if target is None else target.double())[:, None]
        k = torch.arange(n + 1, dtype=torch.float64)[None]
        log_pmf = (torch.lgamma(torch.tensor(n + 1.0)) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
                   + k * p.clamp_min(1e-300).log() + (n - k) * (1 - p).clamp_min(1e-300).log())
        return 0.5 * float((log_pmf.exp() * (k / n - p).abs()).sum())

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
        return self.log_marginals(xt).float()

    def log_marginals(self, xt: torch.Tensor) -> torch.Tensor:
        """xt: Long[B, L] -> Float64[B, L, V] log p(x0^i = v | xt)."""
        seqs = self.dist.sequences
        free = xt[:, None, :] == self.vocab_size
        consistent = ((seqs[None] == xt[:, None, :]) | free).all(-1)  # [B, N]
        weights = consistent.double() * self.dist.probs[None]
        onehot = torch.nn.functional.one_hot(seqs, self.vocab_size).double()  # [N, L, V]
        marginals = torch.einsum("bn,nlv->blv", weights, onehot) / weights.sum(-1)[:, None, None]
        return marginals.log()


def heat_bath_kernel(frozen: ToyDistribution, site: int) -> torch.Tensor:
    """Float64[N, N]: the heat-bath step at `site` of the exact conditionals of `frozen`,
    K[x, y] = frozen(y_site | x_{-site}) when y agrees with x off `site`, else 0 (rows sum to 1)."""
    seqs, probs = frozen.sequences, frozen.probs
    others = [i for i in range(frozen.seq_len) if i != site]
    same_rest = (seqs[:, None, others] == seqs[None, :, others]).all(-1)  # [N, N]
    weights = same_rest.double() * probs[None, :]
    return weights / weights.sum(1, keepdim=True)


def glauber_marginals(data: ToyDistribution, frozen: ToyDistribution, permutations: torch.Tensor) -> torch.Tensor:
    """Float64[T + 1, N]: the marginals p_0 = data, p_s = p_{s-1} K_{j_s} of the Glauber forward chain
    of `frozen`'s heat bath, T = N_rounds * L steps, step s = (n - 1) L + i updating site permutations[n-1, i-1]."""
    marginals = [data.probs]
    for site in permutations.reshape(-1).tolist():
        marginals.append(marginals[-1] @ heat_bath_kernel(frozen, site))
    return torch.stack(marginals)


class ScheduledDenoiser:
    """Denoiser protocol whose logits at time t = s / T are the exact posterior marginals of p_{s-1}
    (row s - 1 of `marginals`: Float64[T + 1, N]) given the visible positions: with one masked site the
    exact reverse conditional of Glauber diffusion's step s. Float64 log-probabilities as logits."""

    time_conditioned = True

    def __init__(self, marginals: torch.Tensor, vocab_size: int, seq_len: int) -> None:
        self.denoisers = [ExactDenoiser(ToyDistribution(vocab_size, seq_len, p)) for p in marginals[:-1]]
        self.steps = marginals.shape[0] - 1
        self.vocab_size = vocab_size
        self.calls = 0

    def __call__(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """xt: Long[B, L], t: Float[B] with t * T an integer in [1, T] -> Float64[B, L, V]."""
        self.calls += 1
        s = (t.double() * self.steps).round().long().cpu()
        out = torch.empty((*xt.shape, self.vocab_size), dtype=torch.float64)
        for value in s.unique().tolist():
            rows = (s == value).nonzero().squeeze(1)
            out[rows] = self.denoisers[value - 1].log_marginals(xt.cpu()[rows])
        return out


class FactorisedDenoiser:
    """A deliberately factorised proposal: fixed per-position logits Float[L, V] that ignore xt
    (default: the distribution's unconditional per-position marginals). Denoiser protocol."""

    time_conditioned = False

    def __init__(self, dist: ToyDistribution, logits: torch.Tensor | None = None) -> None:
        if logits is None:
            onehot = torch.nn.functional.one_hot(dist.sequences, dist.vocab_size).double()  # [N, L, V]
            logits = torch.einsum("n,nlv->lv", dist.probs, onehot).log()
        self.logits = logits.float()
        self.vocab_size = dist.vocab_size
        self.calls = 0

    def __call__(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """xt: Long[B, L] -> Float[B, L, V], the same logits for every input."""
        self.calls += 1
        return self.logits.expand(xt.shape[0], -1, -1).clone()


def graph_rate_matrix(graph: str, vocab_size: int) -> torch.Tensor:
    """The rate matrix R: Float64[N, N] (R[x, y] the rate of x -> y, rows sum to 0) of the SEDD graph
    "absorb" (N = V + 1: every data id jumps to V at rate 1) or "uniform" (N = V: R = 11^T / N - I),
    written out independently of `edlm.diffusion.sedd` so that tests can check its closed forms."""
    if graph == "absorb":
        n = vocab_size + 1
        rates = torch.zeros((n, n), dtype=torch.float64)
        rates[:vocab_size, vocab_size] = 1.0
    else:
        n = vocab_size
        rates = torch.full((n, n), 1.0 / n, dtype=torch.float64)
    rates.fill_diagonal_(0.0)
    return rates - torch.diag(rates.sum(dim=1))


class ExactScoreModel:
    """Score-model protocol with the exact concrete scores of a ToyDistribution noised by a SEDD graph.

    score(xt)[i, y] = p_sigma(xt with position i set to y) / p_sigma(xt), where
    p_sigma(z) = sum_x p(x) prod_i P_sigma[x^i, z^i] and P_sigma = matrix_exp(sigma R) of
    `graph_rate_matrix` (a matrix exponential, not the closed forms under test). `noise` is optional
    (an edlm noise object; without it samplers use the log-linear noise with eps 1e-3). On the
    absorbing graph the scores at absorbed positions are `p(x0^i = y | visible tokens) / (e^sigma - 1)`,
    sigma-free but for that factor, so the model says `time_conditioned = False`.
    """

    def __init__(self, dist: ToyDistribution, graph: str, noise=None) -> None:
        self.dist = dist
        self.graph = graph
        self.vocab_size = dist.vocab_size
        self.rates = graph_rate_matrix(graph, dist.vocab_size)
        self.time_conditioned = graph != "absorb"
        if noise is not None:
            self.noise = noise
        self.calls = 0

    def transitions(self, sigma: torch.Tensor) -> torch.Tensor:
        """P_sigma for each sigma: Float[B] -> Float64[B, N, N]."""
        return torch.linalg.matrix_exp(sigma.double()[:, None, None] * self.rates)

    def marginal(self, sigma: float) -> torch.Tensor:
        """p_sigma over every state sequence: Float64[N**L], states in itertools.product order."""
        n, length = self.rates.shape[0], self.dist.seq_len
        states = torch.tensor(list(itertools.product(range(n), repeat=length)), dtype=torch.long)
        p = self.transitions(torch.tensor([sigma]))[0]
        return (self.dist.probs[:, None] * p[self.dist.sequences[:, None, :], states[None]].prod(-1)).sum(0)

    def __call__(self, xt: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """xt: Long[B, L], sigma: Float[B] -> log scores Float32[B, L, N] (each distinct (sigma, xt) computed once)."""
        self.calls += 1
        distinct, which = sigma.cpu().unique(return_inverse=True)
        n, seqs, length = self.rates.shape[0], self.dist.sequences, self.dist.seq_len
        powers = n ** torch.arange(length - 1, -1, -1)
        keys, rows = (which * n ** length + (xt.cpu() * powers).sum(-1)).unique(return_inverse=True)
        p = self.transitions(distinct)[keys // n ** length]  # [K, N, N]
        states = (keys[:, None] // powers) % n  # [K, L]
        k = torch.arange(keys.shape[0])[:, None, None]
        factors = p[k, seqs[None], states[:, None, :]]  # [K, S, L]: P[x^j, xt^j]
        others = torch.stack([factors[..., [j for j in range(length) if j != i]].prod(-1) for i in range(length)], -1)
        weights = self.dist.probs[None, :, None] * others  # [K, S, L]: p(x) prod_{j != i} P[x^j, xt^j]
        numerator = torch.einsum("ksl,ksly->kly", weights, p[k, seqs[None]])  # p[k, x^i, y]: P[x^i, y]
        evidence = (self.dist.probs[None] * factors.prod(-1)).sum(-1)  # p_sigma(xt): [K]
        scores = numerator.log() - evidence.log()[:, None, None]
        return scores[rows].float().to(xt.device)


@dataclass
class ToyKVCache:
    """Incremental-decoding state of ExactCausalLM: the data tokens fed so far, Long[B, n]."""

    tokens: torch.Tensor
    max_len: int
    started: bool = False


class ExactCausalLM:
    """Causal LM protocol with the exact conditionals p(x_i | x_<i) of a ToyDistribution.

    It also follows the incremental-decoding protocol of `edlm.sampling.ar` (`bos_id`, `new_cache`,
    `next_logits`), so the AR sampler can be checked against the exact distribution.
    """

    def __init__(self, dist: ToyDistribution) -> None:
        self.dist = dist
        self.vocab_size = dist.vocab_size
        self.bos_id = dist.vocab_size
        self.calls = 0

    def new_cache(self, batch: int, max_len: int) -> ToyKVCache:
        return ToyKVCache(torch.zeros((batch, 0), dtype=torch.long), max_len)

    def next_logits(self, inputs: torch.Tensor, cache: ToyKVCache) -> torch.Tensor:
        """Feed inputs Long[B, n] (BOS first on an empty cache) -> Float[B, V] exact log p(next | fed)."""
        if not cache.started:
            assert bool((inputs[:, 0] == self.bos_id).all()), "the first input must be BOS"
            inputs, cache.started = inputs[:, 1:], True
        cache.tokens = torch.cat([cache.tokens, inputs.cpu()], dim=1)
        n = cache.tokens.shape[1]
        assert n + 1 <= cache.max_len and n < self.dist.seq_len, "fed more inputs than the cache or the sequence holds"
        seqs = self.dist.sequences
        match = (seqs[None, :, :n] == cache.tokens[:, None, :]).all(-1).double() * self.dist.probs  # [B, N]
        mass = match @ torch.nn.functional.one_hot(seqs[:, n], self.vocab_size).double()  # [B, V]
        return mass.log().float()

    def token_logprobs(self, x: torch.Tensor) -> torch.Tensor:
        """x: Long[B, L] -> Float[B, L] exact log p(x_i | x_<i)."""
        self.calls += 1
        seqs, probs = self.dist.sequences, self.dist.probs
        match = (seqs[None] == x[:, None, :]).cumprod(-1).double()  # [B, N, L]: prefix x_<=i matches
        prefix_mass = torch.einsum("bnl,n->bl", match, probs)  # P(x_<=i)
        previous = torch.cat([torch.ones_like(prefix_mass[:, :1]), prefix_mass[:, :-1]], dim=1)
        return (prefix_mass.log() - previous.log()).float()
