"""Glauber diffusion on text8 at CPU scale: Table 5 of the Glauber-dynamics paper (samples judged by an
oracle, with model invocations per sample), its iso-compute best-of-N comparison (section 4.3), and the
Glauber bound beside the AR NLL and the MDLM bound of the same test sequences.

    EDLM_DATA=/path/to/data OMP_NUM_THREADS=1 python benchmarks/glauber_text8.py --jobs 2

Models. AR, MDLM and the oracle are model specs (default: the bundled text8-small models). The UL2-style
model and one Glauber diffusion model per number of rounds N in --rounds are trained here, into --work,
by these commands (recorded in the report with their wall time), unless --ul2 RUN / --glauber N=RUN name
finished runs:

    edlm train text8-small-ul2 train.out_dir=WORK/ul2 --no-progress
    edlm train text8-small-glauber train.init_from=WORK/ul2 train.glauber_rounds=N [train.steps=S_N] \
        train.out_dir=WORK/glauber-N --no-progress

with train.steps=S_N only where `GLAUBER_STEPS` has N (100 at N = 3; the recipe's 240 otherwise), so that
N = 1 and N = 3 get about the same training CPU time; `--data DIR` adds data.path=DIR and every --override
KEY=VALUE comes last. A run at its last step is skipped; `edlm train` resumes an interrupted one. Up to
--jobs commands run at once (the Glauber runs after the UL2 run). The likelihood commands (below) run beside
the sample sets, which this process draws: --jobs - 1 of them at once (at least one).

Samples: --num-samples S outputs of L = 256 characters per method, all from --seed, judged by the oracle
with the text8 benchmark's `edlm.bench.text8.judge` (bits per character, mean and standard error over
samples; mean per-sample unigram entropy in nats). Model invocations per sample count model calls: a
causal model makes L incremental calls (one token each, KV cache), MDLM one call per denoising step that
reveals something (measured), Glauber diffusion with N rounds L causal calls and then N L infill calls
(one full-sequence pass each, `edlm.glauber_diffusion.reverse`, block 1): (N + 1) L, i.e. 2L and 4L.

- AR (`ar`); MDLM at each T in --mdlm-steps; real test text (reference).
- the UL2-style model's causal mode before Glauber training, and the Glauber-trained model's causal mode
  after it (the same weights, trained on infill only); Glauber N: those causal samples, then the reverse
  chain over `fixed_order(N, L)` (what `edlm sample --sampler glauber-diffusion` runs).
- the real test text of the reference row after each N-round model's forward chain (N heat-bath sweeps of its
  EMA weights at t = 1; N L infill calls): x_T, where the reverse chain is meant to start.
- iso-compute (section 4.3): for each N and K in --best-of, Glauber N best of K against AR best of
  (N + 1) K, the same number of model calls. "Best" is each model's own log-likelihood, never the oracle:
  AR's (a by-product of generation), and for Glauber the log-likelihood of the final sample under the
  model's causal mode (K extra full-sequence passes per output, listed apart). The K candidates of a
  smaller K are the first K of a larger one; the K = 1 Glauber candidate is the Glauber N row's sample.

Likelihood: `edlm eval nll` on the first --nll-sequences test sequences (same --seed): AR exact, MDLM bound
(--mdlm-num-t times per sequence), the UL2-style model's causal NLL (exact) and each Glauber model's bound
(--num-chains forward chains per sequence; `edlm.likelihood.glauber_split`). Bits per character, the
standard error is the Monte Carlo error.

Caching: each sample set is one JSON file under WORK/cache (`edlm.bench.text8.Cache`, keyed by its settings
and the sha256 of every model file), each likelihood one report under WORK/nll named by the hash of its
command and model; a rerun does only what is missing. Writes OUT.json and OUT.md (default
benchmarks/results/glauber_text8) with the command, git revision, machine and wall time.

Time, measured in the full run (one thread per process on a 2-core machine shared with other jobs): training
104 min for UL2 (5,600 steps), 100 min for N = 1 (240 steps at about 25 s), 101 min for N = 3 (100 at about
60 s), validations included; then about 50 min of samples (the reverse chains: 64 x N L sequence passes per
N) and likelihoods (a Glauber bound costs 2 N L passes per chain and sequence: about 10 min at N = 1, 40 at
N = 3). About 3.5 hours of wall time with --jobs 2.

--dry-run: tiny UL2 and Glauber models (1 layer x 16, 2 steps), 2 samples, best of 1 and 2, MDLM at 8 steps,
2 test sequences, 2 chains, into WORK = runs/glauber-text8-dry-run (OUT inside it): under a minute, for the tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import torch

from common import RESULTS, provenance, run_main, train_finished, write_results
from edlm.bench.text8 import Cache, Job, fingerprint, judge, subset
from edlm.errors import EdlmError, require
from edlm.util.atomic import write_text_atomic

NAME = "glauber_text8"
BUNDLED = {"ar": "bundled:text8-small-ar", "mdlm": "bundled:text8-small-mdlm", "oracle": "bundled:text8-small-oracle"}
GLAUBER_STEPS = {3: 100}  # train.steps for N rounds, else the recipe's 240: about the same CPU time for N = 1 and 3
DRY_OVERRIDES = ["model.n_layers=1", "model.d_model=16", "model.n_heads=2", "model.cond_dim=16", "train.steps=2",
                 "train.batch_size=2", "train.warmup_steps=1", "train.eval_every=0", "train.log_every=1",
                 "train.glauber_snapshots=2"]
LN2 = math.log(2)
MODEL_NAMES = {"ar": "AR", "mdlm": "MDLM", "ul2": "UL2-style"}  # the Glauber models are named by their rounds


@dataclass
class Settings:
    """Everything that decides the numbers besides the models (module doc)."""

    num_samples: int = 16
    best_of: tuple[int, ...] = (1, 2, 4)
    rounds: tuple[int, ...] = (1, 3)
    mdlm_steps: tuple[int, ...] = (256,)
    nll_sequences: int = 16
    num_chains: int = 4
    mdlm_num_t: int = 16
    seed: int = 0

    def check(self) -> None:
        require(self.num_samples >= 2,
                f"--num-samples {self.num_samples} must be at least 2 (a standard error needs two).")
        require(1 in self.best_of and min(self.best_of) >= 1, f"--best-of {self.best_of} must hold 1 and positive K.")
        require(bool(self.rounds) and min(self.rounds) >= 1, f"--rounds {self.rounds} must be positive integers.")
        require(bool(self.mdlm_steps) and min(self.mdlm_steps) >= 1,
                f"--mdlm-steps {self.mdlm_steps} must be positive.")
        require(self.nll_sequences >= 1 and self.num_chains >= 2 and self.mdlm_num_t >= 1,
                "--nll-sequences and --mdlm-num-t must be at least 1 and --num-chains at least 2.")

    def ar_best_of(self) -> list[int]:
        """The AR pool sizes m of the comparison: (N + 1) K for every N and K (m = 1 is the AR row)."""
        return sorted({(n + 1) * k for n in self.rounds for k in self.best_of} | {1})


DRY = Settings(num_samples=2, best_of=(1, 2), mdlm_steps=(8,), nll_sequences=2, num_chains=2, mdlm_num_t=2)


# ------------------------------------------------------------------ recorded edlm commands
def training_commands(work: Path, settings: Settings, data: str | None, overrides: list[str],
                      ul2: Path) -> dict:
    """{"ul2": argv, N: argv}: the `edlm train` commands (argv after `edlm`) of the module doc; the Glauber
    runs start from the UL2 run `ul2` (WORK/ul2 unless --ul2 names another)."""
    extra = ([f"data.path={data}"] if data else []) + overrides
    commands = {"ul2": ["train", "text8-small-ul2", f"train.out_dir={work / 'ul2'}", *extra, "--no-progress"]}
    for n in settings.rounds:
        steps = [f"train.steps={GLAUBER_STEPS[n]}"] if n in GLAUBER_STEPS else []
        commands[n] = ["train", "text8-small-glauber", f"train.init_from={ul2}", f"train.glauber_rounds={n}", *steps,
                       f"train.out_dir={work / f'glauber-{n}'}", *extra, "--no-progress"]
    return commands


def nll_command(spec: str, settings: Settings, data: str | None, kind: str) -> list[str]:
    """`edlm eval nll SPEC ...` (argv after `edlm`, without --out) for a model of kind mdlm, glauber or causal."""
    argv = ["eval", "nll", spec, "--max-sequences", str(settings.nll_sequences), "--seed", str(settings.seed)]
    extra = {"mdlm": ["--num-t", str(settings.mdlm_num_t)], "glauber": ["--num-chains", str(settings.num_chains)]}
    argv += extra.get(kind, [])
    return argv + (["--data", data] if data else [])


def run_commands(commands: list[list[str]], *, jobs: int, logs: Path, timings: Path, threads: int, log=print) -> None:
    """Run `python -m edlm ARGV` for each argv, at most `jobs` at once, each child's output in logs/; add
    each command's wall time (s) to the JSON file `timings`. When one fails, stop the others (SIGTERM) and
    raise EdlmError."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    logs.mkdir(parents=True, exist_ok=True)
    pending, running = list(commands), []
    while pending or running:
        while pending and len(running) < jobs:
            argv = pending.pop(0)
            text = "edlm " + shlex.join(argv)
            out = logs / (hashlib.sha256(text.encode()).hexdigest()[:12] + ".log")
            log(f"$ {text}  (log: {out})")
            with out.open("w") as handle:
                child = subprocess.Popen([sys.executable, "-m", "edlm", *argv], env=env, stdout=handle,
                                         stderr=subprocess.STDOUT)
            running.append((text, out, child, time.perf_counter()))
        time.sleep(0.2)
        for item in [r for r in running if r[2].poll() is not None]:
            running.remove(item)
            text, out, child, start = item
            if child.returncode != 0:
                for other in running:  # stopped by SIGTERM, an edlm train run checkpoints and resumes next time
                    other[2].terminate()
                    other[2].wait()
                raise EdlmError(f"`{text}` failed with status {child.returncode}; see {out}.")
            spent = json.loads(timings.read_text()) if timings.is_file() else {}
            spent[text] = spent.get(text, 0.0) + time.perf_counter() - start
            write_text_atomic(timings, json.dumps(spent, indent=1))


