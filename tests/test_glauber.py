"""Glauber dynamics on an enumerable toy (V=3, L=4: 81 sequences), checked against exact transition kernels.

Reference: for every variant the test builds the exact one-round transition matrix K (81 x 81) by
enumeration - per ordered group of sites, the MH (or unfiltered) kernel with the proposal
q_j(. | x_{-S}) of the infill distribution, composed along the permutation and averaged over all
4! permutations (each chain draws its own uniform permutation). From it: which distribution each
variant preserves (p K = p, pure math), and the exact law pi_R = delta_init K^R after R rounds.

Tolerance (derived, not tuned): the N chains of a batch are independent, so after R rounds the
samples are N i.i.d. draws from pi_R. Their empirical TV to pi_R has mean E_N(pi_R) (computed exactly
by `ToyDistribution.expected_tv`; ~ sum_k sqrt(pi_k (1 - pi_k) / (2 pi N))), and since moving one
draw changes it by at most 1/N, McDiarmid gives P(TV - E_N > eps) <= exp(-2 N eps^2): with
eps = 3 / sqrt(N) a false failure has probability <= exp(-18) ~ 1.5e-8. Against the target p we add
the exact bias TV(pi_R, p) (triangle inequality), which the reference kernel gives and the tests
keep below a stated fraction of eps.

Speed: the exact toy models are precomputed into lookup tables (same numbers as ExactCausalLM /
ExactDenoiser) and torch runs on one thread in this module (tiny ops on a shared 2-core machine spin
otherwise).
"""

from __future__ import annotations

import argparse
import itertools
import math

import pytest
import torch

import edlm
from edlm.errors import EdlmError
from edlm.models import CausalLM, MaskedDiffusionLM, ModelConfig
from edlm.sampling.glauber import GlauberStats
from edlm.commands.glauber_options import (GLAUBER_DEFAULTS, add_glauber_arguments, check_glauber_args, glauber_sample_fields,
                                       glauber_settings, run_glauber_from_args)
from edlm.toy import ExactCausalLM, ExactDenoiser, ToyDistribution
from edlm.util.device import cpu_threads

V, L, N = 3, 4, 20000
EPS = 3 / math.sqrt(N)  # McDiarmid slack, false-failure probability <= exp(-18)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with cpu_threads(1):
        yield


