"""Plots of sample quality (EDLM Figures 1a/1b/1c and 4): PNG files from a list of records.

Records file (`edlm eval plot RESULTS.json --out STEM`): a JSON object `{"records": [...]}` (an
optional `"title"` is used as the figures' title) or a bare JSON list of records. A record is one
evaluated sample set, an object with:

- `method` (string, required): the line it belongs to, e.g. "MDLM", "EDLM-AR k=4", "AR", "data".
- `steps` (integer >= 1): sampling steps T; a record without steps is a reference unless it says
  `"reference": false`.
- `reference` (bool, optional): drawn as a horizontal line (the AR model, real text) instead of
  as a point of a curve. Default: true exactly when `steps` is missing or null.
- `wall_time` (seconds > 0, optional): time to generate the sample set (e.g. the `median_s` of
  `edlm eval latency`).
- `model_calls` (a finite number > 0, optional): the cost of one generated sequence counted in
  sequence-length forward rows, i.e. denoiser rows + energy rows per sample (a hardware-free
  stand-in for wall time; it may be fractional, e.g. an average over samples).
- quality, at least one of `gen_ppl` (generative perplexity under the oracle LM, >= 1; the `ppl`
  of `edlm eval gen`) and `oracle_nll` (the oracle's NLL in nats per token, >= 0); when both are
  given they must agree (gen_ppl = exp(oracle_nll)).
- entropy, optional: `entropy` (unigram entropy in nats, the `entropy_nats` of `edlm eval gen`)
  or `entropy_bits`; when both are given they must agree.
Other keys (k, window, seed, ...) are allowed and ignored. Records with the same method and steps
(e.g. several seeds) are averaged; their sample standard deviation becomes an error bar.

Figures (STEM-steps.png, STEM-walltime.png, STEM-calls.png, STEM-entropy.png; each only
when some record has what it needs): quality against steps, against wall time and against model
calls, one line per method (points labelled with T on the time and calls plots), references as
dashed horizontal lines (and, on the wall-time and calls plots, a star at a reference's own wall
time or model calls); and unigram entropy against quality, one line per method through its step
counts, references as stars.

`plot_ablation_heatmap` draws a separate figure (Figure 1c, e.g. oracle NLL over k x window) from
cells `{"row": number, "col": number, "value": number}`; it is not part of `plot_all`.

Rendering uses matplotlib's Agg canvas directly (no pyplot state), fixed sizes, colours in order of
first appearance and no timestamps, so the same records give byte-identical PNGs with one
matplotlib version. Files are written atomically.
"""

from __future__ import annotations

import io
import json
import math
import statistics
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

from edlm.errors import EdlmError, require
from edlm.util.atomic import write_bytes_atomic

METRICS = ("gen_ppl", "oracle_nll")
ENTROPY_UNITS = ("nats", "bits")
AXIS = {"gen_ppl": "generative perplexity (oracle LM, unitless)", "oracle_nll": "oracle NLL (nats / token)"}
STEPS_AXIS = "sampling steps T"
TIME_AXIS = "wall time to generate the samples (s)"
CALLS_AXIS = "model calls per sample (sequence-length forward rows)"
HEATMAP_CMAP = "viridis_r"  # lower values (better NLL) are brighter (yellow), higher are darker (purple)
FIGSIZE, DPI = (6.4, 4.4), 100


@dataclass(frozen=True)
class Record:
    """One validated record; `nll` in nats per token, `entropy` in nats (None when not given)."""

    method: str
    steps: int | None
    wall_time: float | None
    nll: float
    entropy: float | None
    reference: bool
    model_calls: float | None = None

    def quality(self, metric: str) -> float:
        return math.exp(self.nll) if metric == "gen_ppl" else self.nll


def _number(raw: dict, key: str, where: str, low: float, strict: bool = False) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if strict else value >= low)
    require(ok, f"{where}: {key}={value!r} must be a finite number {'>' if strict else '>='} {low:g}; fix the record.")
    return float(value)