# ------------------------------------------------------------------ models and sample sets
@dataclass
class Models:
    """The loaded models (CPU, eval mode), the tokenizer, the test split Long[N, L], and per model its spec
    and sha256 fingerprint; glauber: {N: model}. `oracle` and `tokenizer` are what `judge` reads."""

    ar: object
    mdlm: object
    oracle: object
    ul2: object
    glauber: dict
    tokenizer: object
    test: torch.Tensor
    specs: dict
    fingerprints: dict


def load_models(specs: dict, rounds: tuple[int, ...], data: str | None) -> Models:
    """Load specs {"ar", "mdlm", "oracle", "ul2", N: run} and check that they fit together."""
    from edlm.data import load_split
    from edlm.loading.specs import load_spec
    from edlm.models.ul2 import UL2Model

    roles = {"ar": "causal", "mdlm": "denoiser", "oracle": "causal"}
    loaded = {name: load_spec(spec, device="cpu", role=roles.get(name), what=f"the {name} model")
              for name, spec in specs.items()}
    ul2 = loaded["ul2"]
    for name in ["ul2", *rounds]:
        require(isinstance(loaded[name].model, UL2Model), f"{specs[name]!r} is not a UL2-style model; pass a run "
                "of edlm train text8-small-ul2 or text8-small-glauber.")
        require(loaded[name].seq_len == ul2.seq_len, f"{specs[name]!r} was trained on {loaded[name].seq_len} "
                f"tokens and the UL2 run on {ul2.seq_len}; train both at one length.")
    for n in rounds:
        trained = loaded[n].config.train
        require(trained.objective == "glauber" and trained.glauber_rounds == n,
                f"{specs[n]!r} is not a Glauber diffusion model of {n} round(s); pass --glauber {n}=RUN of one.")
    vocab = {name: m.model.vocab_size for name, m in loaded.items()}
    require(len(set(vocab.values())) == 1, f"the models' vocabularies differ ({vocab}); pass text8 character models.")
    data_cfg = replace(ul2.config.data, path=data) if data else ul2.config.data
    return Models(loaded["ar"].model, loaded["mdlm"].model, loaded["oracle"].model, ul2.model,
                  {n: loaded[n].model for n in rounds}, ul2.tokenizer, load_split(data_cfg, "test"),
                  {str(k): v for k, v in specs.items()},
                  {str(k): fingerprint(m.directory) for k, m in loaded.items()})


