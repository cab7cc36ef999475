"""The EDLM likelihood on text8 by Rao-Blackwellised self-normalised importance sampling
(`edlm.nelbo(..., estimator="rao_blackwell")`), for the AR, carry-over AR and NCE energies of the
bundled text8-small models, at several numbers of proposal draws, beside the AR model's exact NLL and
the MDLM bound on the same sequences.

Every estimate uses the same rows: `--rows` test sequences (evenly spaced; the first `--seq-len`
characters of each), one time t per row (stratified over the rows), one masked sequence xt and one
masked position i per row. A row's NELBO term is `(masked positions) * -log p(x0^i | xt) / t` (nats),
its mean over rows the continuous-time NELBO per sequence; the MDLM bound's term on the same row uses
the denoiser's own marginal. Because rows are shared, the differences between draw counts and to
MDLM are paired (their standard errors, `diff_se`, are those of the per-row differences). With exact
marginals the AR energy's value equals the AR model's exact NLL: that is the yardstick, and the
per-position column shows the correction directly (mean of -log p(x0^i | xt) in bits).

    EDLM_DATA=/path/to/data OMP_NUM_THREADS=1 python benchmarks/edlm_likelihood_text8.py \
        [--rows 8] [--seq-len 256] [--draws 16 64 256 1024]

Writes benchmarks/results/edlm_likelihood_text8.{json,md} after every row of the table.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import edlm
from common import provenance, write_results
from edlm.data import load_split
from edlm.diffusion import forward_mask
from edlm.diffusion.schedules import LogLinearSchedule
from edlm.likelihood.energy import choose_masked_positions, rao_blackwell_nll
from edlm.loading.energy_specs import load_energy_spec
from edlm.loading.specs import load_spec

NAME = "edlm_likelihood_text8"
LN2 = math.log(2)
ENERGIES = {"AR": "ar:{ar}", "coAR": "coar:{ar}", "NCE": "nce:{nce}"}  # energy spec templates


def summary(terms: torch.Tensor, reference: torch.Tensor, length: int) -> dict:
    """Mean and s.e. (bits/char) of per-row NELBO terms Float64[R] (nats per sequence), and of their
    paired difference to `reference` Float64[R]."""
    r = len(terms)
    diff = terms - reference
    return dict(bpc=float(terms.mean()) / length / LN2, bpc_se=float(terms.std()) / math.sqrt(r) / length / LN2,
                diff_bpc=float(diff.mean()) / length / LN2, diff_se=float(diff.std()) / math.sqrt(r) / length / LN2)


def markdown(payload: dict) -> str:
    lines = ["# EDLM likelihood on text8: Rao-Blackwellised importance sampling", "",
             f"{payload['rows']} rows (test sequences of {payload['seq_len']} characters, one t, xt and masked "
             "position each, shared by every row of the table). `bpc`: NELBO estimate in bits per character "
             "(mean over rows, `bpc_se` its standard error); `vs_MDLM`: paired difference to the MDLM bound on "
             "the same rows; `pos_bits`: mean -log2 p(x0^i | xt) at the scored positions. Kind \"estimate\": "
             "not a bound.", "",
             "Models: " + ", ".join(f"{k} `{v}`" for k, v in payload["models"].items()) + ".", "",
             f"AR exact NLL of the same sequences: **{payload['ar_exact_bpc']:.3f}** bits/char; MDLM bound on the "
             f"same rows: **{payload['mdlm']['bpc']:.3f}** +- {payload['mdlm']['bpc_se']:.3f} "
             f"(pos_bits {payload['mdlm']['pos_bits']:.3f}).", "",
             "| energy | draws | bpc | bpc_se | vs_MDLM | vs_MDLM_se | pos_bits | energy evaluations | wall s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in payload["table"]:
        lines.append(f"| {r['energy']} | {r['draws']} | {r['bpc']:.3f} | {r['bpc_se']:.3f} | {r['diff_bpc']:+.3f} | "
                     f"{r['diff_se']:.3f} | {r['pos_bits']:.3f} | {r['energy_evaluations']} | {r['wall_s']:.0f} |")
    lines += ["", f"Command: `{payload['command']}` at {payload['git_revision']} on {payload['machine']['cpu']}, "
              f"torch {payload['machine']['torch']} with {payload['machine']['torch_threads']} threads; wall time "
              f"{payload['wall_time_s']} s.", ""]
    return "\n".join(lines)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8, help="test sequences, one (t, xt, position) each")
    parser.add_argument("--seq-len", type=int, default=256, help="characters per sequence (a prefix of each)")
    parser.add_argument("--draws", type=int, nargs="+", default=[16, 64, 256, 1024], help="proposal draws")
    parser.add_argument("--energies", nargs="+", default=list(ENERGIES), choices=list(ENERGIES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--denoiser", default="bundled:text8-small-mdlm", help="model spec of the MDLM denoiser")
    parser.add_argument("--ar", default="bundled:text8-small-ar", help="model spec of the AR model (AR and coAR energies)")
    parser.add_argument("--nce", default="bundled:text8-small-nce", help="model spec of the NCE energy network")
    args = parser.parse_args()
    started = time.perf_counter()
    denoiser = load_spec(args.denoiser, device="cpu")
    model = denoiser.model
    ar = load_spec(args.ar, device="cpu").model
    test = load_split(denoiser.config.data, "test")
    x0 = test[torch.linspace(0, len(test) - 1, args.rows).long(), : args.seq_len]
    g = torch.Generator().manual_seed(args.seed)
    t = ((torch.rand((), generator=g) + torch.arange(args.rows) / args.rows) % 1.0).clamp_min(1e-3)
    xt = forward_mask(x0, LogLinearSchedule(eps=0.0).alpha(t), model.vocab_size, g)
    masked = xt == model.vocab_size
    xt[:, 0] = torch.where(masked.any(dim=1), xt[:, 0], model.vocab_size)  # every row masks at least one position
    masked = xt == model.vocab_size
    positions, _ = choose_masked_positions(masked, 1, g)
    n_masked = masked.sum(dim=1).double()
    logits = model(xt, t)
    mdlm_pos = -torch.log_softmax(logits.double(), -1)[torch.arange(args.rows), positions[:, 0], x0.gather(1, positions)[:, 0]]
    mdlm_terms = n_masked * mdlm_pos / t.double()
    payload = dict(rows=args.rows, seq_len=args.seq_len, seed=args.seed,
                   models=dict(denoiser=args.denoiser, ar=args.ar, nce=args.nce),
                   ar_exact_bpc=float(edlm.nelbo(ar, x0).nats.mean()) / args.seq_len / LN2,
                   mdlm=dict(**summary(mdlm_terms, mdlm_terms, args.seq_len), pos_bits=float(mdlm_pos.mean()) / LN2),
                   table=[])
    for name in args.energies:
        energy = load_energy_spec(ENERGIES[name].format(ar=args.ar, nce=args.nce), denoiser=model, device="cpu").energy
        for n in args.draws:
            start = time.perf_counter()
            pos_nll = rao_blackwell_nll(logits, x0, xt, positions, energy, t, n,
                                        torch.Generator().manual_seed(args.seed + n))[:, 0]
            terms = n_masked * pos_nll / t.double()
            payload["table"].append(dict(energy=name, draws=n, **summary(terms, mdlm_terms, args.seq_len),
                                         pos_bits=float(pos_nll.mean()) / LN2,
                                         energy_evaluations=args.rows * n * model.vocab_size,
                                         wall_s=time.perf_counter() - start))
            print(payload["table"][-1], flush=True)
            payload.update(provenance(started))
            write_results(NAME, payload, markdown(payload))


if __name__ == "__main__":
    main()