def _agree(a: float | None, b: float | None, what: str, where: str) -> None:
    require(a is None or b is None or abs(a - b) <= 1e-6 * max(1.0, abs(a)),
            f"{where}: the record's {what} disagree ({a!r} vs {b!r}); keep one of them.")


def validate_records(records) -> list[Record]:
    """Check raw records (see the module docstring) and return them as `Record`s; EdlmError otherwise."""
    require(isinstance(records, (list, tuple)), f"records must be a list of objects, got {type(records).__name__}.")
    require(len(records) > 0, "there are no records to plot; pass at least one record with a method and a quality.")
    out = []
    for i, raw in enumerate(records):
        where = f"record {i}"
        require(isinstance(raw, dict), f"{where} is {type(raw).__name__}, not an object with method and gen_ppl.")
        method = raw.get("method")
        require(isinstance(method, str) and method.strip() != "",
                f"{where}: method={method!r} must be a non-empty string naming its line.")
        where = f"record {i} ({method})"
        steps = raw.get("steps")
        require(steps is None or (isinstance(steps, Integral) and not isinstance(steps, bool) and steps >= 1),
                f"{where}: steps={steps!r} must be an integer >= 1 or absent.")
        reference = raw.get("reference", steps is None)
        require(isinstance(reference, bool), f"{where}: reference={reference!r} must be true or false.")
        ppl = _number(raw, "gen_ppl", where, 1.0)
        nll = _number(raw, "oracle_nll", where, 0.0)
        require(ppl is not None or nll is not None, f"{where} has no quality; give gen_ppl or oracle_nll.")
        log_ppl = math.log(ppl) if ppl is not None else None
        _agree(log_ppl, nll, "log(gen_ppl) and oracle_nll", where)
        nats = _number(raw, "entropy", where, 0.0)
        bits = _number(raw, "entropy_bits", where, 0.0)
        bits_nats = bits * math.log(2) if bits is not None else None
        _agree(nats, bits_nats, "entropy (nats) and entropy_bits", where)
        out.append(Record(method.strip(), None if steps is None else int(steps),
                          _number(raw, "wall_time", where, 0.0, strict=True),
                          nll if nll is not None else log_ppl, nats if nats is not None else bits_nats, reference,
                          model_calls=_number(raw, "model_calls", where, 0.0, strict=True)))
    return out


def load_records(path) -> tuple[list[Record], dict]:
    """Read and validate a records file: ({"records": [...], ...} or [...]) -> (records, other keys)."""
    path = Path(path)
    require(path.is_file(), f"records file {str(path)!r} does not exist; pass a JSON file of records.")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise EdlmError(f"records file {str(path)!r} is not valid JSON ({err}); fix the file.") from None
    meta = {}
    if isinstance(raw, dict):
        require("records" in raw, f"records file {str(path)!r} has no 'records' list; write {{\"records\": [...]}}.")
        meta = {k: v for k, v in raw.items() if k != "records"}
        raw = raw["records"]
    return validate_records(raw), meta


@dataclass(frozen=True)
class _Point:
    x: float
    y: float
    yerr: float
    steps: int | None


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _grouped(records, x_of, y_of) -> dict[str, list[_Point]]:
    """Per method (first-appearance order): points averaged over records with the same steps."""
    groups: dict[str, dict] = {}
    for i, r in enumerate(records):
        x, y = x_of(r), y_of(r)
        if x is None or y is None:
            continue
        key = r.steps if r.steps is not None else ("record", i)  # records without steps are never merged
        groups.setdefault(r.method, {}).setdefault(key, []).append((x, y, r.steps))
    out = {}
    for method, by_steps in groups.items():
        points = []
        for xy in by_steps.values():
            (x, _), (y, err) = _mean_std([a for a, _, _ in xy]), _mean_std([b for _, b, _ in xy])
            points.append(_Point(x, y, err, xy[0][2]))
        out[method] = sorted(points, key=lambda p: (p.steps is None, p.steps or 0, p.x))
    return out