def best(candidates: torch.Tensor, score: torch.Tensor, k: int) -> torch.Tensor:
    """Long[S, L]: per output the highest-scoring of its first k candidates; candidates Long[S, M, L]
    (batch-major), score Float64[S, M]."""
    pick = score[:, :k].argmax(dim=1)
    return candidates[torch.arange(candidates.shape[0]), pick]


def log_likelihoods(lm, samples: torch.Tensor) -> torch.Tensor:
    """Float64[R]: log p(x) of each row of samples Long[R, L] under the causal LM lm (nats)."""
    from edlm.metrics.generative import sequence_nll

    return -torch.tensor(sequence_nll(lm, samples.tolist(), 64), dtype=torch.float64)


# Sample sets (module doc): runner(models, the job's params, seed) -> a JSON-able dict with, per set of outputs,
# model invocations and wall time per sample and `judge`'s oracle bits, entropy and example.
def _reference(models: Models, p: dict, seed: int) -> dict:
    return dict(invocations=None, wall_s_per_sample=None, **judge(models, subset(models.test, p["n"])))


def _ar(models: Models, p: dict, seed: int) -> dict:
    """AR samples (the first of each pool) and AR best of m for every m of p["best_of"]."""
    from edlm.sampling import ar_sample

    n, pool, length = p["n"], max(p["best_of"]), models.test.shape[1]
    start = time.perf_counter()
    candidates = ar_sample(models.ar, n * pool, length, generator=torch.Generator().manual_seed(seed), progress=True)
    wall = (time.perf_counter() - start) / (n * pool)
    score = log_likelihoods(models.ar, candidates).view(n, pool)
    candidates = candidates.view(n, pool, length)
    return {str(m): dict(invocations=m * length, wall_s_per_sample=m * wall,
                         **judge(models, best(candidates, score, m))) for m in p["best_of"]}


