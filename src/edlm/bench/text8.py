"""The text8 benchmark: EDLM's Table 1 and Figure 1 at CPU scale (`edlm eval text8`, `benchmarks/text8.py`).

Models (model specs; by default the bundled text8-small checkpoints, see `edlm/checkpoints/README.md`):
an MDLM denoiser, an AR model (the AR baseline and the AR / carry-over AR energy), an NCE energy trained
on that MDLM, and an oracle AR model (another seed and data order) that only judges samples.

The work is a list of jobs, each cached as one JSON file under `cache` as soon as it finishes, keyed by
its settings and the sha256 of every checkpoint file; a rerun skips cached jobs, and `shard=(i, n)`
runs every n-th job of the plan ordered by estimated cost, starting at i, so n processes share the work.
The report (`edlm.bench.text8_report`) is written once every job is cached.

- table (Table 1): test bits per character. Exact AR NLL and the MDLM NELBO (an upper bound) on the
  whole test split; on an evenly spaced subset of `table_sequences` test sequences, the same two plus,
  for EDLM-coAR, EDLM-AR and EDLM-NCE, the paper's eq. 13 with the conservative (high) log Z
  estimator (kind "paper_eq13", not a bound) and the per-token-marginal estimate (kind "estimate").
  Standard errors are Monte Carlo errors over the times t (and log Z draws) given the sequences.
- generation (Figure 1a/1b): `num_samples` samples of `seq_len` characters from MDLM and from EDLM
  (each energy x k x window) at every number of steps, all from the same seed; each set judged by the
  oracle (NLL in bits per character and its standard error over samples, generative perplexity per
  character) and by unigram entropy (nats), with wall time and model rows (sequence-length forward
  passes: denoiser rows + energy rows) per sample.
- ablation (Figure 1c): EDLM with the AR energy, k x window, at `ablation_steps` steps (jobs shared
  with the generation grid where the settings coincide).
- SEDD (each score model given, by default the bundled text8-small-sedd on the absorbing graph and
  text8-small-sedd-uniform on the uniform one): its score-entropy bound (an upper bound) beside
  MDLM's in Table 1, and its samples with each of `sedd_predictors` ("analytic", "euler") at every
  number of steps in the generation grid, rows named by the model's graph. SEDD jobs carry their
  score model's sha256 (`Settings.sedd_models`, the first 16 hex digits) in their keys, so adding or
  dropping a SEDD model keeps every other job's cache entry.
- references: the AR model's own samples (KV cache, temperature 1; one row per sample) and the real
  test text, judged the same way.
- second judges (`add_judgements`, after every job is cached): every generation and reference row keeps
  its sample texts, and gains the fraction of their words found among the words of the train split
  (`real_words`) and, with a judging LM of any tokenizer (by default SmolLM2-135M, `gguf:smollm2-135m`),
  its NLL in bits per character of the texts (`lm_bits`, `lm_bits_se`; `edlm.metrics.judge`); each LM
  judgement is cached under the row's key and the judge's spec.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edlm.errors import require
from edlm.util.atomic import write_text_atomic

BENCH_VERSION = 2  # 2: generation and reference results keep their sample texts
BUNDLED = {"mdlm": "bundled:text8-small-mdlm", "ar": "bundled:text8-small-ar",
           "nce": "bundled:text8-small-nce", "oracle": "bundled:text8-small-oracle",
           "sedd": "bundled:text8-small-sedd,bundled:text8-small-sedd-uniform"}
ENERGIES = ("ar", "nce")
PREDICTORS = ("analytic", "euler")
LN2 = math.log(2)


@dataclass
class Settings:
    """Everything that decides the benchmark's numbers (module docstring)."""

    steps: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
    energies: tuple[str, ...] = ENERGIES
    ks: tuple[int, ...] = (4, 16)
    windows: tuple[float, ...] = (0.2, 1.0)
    num_samples: int = 16
    seq_len: int = 256
    ablation_steps: int = 32
    ablation_ks: tuple[int, ...] = (2, 4, 8, 16)
    ablation_windows: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    table_sequences: int = 64
    num_t: int = 4
    num_z: int = 16
    full_num_t: int = 2
    reference_samples: int = 64
    seed: int = 0
    sedd_models: tuple[str, ...] = ()  # sha256 of each SEDD score model (none: no SEDD rows)
    sedd_predictors: tuple[str, ...] = PREDICTORS

    def check(self) -> None:
        require(all(s >= 1 for s in self.steps) and self.steps, f"steps={self.steps} must be positive integers.")
        require(set(self.energies) <= set(ENERGIES), f"energies={self.energies} must be drawn from {ENERGIES}.")
        require(all(k >= 2 for k in self.ks + self.ablation_ks), "every k must be at least 2 (k=1 is MDLM).")
        require(all(0 < w <= 1 for w in self.windows + self.ablation_windows),
                "every window must lie in (0, 1] (window 0 is MDLM).")
        require(self.num_samples >= 2 and self.reference_samples >= 2,
                "num_samples and reference_samples must be at least 2 (a standard error needs two).")
        require(self.num_t >= 2 and self.full_num_t >= 2, "num_t and full_num_t must be at least 2.")
        require(self.num_z >= 2, f"num_z={self.num_z} must be at least 2.")
        require(self.table_sequences >= 2, f"table_sequences={self.table_sequences} must be at least 2.")
        require(set(self.sedd_predictors) <= set(PREDICTORS),
                f"sedd_predictors={self.sedd_predictors} must be drawn from {PREDICTORS}.")