def _figure(title: str | None):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise EdlmError("plots need matplotlib; install it with pip install 'edlm[eval]'.") from None
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if title:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    return fig, ax


def _colours(records) -> dict[str, str]:
    palette = [f"C{i}" for i in range(10)]
    methods = list(dict.fromkeys(r.method for r in records if not r.reference))
    return {m: palette[i % len(palette)] for i, m in enumerate(methods)}


def _log_if_wide(ax, axis: str, values: list[float], base: float, ratio: float) -> None:
    if values and min(values) > 0 and max(values) / min(values) >= ratio:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log", base=base)


def _references(ax, records, metric, *, x_of=None) -> None:
    """Each reference method as a grey horizontal line at its mean quality (and, given x_of, a star at
    its mean x_of(record) where the records give one)."""
    styles = ["--", ":", "-.", (0, (5, 2, 1, 2))]
    refs: dict[str, list[Record]] = {}
    for r in records:
        if r.reference:
            refs.setdefault(r.method, []).append(r)
    for i, (method, rs) in enumerate(refs.items()):
        y = statistics.fmean(r.quality(metric) for r in rs)
        shade = f"{0.15 + 0.2 * (i % 4):.2f}"
        ax.axhline(y, color=shade, linestyle=styles[i % len(styles)], linewidth=1.2, label=f"{method} (reference)")
        xs = [x for x in map(x_of, rs) if x is not None] if x_of is not None else []
        if xs:
            ax.plot([statistics.fmean(xs)], [y], marker="*", markersize=11, color=shade, linestyle="none")


def _save(fig, ax, path) -> Path:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    path = Path(path)
    write_bytes_atomic(path, buf.getvalue())
    return path


def _check(metric: str, entropy_unit: str = "nats") -> None:
    require(metric in METRICS, f"metric={metric!r} is unknown; use one of {', '.join(METRICS)}.")
    require(entropy_unit in ENTROPY_UNITS, f"entropy_unit={entropy_unit!r} is unknown; use nats or bits.")


def _records(records) -> list[Record]:
    return list(records) if records and all(isinstance(r, Record) for r in records) else validate_records(records)


def _curve(ax, points: list[_Point], colour: str, label: str, annotate: bool) -> None:
    xs, ys, errs = [p.x for p in points], [p.y for p in points], [p.yerr for p in points]
    ax.errorbar(xs, ys, yerr=errs if any(errs) else None, color=colour, marker="o", markersize=4, linewidth=1.5,
                capsize=3, label=label)
    if annotate:
        for p in points:
            if p.steps is not None:
                ax.annotate(f"T={p.steps}", (p.x, p.y), textcoords="offset points", xytext=(4, 4), fontsize=7,
                            color=colour)


def plot_quality_vs_steps(records, path, *, metric: str = "gen_ppl", title: str | None = None) -> Path:
    """Figure 1a: quality against sampling steps, one line per method, references as horizontal lines."""
    _check(metric)
    records = _records(records)
    curves = _grouped([r for r in records if not r.reference], lambda r: r.steps, lambda r: r.quality(metric))
    require(curves, "no non-reference record has steps; give records with steps to plot quality against steps.")
    fig, ax = _figure(title)
    colours = _colours(records)
    for method, points in curves.items():
        _curve(ax, points, colours[method], method, annotate=False)
    _references(ax, records, metric)
    steps = sorted({int(p.x) for points in curves.values() for p in points})
    _log_if_wide(ax, "x", steps, 2, 4)
    if len(steps) <= 12:  # label the step counts themselves, not powers of two
        ax.set_xticks(steps, [str(t) for t in steps])
        ax.minorticks_off()
    ax.set_xlabel(STEPS_AXIS)
    ax.set_ylabel(AXIS[metric])
    return _save(fig, ax, path)