def _mdlm(models: Models, p: dict, seed: int) -> dict:
    from edlm.sampling import sample

    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    samples, stats = sample(models.mdlm, p["n"], models.test.shape[1], p["steps"], generator=generator,
                            return_stats=True, progress=True)
    wall = (time.perf_counter() - start) / p["n"]
    return dict(invocations=stats.count("denoiser")[1] / p["n"], wall_s_per_sample=wall, **judge(models, samples))


def _causal(models: Models, p: dict, seed: int) -> dict:
    from edlm.sampling import ar_sample

    length = models.test.shape[1]
    start = time.perf_counter()
    samples = ar_sample(models.ul2, p["n"], length, generator=torch.Generator().manual_seed(seed), progress=True)
    return dict(invocations=length, wall_s_per_sample=(time.perf_counter() - start) / p["n"], **judge(models, samples))


def _glauber(models: Models, p: dict, seed: int) -> dict:
    """The Glauber model's causal samples and, from them, Glauber N best of K for every K of p["best_of"]."""
    from edlm.glauber_diffusion import fixed_order, reverse
    from edlm.sampling import ar_sample

    model, rounds, n, pool = models.glauber[p["rounds"]], p["rounds"], p["n"], max(p["best_of"])
    length = models.test.shape[1]
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    init = ar_sample(model, n * pool, length, generator=generator, progress=True)
    causal_wall = (time.perf_counter() - start) / (n * pool)
    perms, done = fixed_order(rounds, length), []
    for chunk in init.split(n):
        done.append(reverse(model, chunk, perms, generator=generator))
        print(f"glauber N={rounds}: {len(done) * n}/{n * pool} samples, {time.perf_counter() - start:.0f} s",
              flush=True)
    samples = torch.cat(done)
    wall = (time.perf_counter() - start) / (n * pool)
    score = log_likelihoods(model, samples).view(n, pool)
    samples = samples.view(n, pool, length)
    causal = init.view(n, pool, length)[:, 0]
    return dict(causal=dict(invocations=length, wall_s_per_sample=causal_wall, **judge(models, causal)),
                best_of={str(k): dict(invocations=k * (rounds + 1) * length, selection_passes=k if k > 1 else 0,
                                      wall_s_per_sample=k * wall, **judge(models, best(samples, score, k)))
                         for k in p["best_of"]})


def _forward(models: Models, p: dict, seed: int) -> dict:
    """The real test text of the reference row after the forward chain of the N-round model (its EMA weights
    as the frozen model F): draws of x_T ~ p_T, where its reverse chain is meant to start; `changed` is the
    fraction of characters that differ from the text."""
    from edlm.glauber_diffusion import fixed_order, forward

    text = subset(models.test, p["n"])
    start = time.perf_counter()
    x_t = forward(models.glauber[p["rounds"]], text, fixed_order(p["rounds"], text.shape[1]),
                  generator=torch.Generator().manual_seed(seed))
    return dict(invocations=p["rounds"] * text.shape[1], wall_s_per_sample=(time.perf_counter() - start) / p["n"],
                changed=(x_t != text).double().mean().item(), **judge(models, x_t))