@dataclass
class Models:
    """The loaded models (eval mode, one device), their specs, sha256 fingerprints (of the four models
    that salt every cache key), the SEDD score models by their sha256, and the test split."""

    mdlm: object
    ar: object
    nce: object
    oracle: object
    specs: dict
    fingerprints: dict
    tokenizer: object
    test: torch.Tensor  # Long[N, seq_len]
    sedd: dict = field(default_factory=dict)  # sha256 -> score model (docs/contracts.md, Score model)
    data: object = None  # the denoiser's DataConfig (text8), for the train split's words

    def sedd_model(self, tag: str):
        """The SEDD model whose sha256 starts with `tag`."""
        return next(model for digest, model in self.sedd.items() if digest.startswith(tag))

    def energy(self, name: str, carry_over: bool = False):
        from edlm.energy import AREnergy

        return self.nce if name == "nce" else AREnergy(self.ar, carry_over=carry_over)


@dataclass
class Job:
    """One cached unit of work: `kind` and `params` name it; `cost` orders the shards."""

    kind: str
    params: dict
    cost: float
    key: str = field(init=False)

    def __post_init__(self) -> None:
        self.key = json.dumps({"kind": self.kind, **self.params}, sort_keys=True)


def fingerprint(directory: Path) -> str:
    """sha256 over the safetensors files of a model directory (order-independent)."""
    digest = hashlib.sha256()
    for file in sorted(directory.glob("*.safetensors")):
        digest.update(file.name.encode() + hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


ROLES = {"mdlm": "denoiser", "ar": "causal", "nce": "nce", "oracle": "causal"}


def load_models(specs: dict, *, device=None, data_path: str = "", options: dict | None = None) -> Models:
    """Load the four models of `specs` ({"mdlm", "ar", "nce", "oracle"} -> model spec, any spec kind of
    `edlm.loading.specs` whose role fits), the SEDD score models of the list `specs["sedd"]` (optional),
    and the test split. options: the name of each role's value in messages (e.g. {"mdlm":
    "--denoiser"}; default "the mdlm model", ...)."""
    from edlm.data import load_split
    from edlm.energy import check_compatible
    from edlm.loading.specs import load_spec
    from edlm.loading.tokenizer_specs import same_tokenizer

    what = {name: f"the {name} model" for name in (*ROLES, "sedd")} | dict(options or {})
    loaded = {name: load_spec(specs[name], device=device, role=role, what=what[name]) for name, role in ROLES.items()}
    mdlm = loaded["mdlm"]
    require(mdlm.config is not None, f"{what['mdlm']} {specs['mdlm']!r} carries no edlm data config; pass an edlm "
            "text8 model.")
    for name in ("ar", "nce", "oracle"):
        check_compatible(mdlm.model, loaded[name].model)
        difference = same_tokenizer(mdlm.tokenizer, loaded[name].tokenizer)
        require(difference is None, f"{what[name]} {specs[name]!r} has another tokenizer than the denoiser "
                f"({difference}); pass text8 character models.")
    sedd = {}
    for spec in specs.get("sedd", ()):
        score = load_spec(spec, device=device, role="score", what=what["sedd"])
        difference = same_tokenizer(mdlm.tokenizer, score.tokenizer)
        require(difference is None, f"{what['sedd']} {spec!r} has another tokenizer than the denoiser "
                f"({difference}); pass a text8 character model.")
        sedd[_fingerprint(score)] = score.model
    data = mdlm.config.data
    require(data.corpus == "text8",
            f"the denoiser {specs['mdlm']!r} was trained on {data.corpus}, not text8; pass a text8 model.")
    if data_path:
        data.path = data_path
    test = load_split(data, "test")
    fingerprints = {name: _fingerprint(m) for name, m in loaded.items()}
    return Models(mdlm.model, loaded["ar"].model, loaded["nce"].model, loaded["oracle"].model, dict(specs),
                  fingerprints, mdlm.tokenizer, test, sedd, data)


def _fingerprint(loaded) -> str:
    """sha256 of a loaded model's weight files, or of its spec when it has no directory."""
    if loaded.directory is not None:
        return fingerprint(loaded.directory)
    return hashlib.sha256(loaded.spec.encode()).hexdigest()


def subset(test: torch.Tensor, n: int) -> torch.Tensor:
    """n evenly spaced sequences of the test split: Long[n, L]."""
    require(n <= test.shape[0], f"{n} sequences exceed the {test.shape[0]} test sequences; ask for fewer.")
    return test[torch.linspace(0, test.shape[0] - 1, n).round().long()]


def plan(settings: Settings) -> list[Job]:
    """Every job of the benchmark, without duplicates."""
    s = settings
    jobs = [Job("likelihood", dict(model="AR", estimator="exact", data="full"), 1.0),
            Job("likelihood", dict(model="MDLM", estimator="nelbo", data="full", num_t=s.full_num_t), s.full_num_t),
            Job("likelihood", dict(model="AR", estimator="exact", data="subset", n=s.table_sequences), 0.1),
            Job("likelihood", dict(model="MDLM", estimator="nelbo", data="subset", n=s.table_sequences,
                                   num_t=4 * s.num_t), 0.2)]
    per_row = s.table_sequences * s.num_t / 1000
    for energy in ("coar", "ar", "nce"):
        for estimator, rows in (("paper_eq13", 1 if energy == "coar" else s.num_z + 1), ("marginal", 2 * s.num_z)):
            jobs.append(Job("likelihood", dict(model=f"EDLM-{energy}", estimator=estimator, data="subset",
                                               n=s.table_sequences, num_t=s.num_t, num_z=s.num_z), per_row * rows))
    jobs.append(Job("reference", dict(source="ar", n=s.reference_samples, seq_len=s.seq_len), 0.3))
    jobs.append(Job("reference", dict(source="data", n=s.reference_samples, seq_len=s.seq_len), 0.1))
    configs = [("mdlm", 1, 0.0, t) for t in s.steps]
    configs += [(e, k, w, t) for e in s.energies for k in s.ks for w in s.windows for t in s.steps]
    configs += [("ar", k, w, s.ablation_steps) for k in s.ablation_ks for w in s.ablation_windows]
    for energy, k, window, steps in dict.fromkeys(configs):
        cost = s.num_samples * steps * (1 + k * window) / 1000
        jobs.append(Job("generation", dict(energy=energy, k=k, window=window, steps=steps, n=s.num_samples,
                                           seq_len=s.seq_len), cost))
    return jobs + sedd_jobs(s)


def sedd_jobs(s: Settings) -> list[Job]:
    """The rows of every SEDD model of `s.sedd_models` (module docstring)."""
    jobs = []
    for tag in (digest[:16] for digest in s.sedd_models):
        jobs += [Job("likelihood", dict(model="SEDD", estimator="nelbo", data="full", num_t=s.full_num_t, sedd=tag),
                     s.full_num_t),
                 Job("likelihood", dict(model="SEDD", estimator="nelbo", data="subset", n=s.table_sequences,
                                        num_t=4 * s.num_t, sedd=tag), 0.2)]
        jobs += [Job("generation", dict(energy="sedd", predictor=predictor, k=1, window=0.0, steps=steps,
                                        n=s.num_samples, seq_len=s.seq_len, sedd=tag), s.num_samples * steps / 1000)
                 for predictor in s.sedd_predictors for steps in s.steps]
    return jobs


def method_name(energy: str, k: int, window: float, predictor: str = "", graph: str = "") -> str:
    """'MDLM', e.g. 'SEDD absorb analytic' or e.g. 'EDLM-AR k=4 w=0.2'."""
    if energy == "sedd":
        return f"SEDD {graph} {predictor}"
    return "MDLM" if energy == "mdlm" else f"EDLM-{energy.upper()} k={k} w={window:g}"


@torch.no_grad()
def judge(models: Models, samples: torch.Tensor) -> dict:
    """Oracle NLL (bits per character, mean over samples and its standard error), generative perplexity
    per character, mean unigram entropy (nats), the first sample's text and every sample's text, for
    samples Long[N, L]."""
    from edlm.metrics.generative import bits_per_token, unigram_entropy

    rows = samples.cpu().tolist()
    per_sample = torch.tensor(bits_per_token(models.oracle, rows, 64), dtype=torch.float64)
    texts = [models.tokenizer.decode(r) for r in rows]
    return dict(_mean_se("oracle_bits", per_sample), gen_ppl=math.exp(float(per_sample.mean()) * LN2),
                entropy_nats=sum(unigram_entropy(r) for r in rows) / len(rows), example=texts[0], samples=texts)


def _mean_se(name: str, values: torch.Tensor) -> dict:
    """{name: mean, name_se: its standard error} of Float64[N] values."""
    return {name: float(values.mean()), f"{name}_se": float(values.std() / math.sqrt(values.numel()))}


@dataclass
class Judges:
    """The second judges of stored samples: the distinct words of the train split and, unless `lm` is
    None, a judging causal LM (`LoadedModel` of any tokenizer) named by its spec."""

    vocabulary: set
    lm: object = None
    spec: str = ""


def load_judges(models: Models, spec: str, device=None) -> Judges:
    """The train split's words (decoded by the denoiser's tokenizer) and the LM of `spec` ("none": no LM)."""
    from edlm.data import load_split
    from edlm.metrics.judge import load_judge
    from edlm.metrics.words import word_vocabulary

    vocabulary = word_vocabulary(models.tokenizer.decode(load_split(models.data, "train").flatten().tolist()))
    if spec == "none":
        return Judges(vocabulary)
    return Judges(vocabulary, load_judge(spec, device, option="--judge"), spec)


def add_judgements(results: dict[str, dict], cache: "Cache", judges: Judges, log=print) -> None:
    """Add `real_words` and, with an LM judge, `lm_bits` and `lm_bits_se` to every result in `results`
    ({job key: result}) that holds sample texts (module docstring); LM judgements are cached."""
    from edlm.metrics.judge import judge_text_bits_per_char
    from edlm.metrics.words import real_word_fraction

    for key, result in results.items():
        texts = result.get("samples")
        if texts is None:
            continue
        result["real_words"] = real_word_fraction(" ".join(texts), judges.vocabulary)
        if judges.lm is None:
            continue
        job = Job("judgement", dict(of=key, judge=judges.spec), 0.0)
        scored = cache.get(job)
        if scored is None:
            bits = judge_text_bits_per_char(judges.lm, texts)
            scored = _mean_se("lm_bits", torch.tensor(bits, dtype=torch.float64))
            cache.put(job, scored)
            log(f"judged by {judges.spec}: {key} -> {scored['lm_bits']:.4f} bits/char")
        result.update(scored)


def _likelihood(models: Models, p: dict, settings: Settings) -> dict:
    from edlm.likelihood import nelbo

    data = models.test if p["data"] == "full" else subset(models.test, p["n"])
    g = torch.Generator().manual_seed(settings.seed)
    extra = {}
    if p["model"] == "AR":
        result = nelbo(models.ar, data, batch_size=64, progress=True)
    elif p["model"] == "MDLM":
        result = nelbo(models.mdlm, data, num_t=p["num_t"], generator=g, batch_size=64, progress=True)
    elif p["model"] == "SEDD":
        model = models.sedd_model(p["sedd"])
        result = nelbo(model, data, num_t=p["num_t"], generator=g, batch_size=64, progress=True)
        extra = dict(graph=model.graph)
    else:
        name = p["model"].split("-", 1)[1]
        energy = models.energy("ar", carry_over=True) if name == "coar" else models.energy(name)
        result = nelbo(models.mdlm, data, energy=energy, num_t=p["num_t"], num_z=p["num_z"], generator=g,
                            batch_size=4, estimator=p["estimator"], progress=True)
    tokens = data.numel()
    mc_se = math.sqrt(float(torch.nan_to_num(result.stderr).pow(2).sum())) / tokens
    return dict(bpc=float(result.nats.sum()) / tokens / LN2, bpc_se=mc_se / LN2, kind=result.kind,
                sequences=data.shape[0], tokens=tokens, **extra)


def _reference(models: Models, p: dict, settings: Settings) -> dict:
    from edlm.sampling import ar_sample

    if p["source"] == "data":
        return dict(wall_s_per_sample=None, model_rows_per_sample=None, **judge(models, subset(models.test, p["n"])))
    g = torch.Generator().manual_seed(settings.seed)
    start = time.perf_counter()
    samples = ar_sample(models.ar, p["n"], p["seq_len"], generator=g, progress=True)
    wall = time.perf_counter() - start
    return dict(wall_s_per_sample=wall / p["n"], model_rows_per_sample=1.0, **judge(models, samples))


def _generation(models: Models, p: dict, settings: Settings) -> dict:
    from edlm.sampling import sample

    g = torch.Generator().manual_seed(settings.seed)
    start = time.perf_counter()
    if p["energy"] == "sedd":
        score_model = models.sedd_model(p["sedd"])
        graph = score_model.graph
        samples, stats = sample(score_model, p["n"], p["seq_len"], p["steps"], predictor=p["predictor"], generator=g,
                                return_stats=True, progress=True)
    else:
        graph = ""
        energy = None if p["energy"] == "mdlm" else models.energy(p["energy"])
        samples, stats = sample(models.mdlm, p["n"], p["seq_len"], p["steps"], energy=energy, k=p["k"],
                                window=p["window"], generator=g, return_stats=True, progress=True)
    wall = time.perf_counter() - start
    (calls_d, rows_d), (calls_e, rows_e) = stats.count("denoiser"), stats.count("energy")
    ess = stats.ess[~stats.ess.isnan()]
    return dict(method=method_name(p["energy"], p["k"], p["window"], p.get("predictor", ""), graph),
                wall_s_per_sample=wall / p["n"],
                denoiser_rows_per_sample=rows_d / p["n"], energy_rows_per_sample=rows_e / p["n"],
                model_rows_per_sample=(rows_d + rows_e) / p["n"], batched_calls=calls_d + calls_e,
                ess_mean=float(ess.mean()) if ess.numel() else None, **judge(models, samples))


RUNNERS = {"likelihood": _likelihood, "reference": _reference, "generation": _generation}


class Cache:
    """Job results as JSON files in a directory, keyed by the job key and the checkpoints' fingerprints."""

    def __init__(self, directory, fingerprints: dict, settings: Settings) -> None:
        self.directory = Path(directory).expanduser()
        self.salt = json.dumps({"version": BENCH_VERSION, "fingerprints": fingerprints, "seed": settings.seed},
                               sort_keys=True)

    def path(self, job: Job) -> Path:
        return self.directory / (hashlib.sha256((self.salt + job.key).encode()).hexdigest()[:24] + ".json")

    def get(self, job: Job) -> dict | None:
        file = self.path(job)
        return json.loads(file.read_text())["result"] if file.is_file() else None

    def put(self, job: Job, result: dict) -> None:
        write_text_atomic(self.path(job), json.dumps({"job": job.key, "result": result}, indent=1))


def run_jobs(models: Models, settings: Settings, cache: Cache, *, shard: tuple[int, int] = (0, 1),
             log=print) -> dict[str, dict] | None:
    """Run this shard's pending jobs; return {job key: result} when every job is cached, else None."""
    jobs = plan(settings)
    mine = [j for j in sorted(jobs, key=lambda j: -j.cost)[shard[0]::shard[1]] if cache.get(j) is None]
    pending = sum(cache.get(j) is None for j in jobs)
    log(f"text8 benchmark: {len(jobs)} jobs, {pending} pending, {len(mine)} of them in shard {shard[0]}/{shard[1]}")
    for number, job in enumerate(mine, 1):
        start = time.perf_counter()
        result = RUNNERS[job.kind](models, job.params, settings)
        result["job_wall_s"] = time.perf_counter() - start
        result["threads"] = torch.get_num_threads()
        cache.put(job, result)
        log(f"[{number}/{len(mine)}] {job.key} -> {result.get('bpc', result.get('oracle_bits')):.4f} "
            f"({result['job_wall_s']:.0f} s)")
    results = {j.key: cache.get(j) for j in jobs}
    return results if all(r is not None for r in results.values()) else None