# ---------------------------------------------------------------- fast exact models (lookup tables)
class TableLM(ExactCausalLM):
    """ExactCausalLM whose token_logprobs is a table lookup (the incremental protocol is inherited)."""

    def __init__(self, dist: ToyDistribution) -> None:
        super().__init__(dist)
        self.table = ExactCausalLM(dist).token_logprobs(dist.sequences)

    def token_logprobs(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.table[self.dist.index(x)]


class TableDenoiser:
    """ExactDenoiser precomputed for every (mask pattern, state): the exact p(x0^i | xt)."""

    time_conditioned = False

    def __init__(self, dist: ToyDistribution) -> None:
        self.dist, self.vocab_size, self.calls = dist, dist.vocab_size, 0
        self.powers = 2 ** torch.arange(dist.seq_len)
        patterns = ((torch.arange(2 ** dist.seq_len)[:, None] // self.powers) % 2).bool()  # [P, L]
        seqs = dist.sequences
        xt = torch.where(patterns[:, None, :], torch.full_like(seqs, self.vocab_size)[None], seqs[None])
        out = ExactDenoiser(dist)(xt.reshape(-1, dist.seq_len), None)
        self.table = out.view(len(patterns), len(seqs), dist.seq_len, dist.vocab_size)

    def __call__(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        masked = xt == self.vocab_size
        pattern = (masked.long() * self.powers).sum(1)
        return self.table[pattern, self.dist.index(torch.where(masked, torch.zeros_like(xt), xt))]


# ---------------------------------------------------------------- exact reference kernels
def masked_marginals(q: ToyDistribution, sites) -> torch.Tensor:
    """Float64[K, L, V]: q(x_i = v | x_{-S}) for every state x (the infill proposal with S masked)."""
    seqs = q.sequences
    keep = [i for i in range(q.seq_len) if i not in sites]
    same = (seqs[:, None, keep] == seqs[None, :, keep]).all(-1).double()
    w = same * q.probs[None]
    onehot = torch.nn.functional.one_hot(seqs, q.vocab_size).double()
    return torch.einsum("xz,zlv->xlv", w, onehot) / w.sum(1)[:, None, None]


def _with(p, sites, values):
    y = p.sequences.clone()
    y[:, list(sites)] = torch.as_tensor(values)
    return p.index(y)


def group_kernel(p, q, sites, mode, metropolis) -> torch.Tensor:
    """Exact kernel of one group S (ordered sites) of the implementation's `mode`, target p, proposal q."""
    seqs, pp, n = p.sequences, p.probs, len(p.sequences)
    ar = torch.arange(n)
    Q = masked_marginals(q, sites)
    zero = torch.zeros(n, dtype=torch.float64)
    if mode == "sequential":  # one single-site kernel per site, proposal q_j(. | x_{-S}), composed in order
        kern = torch.eye(n, dtype=torch.float64)
        for j in sites:
            k = torch.zeros(n, n, dtype=torch.float64)
            for v in range(p.vocab_size):
                yi = _with(p, [j], [v])
                prop, rev = Q[ar, j, v], Q[yi, j, seqs[:, j]]
                acc = (pp[yi] * rev / (pp * prop)).clamp(max=1) if metropolis else torch.ones_like(prop)
                k[ar, yi] += torch.where(yi != ar, prop * acc, zero)
            k[ar, ar] += 1 - k.sum(1)
            kern = kern @ k
        return kern
    out = torch.zeros(n, n, dtype=torch.float64)
    if mode == "per_site" and metropolis:  # independent single-site tests, applied together
        moves = {}
        for j in sites:
            kj = torch.zeros(n, p.vocab_size, dtype=torch.float64)
            for v in range(p.vocab_size):
                yi = _with(p, [j], [v])
                prop = Q[ar, j, v]
                acc = (pp[yi] * Q[ar, j, seqs[:, j]] / (pp * prop)).clamp(max=1)
                kj[:, v] = torch.where(yi != ar, prop * acc, zero)
            kj[ar, seqs[:, j]] += 1 - kj.sum(1)
            moves[j] = kj
        for a in itertools.product(range(p.vocab_size), repeat=len(sites)):
            prob = torch.ones(n, dtype=torch.float64)
            for j, v in zip(sites, a):
                prob = prob * moves[j][:, v]
            out[ar, _with(p, sites, a)] += prob
        return out
    for a in itertools.product(range(p.vocab_size), repeat=len(sites)):  # joint test, or no filter
        yi = _with(p, sites, a)
        prop = torch.ones(n, dtype=torch.float64)
        rev = torch.ones(n, dtype=torch.float64)
        for j, v in zip(sites, a):
            prop, rev = prop * Q[ar, j, v], rev * Q[yi, j, seqs[:, j]]
        acc = (pp[yi] * rev / (pp * prop)).clamp(max=1) if metropolis else torch.ones_like(prop)
        out[ar, yi] += torch.where(yi != ar, prop * acc, zero)
    out[ar, ar] += 1 - out.sum(1)
    return out


def round_kernel(p, q, *, metropolis=True, block=1, parallel=1, parallel_test="joint", prefix_len=0):
    """Exact one-round kernel: average over the uniform permutations of the free positions."""
    group = max(block, parallel)
    mode = "sequential" if parallel == 1 else parallel_test
    n = len(p.sequences)
    total, cache = torch.zeros(n, n, dtype=torch.float64), {}
    perms = list(itertools.permutations(range(prefix_len, p.seq_len)))
    for perm in perms:
        k = torch.eye(n, dtype=torch.float64)
        for g0 in range(0, len(perm), group):
            key = perm[g0:g0 + group] if mode == "sequential" else tuple(sorted(perm[g0:g0 + group]))
            if key not in cache:
                cache[key] = group_kernel(p, q, key, mode, metropolis)
            k = k @ cache[key]
        total += k
    return total / len(perms)


def law(start: torch.Tensor, kernel: torch.Tensor, rounds: int) -> torch.Tensor:
    for _ in range(rounds):
        start = start @ kernel
    return start


def tv(a, b) -> float:
    return 0.5 * float((a - b).abs().sum())


def floor(dist: ToyDistribution, target: torch.Tensor, n: int = N) -> float:
    """E_N[TV] + 3 / sqrt(N): the bound on the empirical TV of n i.i.d. draws (module docstring)."""
    return dist.expected_tv(n, target) + 3 / math.sqrt(n)


@pytest.fixture(scope="module")
def p():
    return ToyDistribution.random(V, L, torch.Generator().manual_seed(2), temperature=0.8)


@pytest.fixture(scope="module")
def q():  # the deliberately wrong infill distribution: TV(p, q) ~ 0.39
    return ToyDistribution.random(V, L, torch.Generator().manual_seed(5), temperature=0.8)


@pytest.fixture(scope="module")
def zeros_start(p):
    d = torch.zeros(len(p.sequences), dtype=torch.float64)
    d[0] = 1.0  # the all-zeros sequence, p(0000) ~ 0.005
    return d


def run(p, q, rounds, seed, n=N, **kw):
    return edlm.glauber(TableLM(p), TableDenoiser(q), n, L, rounds, init=torch.zeros(n, L, dtype=torch.long),
                        generator=torch.Generator().manual_seed(seed), return_stats=True, **kw)


VARIANTS = {
    "single": dict(),
    "single-nofilter": dict(metropolis=False),
    "block2": dict(block=2),
    "block4": dict(block=4),
    "joint2": dict(parallel=2),
    "joint4": dict(parallel=4),
    "persite2": dict(parallel=2, parallel_test="per_site"),
    "parallel2-nofilter": dict(parallel=2, metropolis=False),
}
EXACT = ["single", "block2", "block4", "joint2", "joint4"]


# ---------------------------------------------------------------- what each variant preserves (math)
def test_reference_kernels_preserve_what_the_docs_claim(p, q):
    for name in EXACT:
        k = round_kernel(p, q, **VARIANTS[name])
        assert float((p.probs @ k - p.probs).abs().max()) < 1e-12, name
        assert torch.allclose(k.sum(1), torch.ones(len(p.probs), dtype=torch.float64))
    # per-site tests in parallel: not p-invariant (the sites of a group are dependent under p)
    assert float((p.probs @ round_kernel(p, q, **VARIANTS["persite2"]) - p.probs).abs().sum()) > 1e-3
    # without the filter: the Gibbs sampler of q's exact conditionals keeps q, not p; grouped draws keep neither
    gibbs_q = round_kernel(p, q, metropolis=False)
    assert float((q.probs @ gibbs_q - q.probs).abs().max()) < 1e-12
    assert float((p.probs @ gibbs_q - p.probs).abs().sum()) > 0.1
    grouped = round_kernel(q, q, parallel=2, metropolis=False)
    assert float((q.probs @ grouped - q.probs).abs().sum()) > 1e-3


# ---------------------------------------------------------------- the implementation has the exact law
@pytest.mark.parametrize("name", list(VARIANTS))
def test_law_after_two_rounds_matches_the_exact_kernel(p, q, zeros_start, name):
    kw = VARIANTS[name]
    x, _ = run(p, q, 2, seed=10 + list(VARIANTS).index(name), **kw)
    exact = law(zeros_start, round_kernel(p, q, **kw), 2)
    assert p.tv(x, exact) <= floor(p, exact), name


# ---------------------------------------------------------------- convergence
def test_exact_infill_without_filter_converges_from_all_zeros(p, zeros_start):
    rounds = 6
    bias = tv(law(zeros_start, round_kernel(p, p, metropolis=False), rounds), p.probs)
    assert bias < 0.1 * EPS  # the exact Gibbs chain has mixed after 6 rounds
    x, stats = run(p, p, rounds, seed=1, metropolis=False)
    assert p.tv(x) <= floor(p, p.probs) + bias
    assert float(stats.acceptance.min()) == 1.0  # no filter: every proposal taken


def test_wrong_proposal_converges_to_the_lm_with_the_filter_and_not_without(p, q, zeros_start):
    rounds = 10
    bias = tv(law(zeros_start, round_kernel(p, q), rounds), p.probs)
    assert bias < 0.25 * EPS
    x, stats = run(p, q, rounds, seed=2)
    assert p.tv(x) <= floor(p, p.probs) + bias
    assert 0.3 < float(stats.acceptance[-1]) < 0.95  # the wrong proposal is rejected a fair share of the time

    x, _ = run(p, q, rounds, seed=3, metropolis=False)
    assert p.tv(x) > 5 * floor(p, p.probs)  # far from the LM ...
    bias_q = tv(law(zeros_start, round_kernel(q, q, metropolis=False), rounds), q.probs)
    assert p.tv(x, q.probs) <= floor(p, q.probs) + bias_q  # ... at the infill model's own distribution


@pytest.mark.parametrize("name,rounds", [("block2", 8), ("joint2", 8)])
def test_block_and_joint_parallel_with_the_filter_converge(p, q, zeros_start, name, rounds):
    bias = tv(law(zeros_start, round_kernel(p, q, **VARIANTS[name]), rounds), p.probs)
    assert bias < 0.25 * EPS
    x, _ = run(p, q, rounds, seed=4, **VARIANTS[name])
    assert p.tv(x) <= floor(p, p.probs) + bias


def test_causal_initialisation_is_exact_and_the_filter_keeps_it(p, q):
    lm = TableLM(p)
    x, stats = edlm.glauber(lm, TableDenoiser(q), N, L, 2, generator=torch.Generator().manual_seed(5),
                            return_stats=True)
    assert p.tv(x) <= floor(p, p.probs)
    assert stats.count("ar_step") == (L, N * L)  # one incremental call per position, whole batch
    assert stats.forward_passes()["ar"] == N


def test_prefix_is_never_updated_and_the_target_is_the_conditional(p, q):
    prefix = torch.tensor([2])
    seen = []

    class Watch(TableDenoiser):
        def __call__(self, xt, t):
            seen.append(bool((xt[:, 0] == 2).all()))
            return super().__call__(xt, t)

    init = torch.cat([torch.full((N, 1), 2), torch.zeros(N, L - 1, dtype=torch.long)], 1)
    x, stats = edlm.glauber(TableLM(p), Watch(q), N, L, 8, init=init, prefix=prefix,
                            generator=torch.Generator().manual_seed(6), return_stats=True)
    assert all(seen) and len(seen) == 8 * (L - 1)
    assert bool((x[:, 0] == 2).all())
    assert bool((stats.proposed == L - 1).all())
    conditional = torch.where(p.sequences[:, 0] == 2, p.probs, torch.zeros_like(p.probs))
    conditional /= conditional.sum()
    start = torch.zeros_like(conditional)
    start[p.index(init[:1])] = 1
    bias = tv(law(start, round_kernel(p, q, prefix_len=1), 8), conditional)
    assert bias < 0.25 * EPS
    assert p.tv(x, conditional) <= floor(p, conditional) + bias
    # the energy is -log p(free tokens | prefix)
    cond_nll = p.nll(x) + float(torch.log(p.probs[p.sequences[:, 0] == 2].sum()))
    assert torch.allclose(stats.energy[:, -1], cond_nll, atol=1e-4)


def test_per_row_prefix_and_causal_init_continue_each_row(p, q):
    prefix = torch.tensor([[0, 1], [2, 2], [1, 0]])
    x = edlm.glauber(TableLM(p), TableDenoiser(q), 3, L, 3, prefix=prefix, block=2,
                     generator=torch.Generator().manual_seed(7))
    assert torch.equal(x[:, :2], prefix)


def test_acceptance_is_one_when_the_proposal_is_the_exact_conditional(p):
    _, stats = run(p, p, 3, seed=8)
    assert float(stats.acceptance.min()) > 1 - 1e-4  # exactly 1 in real arithmetic (float32 tables)
    _, stats = run(p, p, 1, seed=8, block=2)  # q_j(. | x_{-S}) is not the single-site conditional
    assert float(stats.acceptance[0]) < 0.99


# ---------------------------------------------------------------- stats and costs
def test_stats_record_energy_acceptance_and_batched_calls(p, q):
    n, rounds = 64, 3
    lm, den = ExactCausalLM(p), ExactDenoiser(q)
    init = p.sample(n, torch.Generator().manual_seed(9))
    x, stats = edlm.glauber(lm, den, n, L, rounds, init=init, generator=torch.Generator().manual_seed(9),
                            return_stats=True)
    assert isinstance(stats, GlauberStats)
    assert stats.energy.shape == (n, rounds + 1) and stats.energy.dtype == torch.float64
    assert torch.allclose(stats.energy[:, 0], p.nll(init), atol=1e-4)
    assert torch.allclose(stats.energy[:, -1], p.nll(x), atol=1e-4)  # tracked through the accepted moves
    assert stats.acceptance.shape == (rounds,) and stats.mean_energy.shape == (rounds + 1,)
    assert bool((stats.proposed == L).all()) and bool((stats.accepted <= stats.proposed).all())
    assert stats.count("infill") == (rounds * L, rounds * L * n)  # one call per site, whole batch
    lm_calls, lm_rows = stats.count("lm")
    assert lm_calls <= rounds * L and lm_rows % 2 == 0 and lm_rows <= 2 * n * rounds * L
    assert stats.count("lm_energy") == (1, n)
    assert (den.calls, lm.calls) == (rounds * L, lm_calls + 1)  # the stats count every real call
    assert stats.forward_passes()["total"] == rounds * L * n + lm_rows
    summary = stats.summary()
    assert len(summary["acceptance"]) == rounds and summary["calls"]["infill"]["calls"] == rounds * L

    _, stats = edlm.glauber(lm, den, n, L, rounds, init=init, metropolis=False, return_stats=True,
                            generator=torch.Generator().manual_seed(9))
    assert stats.count("lm") == (0, 0) and stats.count("lm_energy") == (rounds + 1, (rounds + 1) * n)
    assert torch.allclose(stats.energy[:, -1], p.nll(_), atol=1e-4)


@pytest.mark.parametrize("test", ["joint", "per_site"])
def test_parallel_round_costs_one_infill_and_at_most_one_lm_call_per_group(p, q, test):
    n, rounds = 64, 2
    init = p.sample(n, torch.Generator().manual_seed(11))
    x, stats = edlm.glauber(TableLM(p), TableDenoiser(q), n, L, rounds, init=init, parallel=2, parallel_test=test,
                            generator=torch.Generator().manual_seed(11), return_stats=True)
    assert stats.count("infill")[0] == rounds * 2
    assert stats.count("lm")[0] <= rounds * 2
    assert bool((stats.proposed == (2 if test == "joint" else L)).all())  # one test per group / per site
    assert torch.allclose(stats.energy[:, -1], p.nll(x), atol=1e-4)


def test_batch_size_chunks_fill_every_row(p, q):
    x, stats = edlm.glauber(TableLM(p), TableDenoiser(q), 10, L, 2, batch_size=4, return_stats=True,
                            generator=torch.Generator().manual_seed(12))
    assert x.shape == (10, L)
    assert bool((stats.proposed == L).all())
    assert torch.allclose(stats.energy[:, -1], p.nll(x), atol=1e-4)
    assert stats.count("ar_step") == (3 * L, 10 * L)
    assert stats.forward_passes()["ar"] == 10


def test_rounds_zero_returns_the_initial_sequences(p, q):
    init = p.sample(5, torch.Generator().manual_seed(13))
    x, stats = edlm.glauber(TableLM(p), TableDenoiser(q), 5, L, 0, init=init, return_stats=True)
    assert torch.equal(x, init) and stats.energy.shape == (5, 1) and stats.count("infill") == (0, 0)


# ---------------------------------------------------------------- errors
def test_bad_arguments_raise_edlm_error(p, q):
    lm, den = TableLM(p), TableDenoiser(q)
    other = ExactDenoiser(ToyDistribution.random(2, L, torch.Generator().manual_seed(0)))
    cases = [
        dict(rounds=-1), dict(block=0), dict(parallel=0), dict(block=2, parallel=2), dict(parallel_test="both"),
        dict(metropolis=1), dict(batch_size=0), dict(prefix=[0, 1, 2, 0, 1]), dict(prefix=[3]),
        dict(init=torch.zeros(2, L, dtype=torch.long)), dict(init=torch.full((4, L), 3)),
        dict(init=torch.zeros(4, L)), dict(init=torch.zeros(4, L, dtype=torch.long), prefix=[1]),
    ]
    for kw in cases:
        args = dict(rounds=1) | kw
        rounds = args.pop("rounds")
        with pytest.raises(EdlmError):
            edlm.glauber(lm, den, 4, L, rounds, **args)
    with pytest.raises(EdlmError, match="vocab_size"):
        edlm.glauber(lm, other, 4, L, 1)
    with pytest.raises(EdlmError):
        edlm.glauber(den, den, 4, L, 1)  # not a causal LM
    with pytest.raises(EdlmError):
        edlm.glauber(lm, den, 0, L, 1)


# ---------------------------------------------------------------- real (random-weight) models
@pytest.fixture(scope="module")
def tiny_models():
    torch.manual_seed(0)
    shape = dict(vocab_size=11, n_layers=1, d_model=32, n_heads=2, cond_dim=32, max_seq_len=32)
    lm = CausalLM(ModelConfig(**shape, causal=True, adaln=False)).eval()
    return lm, MaskedDiffusionLM(ModelConfig(**shape)).eval()


def test_real_models_are_reproducible_and_cheap_in_parallel(tiny_models):
    lm, den = tiny_models
    prefix = torch.randint(0, 11, (3, 5), generator=torch.Generator().manual_seed(0))
    kw = dict(prefix=prefix, return_stats=True)
    a, sa = edlm.glauber(lm, den, 3, 32, 2, generator=torch.Generator().manual_seed(1), **kw)
    b, _ = edlm.glauber(lm, den, 3, 32, 2, generator=torch.Generator().manual_seed(1), **kw)
    assert torch.equal(a, b) and torch.equal(a[:, :5], prefix) and a.shape == (3, 32)
    assert bool(torch.isfinite(sa.energy).all()) and bool(((sa.acceptance >= 0) & (sa.acceptance <= 1)).all())
    with torch.no_grad():
        direct = -lm.token_logprobs(a).double()[:, 5:].sum(1)
    assert torch.allclose(sa.energy[:, -1], direct, atol=1e-3)
    _, sp = edlm.glauber(lm, den, 3, 32, 1, parallel=9, generator=torch.Generator().manual_seed(2), **kw)
    assert sp.count("infill")[0] == 3 and sp.count("lm")[0] <= 3  # 27 free positions, 9 per call: << 2L
    _, sb = edlm.glauber(lm, den, 3, 32, 1, block=9, generator=torch.Generator().manual_seed(2), **kw)
    assert sb.count("infill")[0] == 3 and sb.count("lm")[0] <= 27


# ---------------------------------------------------------------- CLI glue
def test_cli_helpers_parse_and_run(p, q):
    parser = argparse.ArgumentParser()
    add_glauber_arguments(parser)

    def parse(argv):  # options not given parse as None; edlm sample then fills in GLAUBER_DEFAULTS
        args = parser.parse_args(argv)
        vars(args).update({k: v for k, v in GLAUBER_DEFAULTS.items() if getattr(args, k) is None})
        return args

    assert parser.parse_args([]).parallel is None
    args = parse(["--rounds", "2", "--block", "2", "--no-metropolis"])
    assert (args.rounds, args.block, args.parallel, args.metropolis) == (2, 2, 1, False)
    x, stats = run_glauber_from_args(args, TableLM(p), TableDenoiser(q), num_samples=6, seq_len=L, prefix=[1],
                                     generator=torch.Generator().manual_seed(0))
    assert bool((x[:, 0] == 1).all()) and stats.count("lm") == (0, 0) and stats.count("infill")[0] == 2 * 2
    fields = glauber_sample_fields(stats)
    assert len(fields) == 6 and fields[0]["acceptance"] == 1.0
    assert glauber_settings(args)["metropolis"] is False
    with pytest.raises(EdlmError):
        check_glauber_args(parse(["--block", "2", "--parallel", "2"]))
    with pytest.raises(EdlmError):
        check_glauber_args(parse(["--rounds", "-1"]))