RUNNERS = {"reference": _reference, "ar": _ar, "mdlm": _mdlm, "causal": _causal, "glauber": _glauber,
           "forward": _forward}


def plan(settings: Settings) -> dict[str, Job]:
    """Every sample set, by label: reference, ar, causal, mdlm-T, forward-N, glauber-N."""
    s, n = settings, settings.num_samples
    jobs = {"reference": Job("reference", dict(n=n), 0), "ar": Job("ar", dict(n=n, best_of=s.ar_best_of()), 0),
            "causal": Job("causal", dict(n=n), 0)}
    jobs |= {f"mdlm-{t}": Job("mdlm", dict(n=n, steps=t), 0) for t in s.mdlm_steps}
    jobs |= {f"forward-{r}": Job("forward", dict(n=n, rounds=r), 0) for r in s.rounds}
    return jobs | {f"glauber-{r}": Job("glauber", dict(n=n, rounds=r, best_of=sorted(s.best_of)), 0) for r in s.rounds}


# ------------------------------------------------------------------ the report
def bits(r: dict) -> str:
    return f"{r['oracle_bits']:.3f} ± {r['oracle_bits_se']:.3f}"


def tables(settings: Settings, results: dict, likelihood: list[dict]) -> dict:
    """The report's three tables as lists of rows {header: cell} (module doc); results: {label: sample set}."""
    from edlm.reports.report import fmt

    def row(method: str, r: dict) -> dict:
        return {"method": method, "model invocations / sample": fmt(r["invocations"]), "oracle bits/char": bits(r),
                "unigram entropy (nats)": f"{r['entropy_nats']:.3f}", "s / sample": fmt(r["wall_s_per_sample"])}

    samples = [row("real test text", results["reference"]), row("AR", results["ar"]["1"])]
    samples += [row(f"MDLM T={t}", results[f"mdlm-{t}"]) for t in settings.mdlm_steps]
    samples.append(row("UL2-style causal, before Glauber training", results["causal"]))
    iso = []
    for n in settings.rounds:
        g = results[f"glauber-{n}"]
        samples += [row(f"real test text after the forward chain N={n} (x_T)", results[f"forward-{n}"]),
                    row(f"UL2-style causal, after Glauber training N={n}", g["causal"]),
                    row(f"Glauber N={n}", g["best_of"]["1"])]
        for k in sorted(settings.best_of):
            mine, ar = g["best_of"][str(k)], results["ar"][str((n + 1) * k)]
            iso.append({"model invocations / output": ar["invocations"], "Glauber": f"N={n}, best of {k}",
                        "Glauber bits/char": bits(mine), "Glauber entropy": f"{mine['entropy_nats']:.3f}",
                        "selection passes": mine["selection_passes"], "AR": f"best of {(n + 1) * k}",
                        "AR bits/char": bits(ar), "AR entropy": f"{ar['entropy_nats']:.3f}"})
    return dict(samples=samples, isocompute=iso, likelihood=likelihood)


