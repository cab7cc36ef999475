"""`edlm.glauber`: Glauber dynamics with a masked-infill proposal and a causal LM as the energy.

The chain (the Glauber-dynamics paper, Algorithm 2, Appendices B and D; docs/glauber.md has the
derivations):

- Start: causal samples from `lm` with its KV cache (`edlm.sampling.ar_sample`), or `init`. A
  text-level target (an `lm` with `sequence_logprobs` instead of `token_logprobs`, e.g.
  `edlm.energy.TextLM`: a causal LM of another tokenizer that scores the proposal's decoded text)
  cannot decode in the proposal's ids; it starts from MDLM samples of `infill` (seq_len - P steps).
- Each round draws, per sequence, a uniform random permutation of its free (non-prefix) positions
  (float64 uniforms from `generator`, argsorted). Per-sequence permutations make the B chains of a
  batch independent, so their empirical distribution estimates the chain's law.
- The permutation is cut into consecutive groups of g sites (g = `block` or `parallel`, 1 by default).
  For each group S: mask S, call `infill` once on the whole batch at `t = |S| / seq_len` (the expected
  masked fraction 1 - alpha_t ~ t of the log-linear schedule), and read the proposal
  `q_j(. | x_{-S})` for every site j in S (float64 log-softmax of the infill logits).
- `block` (sequential, default): the sites of S are updated one at a time. Site j draws
  `y_j ~ q_j(. | x_{-S})` and, with `metropolis=True`, is accepted with probability
  `min(1, p(y) q_j(x_j | x_{-S}) / (p(x) q_j(y_j | x_{-S})))`, where y is x with site j set to y_j and
  p = p_AR(. | prefix). The proposal does not depend on x_S (it conditions on x_{-S}, which no update
  in the block changes), so each test is an exact single-site MH step and every round preserves p_AR.
  block = 1 is plain Glauber (x_{-S} = x_{-j}). With an exact infill conditional and block = 1 the
  ratio is 1 and every proposal is accepted.
- `parallel=s`: all s sites of S are drawn at once, `y_S ~ prod_j q_j(. | x_{-S})`, in one infill
  call and one LM call. `parallel_test="joint"`: one MH test of the whole move with the product
  proposal, `min(1, p(y) prod q_j(x_j) / (p(x) prod q_j(y_j)))` - exact, preserves p_AR.
  `parallel_test="per_site"`: each site gets its own single-site test against the sequence before the
  update (all s + 1 sequences scored in one LM call) and the accepted sites are applied together -
  NOT exact: it preserves p_AR only when the sites of S are independent given x_{-S} under p_AR
  (always when s = 1), and otherwise only approximates it.
- `metropolis=False`: every proposal is accepted. block = parallel = 1 is then the Gibbs sampler of
  the infill conditionals; its stationary distribution is whatever they imply (the joint distribution
  when they are the exact conditionals of one). With g > 1 the move draws S from the product of
  the marginals q_j(. | x_{-S}), which ignores the correlations inside S.
- MH arithmetic is float64 in log space: `log u < [log p(y) - log p(x)] + log q(x_S) - log q(y_S)`,
  with `log p(y) - log p(x)` summed over the positions from the first changed one on. The current
  and proposed sequences are scored together in one `lm.token_logprobs` call (2 rows per
  sequence); sequences whose proposal equals the current sequence skip the call (their ratio is 1).
  A text-level target gives one log-probability per whole sequence, `log p(text(x))`; it is put at the
  last position (0 elsewhere), so every difference and sum above stays exact.

Every model call is batched over the batch (or a sub-batch); there is no loop over sequences.
Random numbers, in order, per round: the permutation uniforms, then per group the proposal draws
(float64 exponential races of `edlm.sampling.categorical`) and the MH uniforms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from edlm.errors import require
from edlm.sampling.ar import ar_sample
from edlm.sampling.categorical import draw_rows, rows_per_chunk
from edlm.sampling.conditioning import fixed_tokens
from edlm.sampling.mdlm import sample
from edlm.util.device import module_device, uniform
from edlm.util.progress import progress_bar

PARALLEL_TESTS = ("joint", "per_site")
# names in GlauberStats.calls
AR_STEP, INFILL, LM, LM_ENERGY = "ar_step", "infill", "lm", "lm_energy"


@dataclass
class GlauberStats:
    """What one `edlm.glauber(..., return_stats=True)` call did.

    energy: Float64[N, rounds + 1], `-log p_AR(x_free | prefix)` in nats of each sequence (the sum of
        its non-prefix token NLLs; for a text-level lm `-log p(text(x))` of the whole sequence, prefix
        included): column 0 for the initial sequences, column r after round r.
    accepted, proposed: Long[N, rounds], MH tests passed and MH tests made by each sequence in each
        round (one per site; one per group for parallel_test="joint"; every proposal passes without
        the filter). A proposal equal to the current sequence counts as accepted (its ratio is 1).
    changed: Long[N, rounds], positions whose token differs between the start and the end of the round.
    calls: every model call in order as (name, rows): "ar_step" (one incremental `next_logits` call
        of the causal initialisation, rows = sequences), "infill" (rows of length seq_len), "lm"
        (`token_logprobs` rows scored for MH tests), "lm_energy" (`token_logprobs` rows scored only to
        record `energy`: bookkeeping, not part of the algorithm).
    """

    energy: torch.Tensor
    accepted: torch.Tensor
    proposed: torch.Tensor
    changed: torch.Tensor
    seq_len: int
    prefix_len: int
    calls: list = field(default_factory=list)

    @property
    def acceptance(self) -> torch.Tensor:
        """Float64[rounds]: accepted / proposed over the whole batch, per round (NaN if nothing was proposed)."""
        return self.accepted.sum(0).double() / self.proposed.sum(0).double()

    @property
    def mean_energy(self) -> torch.Tensor:
        """Float64[rounds + 1]: the batch mean of `energy` (column 0: initial sequences)."""
        return self.energy.mean(0)

    def count(self, name: str) -> tuple[int, int]:
        """(number of calls, total rows) of "ar_step", "infill", "lm" or "lm_energy"."""
        rows = [r for n, r in self.calls if n == name]
        return len(rows), sum(rows)

    def forward_passes(self) -> dict:
        """Sequence-length forward passes by kind, summed over the batch (the iso-compute unit).

        A causal generation with the KV cache reads each of its L - P inputs once, so it counts as one
        pass per sequence; every infill row and every `token_logprobs` row is one pass. "total" is the
        algorithm's cost: ar + infill + lm, without the "lm_energy" bookkeeping.
        """
        free = self.seq_len - self.prefix_len
        ar = self.count(AR_STEP)[1] / free if free else 0.0
        out = {"ar": ar, "infill": self.count(INFILL)[1], "lm": self.count(LM)[1],
               "lm_energy": self.count(LM_ENERGY)[1]}
        out["total"] = out["ar"] + out["infill"] + out["lm"]
        return out

    def summary(self) -> dict:
        """A JSON-ready summary: acceptance and mean energy per round, calls and forward passes."""
        calls = {name: dict(zip(("calls", "rows"), self.count(name))) for name in (AR_STEP, INFILL, LM, LM_ENERGY)}
        return {"acceptance": [float(a) for a in self.acceptance],
                "mean_energy": [float(e) for e in self.mean_energy],
                "mean_changed": [float(c) for c in self.changed.double().mean(0)],
                "calls": calls, "forward_passes": self.forward_passes()}


def _check_args(lm, infill, num_samples, seq_len, rounds, metropolis, block, parallel, parallel_test, batch_size):
    require(isinstance(num_samples, int) and num_samples >= 1, f"num_samples={num_samples} must be an integer >= 1.")
    require(isinstance(seq_len, int) and seq_len >= 1, f"seq_len={seq_len} must be an integer >= 1.")
    require(isinstance(rounds, int) and rounds >= 0,
            f"rounds={rounds} must be an integer >= 0 (0 = the initial sequences).")
    require(isinstance(block, int) and block >= 1,
            f"block={block} must be an integer >= 1 (1 = one site per infill call).")
    require(isinstance(parallel, int) and parallel >= 1,
            f"parallel={parallel} must be an integer >= 1 (1 = one site per model call).")
    require(block == 1 or parallel == 1, f"block={block} and parallel={parallel} are two different variants; "
            "set one of them to 1.")
    require(parallel_test in PARALLEL_TESTS, f"parallel_test={parallel_test!r} must be one of {PARALLEL_TESTS}.")
    require(isinstance(metropolis, bool), f"metropolis={metropolis!r} must be True or False.")
    require(batch_size is None or (isinstance(batch_size, int) and batch_size >= 1),
            f"batch_size={batch_size} must be None or an integer >= 1.")
    require((hasattr(lm, "token_logprobs") or hasattr(lm, "sequence_logprobs")) and hasattr(lm, "vocab_size"),
            f"{type(lm).__name__} is not a causal LM; pass an object with token_logprobs(x) (or, text-level, "
            "sequence_logprobs(x)) and vocab_size.")
    require(callable(infill) and hasattr(infill, "vocab_size"),
            f"{type(infill).__name__} is not a denoiser; pass a callable infill(xt, t) with vocab_size.")
    require(lm.vocab_size == infill.vocab_size,
            f"the LM has vocab_size={lm.vocab_size} but the infill model has vocab_size={infill.vocab_size}; "
            "use two models built on the same tokenizer.")


def _initial(lm, infill, num_samples, seq_len, vocab, init, prefix, generator, batch_size, progress, calls):
    """Initial sequences Long[N, L] (causal samples, or MDLM samples of `infill` for a text-level `lm`,
    unless `init`) and the prefix length P."""
    fixed = fixed_tokens(num_samples, seq_len, vocab, prefix)
    plen = 0 if prefix is None else int(torch.as_tensor(prefix).shape[-1])
    if init is None and not hasattr(lm, "next_logits"):  # a text-level target: start from the proposal's MDLM samples
        mdlm_stats = sample(infill, num_samples, seq_len, max(1, seq_len - plen), prefix=prefix, generator=generator,
                            batch_size=batch_size, return_stats=True)
        calls.extend((INFILL, rows) for name, rows in mdlm_stats[1].calls if name == "denoiser")
        return mdlm_stats[0], plen
    if init is None:
        x = ar_sample(lm, num_samples, seq_len, prefix=prefix, generator=generator, batch_size=batch_size,
                      progress=progress)
        chunk = batch_size or num_samples
        for start in range(0, num_samples, chunk):  # ar_sample makes L - P next_logits calls per chunk
            calls.extend([(AR_STEP, min(chunk, num_samples - start))] * (seq_len - plen))
        return x, plen
    init = torch.as_tensor(init)
    require(not init.is_floating_point() and not init.is_complex(), f"init has dtype {init.dtype}; pass token ids.")
    require(tuple(init.shape) == (num_samples, seq_len),
            f"init has shape {tuple(init.shape)}; pass shape [num_samples, seq_len] = [{num_samples}, {seq_len}].")
    init = init.long()
    require(bool(((init >= 0) & (init < vocab)).all()),
            f"init holds ids outside [0, {vocab}); pass token ids of the models' vocabulary.")
    require(bool(((fixed[:, :plen] == init[:, :plen].cpu())).all()),
            "init disagrees with prefix on the prefix positions; make init start with the prefix.")
    return init, plen


@torch.no_grad()
def glauber(lm, infill, num_samples: int, seq_len: int, rounds: int, *, metropolis: bool = True, block: int = 1,
            parallel: int = 1, parallel_test: str = "joint", init=None, prefix=None,
            generator: torch.Generator | None = None, batch_size: int | None = None,
            return_stats: bool = False, progress: bool = False):
    """Glauber dynamics: Long[num_samples, seq_len] samples after `rounds` rounds (module docstring).

    lm: causal LM, `lm.token_logprobs(x Long[B, L]) -> Float[B, L]` and `vocab_size`; for the causal
        initialisation also `bos_id`, `new_cache`, `next_logits` (see `edlm.sampling.ar`). Or a
        text-level target, `lm.sequence_logprobs(x Long[B, L]) -> Float64[B]` (`edlm.energy.TextLM`).
    infill: denoiser, `infill(xt Long[B, L], t Float[B]) -> Float[B, L, V]`, mask id V; eval mode.
    rounds: sweeps over the free positions (0 returns the initial sequences).
    metropolis: MH filter against `lm` (p_AR is then the stationary distribution, see the docstring).
    block: sites masked together per infill call and updated one at a time (exact with the filter).
    parallel, parallel_test: sites updated at once per infill call and LM call, with one "joint" MH
        test (exact) or one test per site ("per_site", approximate). block and parallel exclude each other.
    init: Long[num_samples, seq_len] initial sequences (default: causal samples from lm).
    prefix: Long[P] or Long[num_samples, P] ids at positions 0..P-1, never updated; the causal
        initialisation continues it and the target is p_AR(x_P.. | prefix).
    generator: source of every random number (drawn on its device); None uses torch's global RNG.
    batch_size: sequences per chunk (default all); chunks run one after the other.
    return_stats: also return a `GlauberStats` (energy, acceptance per round, model calls).
    """
    _check_args(lm, infill, num_samples, seq_len, rounds, metropolis, block, parallel, parallel_test, batch_size)
    calls: list = []
    x, plen = _initial(lm, infill, num_samples, seq_len, lm.vocab_size, init, prefix, generator, batch_size, progress,
                       calls)
    x = x.to(module_device(infill)).clone()
    stats = GlauberStats(torch.zeros((num_samples, rounds + 1), dtype=torch.float64),
                         torch.zeros((num_samples, rounds), dtype=torch.long),
                         torch.zeros((num_samples, rounds), dtype=torch.long),
                         torch.zeros((num_samples, rounds), dtype=torch.long), seq_len, plen, calls)
    group = max(block, parallel)
    mode = "parallel" if parallel > 1 else "sequential"
    free = seq_len - plen
    chunk = batch_size or num_samples
    groups = -(-free // group)
    with progress_bar(total=rounds * groups * num_samples, enabled=progress, desc="glauber",
                      unit="seq-group") as bar:
        for start in range(0, num_samples, chunk):
            chain = _Chain(lm, infill, x[start:start + chunk], plen, generator, stats, start, bar)
            chain.run(rounds, metropolis, group, mode, parallel_test)
            x[start:start + chunk] = chain.x
    return (x, stats) if return_stats else x


def _log_prob_at(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Float64[M]: log softmax(logits[m])[tokens[m]] for logits Float[M, V], in float64 chunks."""
    out = torch.empty(tokens.shape, dtype=torch.float64, device=logits.device)
    step = rows_per_chunk(logits.shape[-1])
    for s in range(0, logits.shape[0], step):
        rows = logits[s:s + step].double()
        out[s:s + step] = rows.gather(-1, tokens[s:s + step, None]).squeeze(-1) - torch.logsumexp(rows, dim=-1)
    return out


