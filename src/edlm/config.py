"""Run configuration: dataclasses, YAML recipes and `key=value` overrides.

The dataclass defaults are the one source of truth; a recipe only lists what it changes. Overrides
use dotted keys (`model.n_layers=2`, `train.lr=3e-4`); a bare key (`lr=3e-4`, `objective=nce`) is
accepted when exactly one section has it. Values are parsed as YAML scalars.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from edlm.data import CORPORA
from edlm.errors import EdlmError, require
from edlm.models.config import ModelConfig
from edlm.models.registry import KINDS
from edlm.models.sedd import GRAPHS, NOISES
from edlm.util.device import PRECISIONS

LR_SCHEDULES = ("constant", "cosine", "wsd")
GLAUBER_LOSSES = ("exact", "seed")


@dataclass
class DataConfig:
    """Where tokens come from.

    corpus: "text8" (character level, 27 symbols), "text" (local text files), "hf" (a Hugging Face dataset)
        or "puzzles" (Sudoku or Zebra puzzles, one per row: `edlm.data.puzzles`).
    path: for text8, a directory (or file) holding `text8`, `text8.zip` or `text8/text8_prefix.txt`;
        empty means $EDLM_DATA, then download of the canonical text8.zip into the cache directory.
        For "text", one file or a directory with train/valid/test files; for "puzzles", a directory
        that `edlm data puzzles` wrote.
    tokenizer: "char" (text8), "gpt2" (tiktoken r50k_base), "tiktoken:FILE", "hf:NAME_OR_PATH", or for
        puzzles "puzzle:SHAPE:FORMAT" (such as puzzle:sudoku-6x6:cells).
    seq_len: tokens per training sequence (chunk length for text8, wrap length for token corpora, the
        format's length for puzzles).
    """

    corpus: str = "text8"
    path: str = ""
    tokenizer: str = "char"
    seq_len: int = 256
    hf_name: str = ""
    hf_config: str = ""
    text_field: str = "text"
    valid_fraction: float = 0.01


@dataclass
class TrainConfig:
    """How to train. batch_size is the global batch (sequences per optimizer step, all processes and
    accumulation steps together); grad_accum splits each process's share into micro-batches.
    lr_schedule: "constant", "cosine" (to 0 at `steps`) or "wsd" (warm-up, stable, decay: constant,
    then linear to 0 over the last `decay_fraction` of `steps`), after `warmup_steps` of linear warm-up.
    ema: EMA decay of the weights that validation, sampling and `load_model` use.
    precision: "auto" (bf16 autocast on CUDA, fp32 elsewhere), "bf16" (CUDA only) or "fp32".
    log_every / eval_every / save_every: steps between metrics rows, validations on `eval_batches`
    fixed validation batches, and checkpoints (0 turns each off; the last step always logs and saves).
    keep_last: checkpoints kept in out_dir/checkpoints (0 keeps all).
    init_from: a checkpoint spec whose weights start the run (NCE: the frozen denoiser).
    compile: run the trained model through `torch.compile` (compiled in place, so checkpoints, EMA
    and state-dict names are those of the plain model); the first steps pay the compilation.
    graph, noise: the score-entropy (sedd) objective's graph, "absorb" or "uniform", and noise,
    "loglinear" (with `eps`) or "geometric" (SEDD's sigma from 1e-4 to 20); the model trained records
    them, so samplers and `edlm.nelbo` use the same (`edlm.diffusion.sedd`).
    glauber_rounds, glauber_snapshots, glauber_loss: Glauber diffusion (`train.objective=glauber`,
    `edlm.train.glauber_objective`): rounds N of the forward chain (T = N * data.seq_len steps),
    snapshot times per chain (each one reverse-step loss), and the loss, "exact" (cross-entropy on the
    pre-step token: the exact reverse) or "seed" (the score entropy of the last forward step's ratios,
    whose optimum is the frozen model's own conditional)."""

    objective: str = "mdlm"
    steps: int = 1000
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 3e-4
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_steps: int = 100
    lr_schedule: str = "constant"
    decay_fraction: float = 0.2
    grad_clip: float = 1.0
    ema: float = 0.9999
    schedule: str = "loglinear"
    eps: float = 1e-3
    t_min: float = 1e-3
    seed: int = 0
    out_dir: str = "runs/default"
    log_every: int = 10
    eval_every: int = 500
    eval_batches: int = 8
    save_every: int = 500
    keep_last: int = 2
    precision: str = "auto"
    device: str = "auto"
    init_from: str = ""
    nce_negatives: int = 1
    nce_t_min: float = 0.0
    graph: str = "absorb"
    noise: str = "loglinear"
    glauber_rounds: int = 1
    glauber_snapshots: int = 8
    glauber_loss: str = "exact"
    compile: bool = False


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        check_run_config(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> "RunConfig":
        require(isinstance(raw, dict), f"a run config must be a mapping, got {type(raw).__name__}.")
        unknown = set(raw) - {"model", "data", "train"}
        require(not unknown, f"unknown config sections {sorted(unknown)}; use model, data and train.")
        parts = {}
        for name, kind in (("model", ModelConfig), ("data", DataConfig), ("train", TrainConfig)):
            values = raw.get(name) or {}
            known = {f.name for f in dataclasses.fields(kind)}
            bad = set(values) - known
            require(not bad, f"unknown keys {sorted(bad)} in section {name!r}; known keys: {sorted(known)}.")
            defaults = kind()
            parts[name] = kind(**{key: _typed(f"{name}.{key}", value, getattr(defaults, key))
                                  for key, value in values.items()})
        return cls(**parts)


def _at_least(low):
    return (lambda v: v >= low), f"at least {low}"


def _between(low: float, high: float, *, low_open: bool = False, high_open: bool = True):
    def test(v):
        return (low < v if low_open else low <= v) and (v < high if high_open else v <= high)
    return test, f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def _one_of(names):
    return (lambda v: v in names), f"one of {', '.join(sorted(names))}"


POSITIVE = ((lambda v: v > 0), "positive")
# (section, key, (test, allowed values in words)) for every data and train field with a limited range;
# the model section checks its own fields (`ModelConfig.__post_init__`).
RULES = [
    ("data", "corpus", _one_of(CORPORA)),
    ("data", "seq_len", _at_least(1)),
    ("data", "valid_fraction", _between(0, 1, low_open=True)),
    ("train", "objective", _one_of(KINDS)),
    *[("train", key, _at_least(1)) for key in ("steps", "batch_size", "grad_accum", "eval_batches", "nce_negatives")],
    *[("train", key, _at_least(0)) for key in ("warmup_steps", "log_every", "eval_every", "save_every", "keep_last",
                                               "weight_decay", "grad_clip")],
    ("train", "lr", POSITIVE),
    ("train", "lr_schedule", _one_of(LR_SCHEDULES)),
    ("train", "precision", _one_of(PRECISIONS)),
    *[("train", key, _between(0, 1)) for key in ("beta1", "beta2", "ema", "t_min", "nce_t_min", "decay_fraction")],
    ("train", "eps", _between(0, 1, low_open=True)),
    ("train", "compile", ((lambda v: isinstance(v, bool)), "true or false")),
    ("train", "graph", _one_of(GRAPHS)),
    ("train", "noise", _one_of(NOISES)),
    *[("train", key, _at_least(1)) for key in ("glauber_rounds", "glauber_snapshots")],
    ("train", "glauber_loss", _one_of(GLAUBER_LOSSES)),
]


def check_run_config(cfg: RunConfig) -> None:
    """Raise EdlmError (one sentence, `section.key=value` and the allowed values) for the first field
    of `cfg` outside its range; runs whenever a RunConfig is built, so before anything is written."""
    for section, key, (test, allowed) in RULES:
        value = getattr(getattr(cfg, section), key)
        finite = not isinstance(value, float) or math.isfinite(value)
        require(finite and test(value), f"{section}.{key}={value!r} must be {allowed}.")
    require(bool(cfg.train.out_dir), "train.out_dir is empty; set train.out_dir=DIR, the run directory.")
    require(cfg.data.seq_len <= cfg.model.max_seq_len,
            f"data.seq_len={cfg.data.seq_len} exceeds model.max_seq_len={cfg.model.max_seq_len}; "
            "raise model.max_seq_len or lower data.seq_len.")


def _typed(key: str, value, default):
    """`value` as the type of the field's default (YAML reads `3e-4` as a string, `1` as an int)."""
    kind = type(default)
    if kind is bool:
        require(isinstance(value, bool), f"{key}={value!r} must be true or false.")
        return value
    if kind in (int, float) and not isinstance(value, bool):
        try:
            converted = kind(value)
        except (TypeError, ValueError):
            converted = None
        require(converted is not None and (kind is float or float(value) == converted),
                f"{key}={value!r} must be {'an integer' if kind is int else 'a number'}.")
        return converted
    require(isinstance(value, kind), f"{key}={value!r} must be a {kind.__name__}.")
    return value


def recipe_names() -> list[str]:
    """Names of the recipes that ship with edlm."""
    return sorted(p.name[:-5] for p in resources.files("edlm.recipes").iterdir() if p.name.endswith(".yaml"))


def read_recipe(name_or_path: str) -> dict:
    """The raw mapping of a shipped recipe (by name) or of a YAML file (by path)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        require(path.is_file(), f"recipe file {name_or_path!r} does not exist; pass a YAML file or one of {recipe_names()}.")
        text = path.read_text()
    else:
        require(name_or_path in recipe_names(), f"unknown recipe {name_or_path!r}; use one of {recipe_names()} or a YAML file.")
        text = resources.files("edlm.recipes").joinpath(name_or_path + ".yaml").read_text()
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise EdlmError(f"recipe {name_or_path!r} is not valid YAML ({err}); fix the file.") from None


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply `key=value` strings to a raw recipe mapping (a new mapping is returned)."""
    raw = {k: dict(v or {}) for k, v in raw.items()}
    sections = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
    for item in overrides:
        require("=" in item, f"override {item!r} is not key=value; write for example train.lr=3e-4.")
        key, value = item.split("=", 1)
        if "." in key:
            section, name = key.split(".", 1)
            require(section in sections, f"override {item!r}: unknown section {section!r}; use model, data or train.")
        else:
            owners = [s for s, kind in sections.items() if key in {f.name for f in dataclasses.fields(kind)}]
            require(len(owners) == 1, f"override {item!r}: key {key!r} is "
                    + ("unknown" if not owners else f"in several sections {owners}") + "; write section.key=value.")
            section, name = owners[0], key
        known = {f.name for f in dataclasses.fields(sections[section])}
        require(name in known, f"override {item!r}: {section} has no key {name!r}; known keys: {sorted(known)}.")
        raw.setdefault(section, {})[name] = yaml.safe_load(value) if value else ""
    return raw


def load_config(recipe: str, overrides: list[str] | None = None) -> RunConfig:
    """RunConfig from a recipe name or YAML path plus `key=value` overrides."""
    return RunConfig.from_dict(apply_overrides(read_recipe(recipe), overrides or []))


def read_run_json(file: Path, *, fmt: str, versions: tuple[int, ...], required: tuple[str, ...], what: str,
                  writer: str) -> tuple[dict, RunConfig]:
    """(contents, RunConfig of its "config") of a versioned JSON file that edlm wrote (a checkpoint's
    state.json, a pretrained directory's edlm_config.json); EdlmError naming the file otherwise.

    fmt/versions: the expected "format" value and the "version" values this edlm reads; required: keys
    that must be present besides "config"; what: the file's kind for messages ("checkpoint state");
    writer: what writes such files ("edlm train"), named in the fix."""
    import json

    try:
        meta = json.loads(Path(file).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise EdlmError(f"{what} {file} is corrupt ({err}); write it again with {writer}.") from None
    found = meta.get("format") if isinstance(meta, dict) else None
    require(found == fmt, f"{file} is not an edlm {what} (format {found!r}); pass a directory written by {writer}.")
    require(meta.get("version") in versions, f"{file} has {what} format version {meta.get('version')}, this edlm "
            f"reads versions {', '.join(map(str, versions))}; use a matching edlm release.")
    missing = [key for key in ("config", *required) if key not in meta]
    require(not missing, f"{what} {file} lacks {missing}; it is corrupt, write it again with {writer}.")
    try:
        return meta, RunConfig.from_dict(meta["config"])
    except (EdlmError, TypeError) as err:
        raise EdlmError(f"{file} holds a config this edlm cannot read ({err}); use a matching edlm release.") from None