def markdown(payload: dict) -> str:
    from edlm.reports.report import markdown_table

    s, t, p = payload["settings"], payload["tables"], payload["provenance"]
    lines = ["# Glauber diffusion on text8: Table 5 of the Glauber-dynamics paper at CPU scale", "",
             f"{s['num_samples']} samples of {payload['seq_len']} characters per row (seed {s['seed']}), judged by "
             f"`{payload['models']['oracle']}` (oracle bits per character, mean ± standard error over samples). Model "
             "invocations per sample: L incremental calls for causal generation, one call per MDLM step that reveals "
             "something, (N + 1) L for Glauber N (L causal + N L infill calls). Models: "
             + ", ".join(f"{MODEL_NAMES.get(k, f'Glauber N={k}')} `{v}`" for k, v in payload["models"].items()
                         if k != "oracle") + ".", "",
             markdown_table(t["samples"], list(t["samples"][0])),
             "The forward-chain rows are the real test text after the N-round model's forward chain (N heat-bath "
             "sweeps of its EMA weights at t = 1): draws of x_T, where its reverse chain is meant to start "
             "(its causal mode is never trained on them). Characters changed: " + ", ".join(
                 f"{payload['sample_sets'][f'forward-{n}']['changed']:.1%} at N={n}" for n in s["rounds"]) + ".", "",
             "## Iso-compute best-of-N", "",
             "Glauber N best of K against AR best of (N + 1) K, the same number of model calls per output. The best "
             "candidate is the one with the highest log-likelihood under the model itself (AR: its own; Glauber: its "
             "causal mode's, which costs the K selection passes listed), never the oracle. A causal call reads one new "
             "token (KV cache), an infill call a whole sequence: at equal calls Glauber spends more FLOPs.", "",
             markdown_table(t["isocompute"], list(t["isocompute"][0])),
             f"## Likelihood of the first {s['nll_sequences']} test sequences", "",
             "`edlm eval nll` (bits per character; ± the Monte Carlo standard error). Only `exact` rows are NLLs; "
             "`upper_bound` rows bound the NLL from above.", "",
             markdown_table(t["likelihood"], list(t["likelihood"][0])),
             "## Training", ""]
    lines += [f"- `{c['command']}`: {fmt_s(c['wall_s'])}" if c["command"] else f"- `{c['run']}`: given"
              for c in payload["training"]]
    m = p["machine"]
    lines += ["", f"Command: `{p['command']}` at {p['git_revision']} on {m.get('cpu')} ({m.get('torch_threads')} "
              f"thread(s) per process, torch {m.get('torch')}); this invocation took {p['wall_time_s']} s.", ""]
    return "\n".join(lines)


def fmt_s(seconds: float | None) -> str:
    return "wall time not recorded" if seconds is None else f"{seconds / 60:.1f} min of wall time"


def sample_sets(models: Models, settings: Settings, cache: Cache) -> dict[str, dict]:
    """{label: result} of every sample set of `plan`, drawing (and caching) only the missing ones."""
    results = {}
    for label, job in plan(settings).items():
        if cache.get(job) is None:
            print(f"sample set {label} ...", flush=True)
            begin = time.perf_counter()
            result = RUNNERS[job.kind](models, job.params, settings.seed)
            cache.put(job, dict(result, job_wall_s=time.perf_counter() - begin))
        results[label] = cache.get(job)
    return results