def _quality_vs_cost(records, path, *, metric: str, title: str | None, x_of, field: str, unit: str,
                     axis: str) -> Path:
    """Quality against a cost x_of(record) (wall time, model calls): one line per method with points
    labelled T, references as horizontal lines plus a star at their own cost where given."""
    _check(metric)
    records = _records(records)
    curves = _grouped([r for r in records if not r.reference], x_of, lambda r: r.quality(metric))
    require(curves, f"no non-reference record has {field}; give records with {field} ({unit}) to plot "
            f"quality against {field}.")
    fig, ax = _figure(title)
    colours = _colours(records)
    for method, points in curves.items():
        _curve(ax, points, colours[method], method, annotate=True)
    _references(ax, records, metric, x_of=x_of)
    xs = [p.x for points in curves.values() for p in points] + [x for r in records if r.reference
                                                                 for x in [x_of(r)] if x is not None]
    _log_if_wide(ax, "x", xs, 10, 10)
    ax.set_xlabel(axis)
    ax.set_ylabel(AXIS[metric])
    return _save(fig, ax, path)


def plot_quality_vs_time(records, path, *, metric: str = "gen_ppl", title: str | None = None) -> Path:
    """Figure 1b: quality against wall time, one line per method (points labelled with T), references
    as horizontal lines plus a star at their own wall time where given."""
    return _quality_vs_cost(records, path, metric=metric, title=title, x_of=lambda r: r.wall_time,
                            field="wall_time", unit="seconds", axis=TIME_AXIS)


def plot_quality_vs_calls(records, path, *, metric: str = "gen_ppl", title: str | None = None) -> Path:
    """Figure 1b at CPU scale: quality against model calls per sample (denoiser + energy forward rows),
    one line per method (points labelled with T), references as horizontal lines plus a star at their
    own model_calls where given."""
    return _quality_vs_cost(records, path, metric=metric, title=title, x_of=lambda r: r.model_calls,
                            field="model_calls", unit="forward rows per sample", axis=CALLS_AXIS)


def plot_entropy_vs_quality(records, path, *, metric: str = "gen_ppl", entropy_unit: str = "nats",
                            title: str | None = None) -> Path:
    """Figure 4: unigram entropy (y) against quality (x), one line per method through its step counts,
    references as stars."""
    _check(metric, entropy_unit)
    records = _records(records)
    scale = 1.0 if entropy_unit == "nats" else 1.0 / math.log(2)
    y_of = (lambda r: None if r.entropy is None else r.entropy * scale)
    curves = _grouped([r for r in records if not r.reference], lambda r: r.quality(metric), y_of)
    refs = _grouped([r for r in records if r.reference], lambda r: r.quality(metric), y_of)
    require(curves or refs, "no record has an entropy; give entropy (nats) or entropy_bits to plot entropy "
            "against quality.")
    fig, ax = _figure(title)
    colours = _colours(records)
    for method, points in curves.items():
        _curve(ax, points, colours[method], method, annotate=True)
    for i, (method, points) in enumerate(refs.items()):
        ax.plot([p.x for p in points], [p.y for p in points], marker="*", markersize=12, linestyle="none",
                color=f"{0.15 + 0.2 * (i % 4):.2f}", label=f"{method} (reference)")
    ax.set_xlabel(AXIS[metric])
    ax.set_ylabel(f"unigram entropy per sample ({entropy_unit})")
    return _save(fig, ax, path)


def plot_all(records, prefix, *, metric: str = "gen_ppl", entropy_unit: str = "nats",
             title: str | None = None) -> dict[str, Path]:
    """Write every figure the records support: {"steps", "walltime", "calls", "entropy"} -> STEM-<name>.png."""
    _check(metric, entropy_unit)
    records = _records(records)
    prefix = Path(prefix)
    curve = [r for r in records if not r.reference]
    out = {}
    if any(r.steps is not None for r in curve):
        out["steps"] = plot_quality_vs_steps(records, prefix.with_name(prefix.name + "-steps.png"),
                                             metric=metric, title=title)
    if any(r.wall_time is not None for r in curve):
        out["walltime"] = plot_quality_vs_time(records, prefix.with_name(prefix.name + "-walltime.png"),
                                               metric=metric, title=title)
    if any(r.model_calls is not None for r in curve):
        out["calls"] = plot_quality_vs_calls(records, prefix.with_name(prefix.name + "-calls.png"),
                                             metric=metric, title=title)
    if any(r.entropy is not None for r in records):
        out["entropy"] = plot_entropy_vs_quality(records, prefix.with_name(prefix.name + "-entropy.png"),
                                                 metric=metric, entropy_unit=entropy_unit, title=title)
    require(out, "the records support no figure: give non-reference records with steps, wall_time or "
            "model_calls, or records with an entropy.")
    return out