class _Chain:
    """The state of one chunk of chains: x Long[B, L] on the infill device, its log p_AR."""

    def __init__(self, lm, infill, x, plen, generator, stats, offset, bar):
        self.lm, self.infill, self.x, self.plen = lm, infill, x.clone(), plen
        self.generator, self.stats, self.offset, self.bar = generator, stats, offset, bar
        self.rows = slice(offset, offset + x.shape[0])
        self.lm_device = module_device(lm)
        self.vocab = infill.vocab_size

    # ---- model calls -------------------------------------------------------------------------
    def _token_logprobs(self, seqs: torch.Tensor, name: str) -> torch.Tensor:
        """Float64[n, L] log p(x_i | x_<i) of seqs Long[n, L], one call, on the chain's device; a
        text-level lm's whole-sequence log p(text(x)) at the last position, 0 elsewhere."""
        if not hasattr(self.lm, "token_logprobs"):
            out = torch.zeros(seqs.shape, dtype=torch.float64, device=seqs.device)
            out[:, -1] = self.lm.sequence_logprobs(seqs).to(device=seqs.device, dtype=torch.float64)
            self.stats.calls.append((name, seqs.shape[0]))
            return out
        out = self.lm.token_logprobs(seqs.to(self.lm_device))
        self.stats.calls.append((name, seqs.shape[0]))
        require(tuple(out.shape) == tuple(seqs.shape),
                f"lm.token_logprobs returned shape {tuple(out.shape)} for input {tuple(seqs.shape)}; "
                "return one log-probability per position.")
        return out.to(device=seqs.device, dtype=torch.float64)

    def _free_logp(self, x: torch.Tensor) -> torch.Tensor:
        """Float64[B] log p_AR(x_free | prefix), scored for bookkeeping."""
        return self._token_logprobs(x, LM_ENERGY)[:, self.plen:].sum(1)

    def _proposal(self, sites: torch.Tensor):
        """Mask `sites` Long[B, g], call infill once; return proposed tokens Long[B, g] and the float64
        log q_j of the proposed and of the current tokens, both Float64[B, g]."""
        b, g = sites.shape
        length = self.x.shape[1]
        xt = self.x.scatter(1, sites, self.vocab)
        t = torch.full((b,), g / length, dtype=torch.float32, device=xt.device)
        logits = self.infill(xt, t)
        self.stats.calls.append((INFILL, b))
        require(tuple(logits.shape) == (b, length, self.vocab),
                f"the infill model returned shape {tuple(logits.shape)} for input {tuple(xt.shape)}; "
                f"return logits of shape [B, L, V] with V = vocab_size = {self.vocab}.")
        flat = logits.gather(1, sites[..., None].expand(-1, -1, self.vocab)).reshape(b * g, self.vocab)
        tokens, logq_y = draw_rows(flat, torch.arange(b * g, device=flat.device), 1, self.generator)
        logq_x = _log_prob_at(flat, self.x.gather(1, sites).reshape(-1))
        return tokens[0].view(b, g), logq_y[0].view(b, g), logq_x.view(b, g)

    def _log_ratio_p(self, current: torch.Tensor, proposed: torch.Tensor) -> torch.Tensor:
        """Float64[n]: log p_AR(proposed) - log p_AR(current), rows paired; both scored in one call
        of 2n rows; the sum runs from the first position where the pair differs."""
        n = current.shape[0]
        logp = self._token_logprobs(torch.cat([current, proposed]), LM)
        after = (current != proposed).cumsum(1) > 0
        return torch.where(after, logp[n:] - logp[:n], torch.zeros_like(logp[:n])).sum(1)

    def _mh(self, proposed: torch.Tensor, log_q_ratio: torch.Tensor):
        """One MH test per sequence of x -> proposed: accept Bool[B] and log p ratio Float64[B]."""
        b = proposed.shape[0]
        log_u = uniform((b,), self.generator, proposed.device).log()
        accept = torch.ones(b, dtype=torch.bool, device=proposed.device)
        delta = torch.zeros(b, dtype=torch.float64, device=proposed.device)
        moved = (proposed != self.x).any(1).nonzero().squeeze(1)
        if moved.numel():
            d = self._log_ratio_p(self.x[moved], proposed[moved])
            accept[moved] = log_u[moved] < d + log_q_ratio[moved]  # NaN / -inf ratios reject
            delta[moved] = d
        return accept, delta

    # ---- the chain ---------------------------------------------------------------------------
    def run(self, rounds, metropolis, group, mode, parallel_test):
        b, length = self.x.shape
        free = length - self.plen
        energy_known = metropolis and not (mode == "parallel" and parallel_test == "per_site")
        logp = self._free_logp(self.x)
        self.stats.energy[self.rows, 0] = -logp.cpu()
        for r in range(rounds):
            before = self.x.clone()
            accepted = torch.zeros(b, dtype=torch.long, device=self.x.device)
            proposed = torch.zeros_like(accepted)
            perm = uniform((b, free), self.generator, self.x.device).argsort(dim=1) + self.plen
            for g0 in range(0, free, group):
                sites = perm[:, g0:g0 + group]
                tokens, logq_y, logq_x = self._proposal(sites)
                if mode == "sequential":
                    for k in range(sites.shape[1]):
                        y = self.x.scatter(1, sites[:, k:k + 1], tokens[:, k:k + 1])
                        if metropolis:
                            acc, delta = self._mh(y, logq_x[:, k] - logq_y[:, k])
                            self.x = torch.where(acc[:, None], y, self.x)
                            logp = logp + torch.where(acc, delta, torch.zeros_like(delta))
                        else:
                            acc = torch.ones(b, dtype=torch.bool, device=y.device)
                            self.x = y
                        accepted += acc
                        proposed += 1
                elif not metropolis:
                    self.x = self.x.scatter(1, sites, tokens)
                    accepted += sites.shape[1]
                    proposed += sites.shape[1]
                elif parallel_test == "joint":
                    y = self.x.scatter(1, sites, tokens)
                    acc, delta = self._mh(y, (logq_x - logq_y).sum(1))
                    self.x = torch.where(acc[:, None], y, self.x)
                    logp = logp + torch.where(acc, delta, torch.zeros_like(delta))
                    accepted += acc
                    proposed += 1
                else:
                    acc = self._per_site_tests(sites, tokens, logq_x - logq_y)
                    self.x = self.x.scatter(1, sites, torch.where(acc, tokens, self.x.gather(1, sites)))
                    accepted += acc.sum(1)
                    proposed += sites.shape[1]
                self.bar.update(b)
            if not energy_known:
                logp = self._free_logp(self.x)
            self.stats.energy[self.rows, r + 1] = -logp.cpu()
            self.stats.accepted[self.rows, r] = accepted.cpu()
            self.stats.proposed[self.rows, r] = proposed.cpu()
            self.stats.changed[self.rows, r] = (self.x != before).sum(1).cpu()

    def _per_site_tests(self, sites, tokens, log_q_ratio) -> torch.Tensor:
        """Bool[B, g]: each site's own MH test of x -> (x with only that site set to its proposal).
        The current sequences and all changed single-site variants are scored in one call."""
        b, g = sites.shape
        log_u = uniform((b, g), self.generator, self.x.device).log()
        acc = torch.ones((b, g), dtype=torch.bool, device=self.x.device)
        moved = tokens != self.x.gather(1, sites)  # [B, g]
        vb, vk = moved.nonzero(as_tuple=True)
        if vb.numel() == 0:
            return acc
        rows = moved.any(1).nonzero().squeeze(1)  # sequences with at least one changed variant
        slot = torch.full((b,), -1, dtype=torch.long, device=self.x.device)
        slot[rows] = torch.arange(rows.numel(), device=self.x.device)
        variants = self.x[vb].scatter(1, sites[vb, vk][:, None], tokens[vb, vk][:, None])
        n = rows.numel()
        logp = self._token_logprobs(torch.cat([self.x[rows], variants]), LM)
        current = logp[:n][slot[vb]]
        after = (self.x[vb] != variants).cumsum(1) > 0
        d = torch.where(after, logp[n:] - current, torch.zeros_like(current)).sum(1)
        acc[vb, vk] = log_u[vb, vk] < d + log_q_ratio[vb, vk]
        return acc