def likelihoods(models: Models, settings: Settings, data: str | None, work: Path, run) -> list[dict]:
    """`edlm eval nll` of each model on the same sequences (cached reports under work/nll): table rows."""
    kinds = {"AR": ("ar", "causal"), "MDLM": ("mdlm", "mdlm"), "UL2-style causal": ("ul2", "causal")}
    kinds |= {f"Glauber N={n}": (str(n), "glauber") for n in settings.rounds}
    commands = {}
    for name, (key, kind) in kinds.items():
        argv = nll_command(models.specs[key], settings, data, kind)
        digest = hashlib.sha256(json.dumps([argv, models.fingerprints[key]]).encode()).hexdigest()[:12]
        stem = f"glauber-{key}" if key.isdigit() else key
        commands[name] = argv + ["--out", str(work / "nll" / f"{stem}-{digest}")]
    run([argv for argv in commands.values() if not Path(argv[-1] + ".json").is_file()])
    rows = []
    for name, argv in commands.items():
        r = json.loads(Path(argv[-1] + ".json").read_text())["results"]
        rows.append({"model": name, "bits/char": f"{r['bits_per_token']:.3f}", "±": f"{r['stderr'] / LN2:.3f}",
                     "kind": r["kind"], "sequences": r["num_sequences"], "command": "`edlm " + shlex.join(argv) + "`"})
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, spec in BUNDLED.items():
        parser.add_argument(f"--{name}", default=spec, help=f"model spec (default {spec})")
    parser.add_argument("--ul2", help="a finished UL2-style run (default: trained into WORK/ul2)")
    parser.add_argument("--glauber", action="append", default=[], metavar="N=RUN",
                        help="a finished Glauber run of N rounds (default: trained into WORK/glauber-N); repeatable")
    parser.add_argument("--rounds", type=int, nargs="+", help="Glauber rounds N (default 1 3)")
    parser.add_argument("--best-of", type=int, nargs="+", help="Glauber pool sizes K, 1 included (default 1 2 4)")
    parser.add_argument("--mdlm-steps", type=int, nargs="+", help="MDLM steps T (default 256)")
    parser.add_argument("--num-samples", type=int, help="outputs per method (default 16)")
    parser.add_argument("--nll-sequences", type=int, help="test sequences of the likelihoods (default 16)")
    parser.add_argument("--num-chains", type=int, help="forward chains per sequence of the Glauber bound (default 4)")
    parser.add_argument("--mdlm-num-t", type=int, help="times per sequence of the MDLM bound (default 16)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="added to every edlm train command (last, so it wins); repeatable")
    parser.add_argument("--data", help="the data directory (default: $EDLM_DATA)")
    parser.add_argument("--work", help="run directories and caches (default runs/glauber-text8)")
    parser.add_argument("--jobs", type=int, default=1, help="edlm commands run at once (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process (default 1)")
    parser.add_argument("--out", help="writes OUT.json and OUT.md (default benchmarks/results/glauber_text8)")
    parser.add_argument("--dry-run", action="store_true", help="tiny models and sizes, under a minute (module doc)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from edlm.reports.report import jsonable
    from edlm.util.outputs import check_output_path

    args = parse_args(argv)
    started = time.perf_counter()
    sizes = {k: (tuple(v) if isinstance(v, list) else v) for k in asdict(Settings())
             if (v := getattr(args, k)) is not None}
    settings = replace(DRY if args.dry_run else Settings(), **sizes)
    settings.check()
    require(args.jobs >= 1 and args.threads >= 1,
            f"--jobs {args.jobs} and --threads {args.threads} must be at least 1.")
    work = Path(args.work or ("runs/glauber-text8-dry-run" if args.dry_run else "runs/glauber-text8"))
    out = Path(args.out or (work / NAME if args.dry_run else RESULTS / NAME))
    check_output_path(out, option="--out", kind="stem")
    given = {}
    for item in args.glauber:
        n, _, run = item.partition("=")
        require(n.isdigit() and run, f"--glauber {item!r} is not N=RUN; write e.g. --glauber 1=runs/glauber-1.")
        given[int(n)] = run
    require(set(given) <= set(settings.rounds), f"--glauber names rounds {sorted(given)} outside --rounds "
            f"{list(settings.rounds)}; add them to --rounds.")
    torch.set_num_threads(args.threads)

    def run(commands: list[list[str]], jobs: int = args.jobs) -> None:
        run_commands(commands, jobs=jobs, logs=work / "logs", timings=work / "timings.json", threads=args.threads)

    specs = {"ar": args.ar, "mdlm": args.mdlm, "oracle": args.oracle, "ul2": args.ul2 or str(work / "ul2")}
    specs |= {n: given.get(n, str(work / f"glauber-{n}")) for n in settings.rounds}
    overrides = (DRY_OVERRIDES if args.dry_run else []) + args.override
    commands = training_commands(work, settings, args.data, overrides, Path(specs["ul2"]))
    trained = [key for key in commands if key not in given and not (key == "ul2" and args.ul2)]
    for stage in (["ul2"], list(settings.rounds)):
        run([commands[key] for key in stage if key in trained and not train_finished(commands[key][1:])])
    models = load_models(specs, settings.rounds, args.data)

    run_beside = partial(run, jobs=max(1, args.jobs - 1))  # this process draws samples meanwhile: one job fewer
    with ThreadPoolExecutor(max_workers=1) as background:
        pending = background.submit(likelihoods, models, settings, args.data, work, run_beside)
        results = sample_sets(models, settings, Cache(work / "cache", models.fingerprints, settings))
        likelihood = pending.result()

    spent = json.loads((work / "timings.json").read_text()) if (work / "timings.json").is_file() else {}
    training = [dict(run=specs[key], command="edlm " + shlex.join(argv) if key in trained else None,
                     wall_s=spent.get("edlm " + shlex.join(argv))) for key, argv in commands.items()]
    payload = dict(settings=asdict(settings), dry_run=args.dry_run, seq_len=models.test.shape[1], models=models.specs,
                   fingerprints=models.fingerprints, training=training, tables=tables(settings, results, likelihood),
                   sample_sets=results, provenance=provenance(started))
    write_results(out.name, jsonable(payload), markdown(payload), out.parent)
    print(f"wrote {out}.json and {out}.md", flush=True)
    return 0


if __name__ == "__main__":
    run_main(main, "glauber_text8")