def _cell_number(cell: dict, key: str, where: str) -> float:
    value = cell.get(key)
    require(isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value),
            f"{where}: {key}={value!r} must be a finite number; fix the cell (leave a missing cell out).")
    return float(value)


def _validate_cells(cells) -> dict[tuple[float, float], float]:
    require(isinstance(cells, (list, tuple)), f"cells must be a list of {{row, col, value}} objects, got "
            f"{type(cells).__name__}.")
    require(len(cells) > 0, "there are no cells to plot; pass at least one {row, col, value} object.")
    out: dict[tuple[float, float], float] = {}
    for i, cell in enumerate(cells):
        where = f"cell {i}"
        require(isinstance(cell, dict), f"{where} is {type(cell).__name__}, not an object with row, col and value.")
        row, col = _cell_number(cell, "row", where), _cell_number(cell, "col", where)
        value = _cell_number(cell, "value", f"{where} (row={row:g}, col={col:g})")
        require((row, col) not in out, f"{where}: row={row:g}, col={col:g} is given twice; keep one value per cell "
                "(average seeds before plotting).")
        out[(row, col)] = value
    return out


def plot_ablation_heatmap(cells, path, *, row_label: str, col_label: str, value_label: str,
                          title: str | None = None, fmt: str = "{:.3f}") -> Path:
    """Figure 1c: a heatmap of an ablation grid, e.g. row = k, col = window, value = oracle NLL (bits/char).

    `cells` is a list of `{"row": number, "col": number, "value": number}` (other keys are ignored); rows
    (top to bottom) and columns (left to right) are sorted numerically and labelled by their values. Each
    cell is annotated with `fmt.format(value)`; a (row, col) pair absent from `cells` is left blank. Colours
    use viridis_r with a colorbar: LOWER values (better, for an NLL) are BRIGHTER (yellow), higher values
    darker (purple). Deterministic and written atomically like the other figures."""
    grid = _validate_cells(cells)
    for name, label in (("row_label", row_label), ("col_label", col_label), ("value_label", value_label)):
        require(isinstance(label, str), f"{name}={label!r} must be a string naming the axis.")
    require(isinstance(fmt, str), f"fmt={fmt!r} must be a format string such as '{{:.3f}}'.")
    try:
        fmt.format(1.0)
    except (ValueError, IndexError, KeyError, TypeError) as err:
        raise EdlmError(f"fmt={fmt!r} cannot format a number ({err}); use a format string such as '{{:.3f}}'.") \
            from None
    fig, ax = _figure(title)  # first: it turns a missing matplotlib into an EdlmError
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    ax.grid(False)
    rows = sorted({r for r, _ in grid})
    cols = sorted({c for _, c in grid})
    values = np.full((len(rows), len(cols)), np.nan)
    for (r, c), v in grid.items():
        values[rows.index(r), cols.index(c)] = v
    cmap = colormaps[HEATMAP_CMAP].with_extremes(bad="white")
    norm = Normalize(vmin=min(grid.values()), vmax=max(grid.values()))
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax, label=value_label)
    for (r, c), v in sorted(grid.items()):
        red, green, blue, _ = cmap(norm(v))
        ink = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"
        ax.text(cols.index(c), rows.index(r), fmt.format(v), ha="center", va="center", fontsize=8, color=ink)
    ax.set_xticks(range(len(cols)), [f"{c:g}" for c in cols])
    ax.set_yticks(range(len(rows)), [f"{r:g}" for r in rows])
    ax.minorticks_off()
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    return _save(fig, ax, path)
