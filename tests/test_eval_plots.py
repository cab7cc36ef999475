"""Plots from small records: non-empty, deterministic PNGs; validation of ill-formed records; the CLI."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("matplotlib")

from edlm.cli import main  # noqa: E402
from edlm.errors import EdlmError  # noqa: E402
from edlm.reports.plots import (_grouped, load_records, plot_ablation_heatmap, plot_all,  # noqa: E402
                             plot_entropy_vs_quality, plot_quality_vs_calls, plot_quality_vs_steps,
                             plot_quality_vs_time, validate_records)

PNG = b"\x89PNG\r\n\x1a\n"

RECORDS = [
    {"method": "MDLM", "steps": 8, "wall_time": 0.05, "gen_ppl": 120.0, "entropy": 5.5},
    {"method": "MDLM", "steps": 32, "wall_time": 0.2, "gen_ppl": 95.0, "entropy": 5.45},
    {"method": "MDLM", "steps": 32, "wall_time": 0.22, "gen_ppl": 99.0, "entropy": 5.43, "seed": 1},
    {"method": "EDLM-AR k=4", "steps": 8, "wall_time": 0.2, "gen_ppl": 70.0, "entropy": 5.35, "k": 4},
    {"method": "EDLM-AR k=4", "steps": 32, "wall_time": 0.6, "gen_ppl": 55.0, "entropy": 5.3, "k": 4},
    {"method": "AR", "wall_time": 0.3, "gen_ppl": 40.0, "entropy": 5.25},
    {"method": "data", "gen_ppl": 14.0, "entropy": 5.6},
]

# model_calls: denoiser rows + energy rows per generated sequence (EDLM-AR adds k candidates' energy rows)
CALLS = {("MDLM", 8): 8, ("MDLM", 32): 32, ("EDLM-AR k=4", 8): 12, ("EDLM-AR k=4", 32): 48, ("AR", None): 128}
RECORDS_CALLS = [dict(r, model_calls=CALLS.get((r["method"], r.get("steps")))) for r in RECORDS]

CELLS = [{"row": k, "col": w, "value": 1.2 + 0.05 * k - 0.002 * w} for k in (1, 2, 4, 8) for w in (16, 32, 64)]


def is_png(path) -> bool:
    data = path.read_bytes()
    return data.startswith(PNG) and len(data) > 5000


def test_plot_all_writes_three_deterministic_pngs(tmp_path):
    first = plot_all(RECORDS, tmp_path / "a", title="toy")
    assert sorted(first) == ["entropy", "steps", "walltime"]
    assert first["steps"] == tmp_path / "a-steps.png" and first["walltime"] == tmp_path / "a-walltime.png"
    assert all(is_png(p) for p in first.values())
    second = plot_all(RECORDS, tmp_path / "b", title="toy")
    for name in first:
        assert first[name].read_bytes() == second[name].read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_each_figure_and_options(tmp_path):
    assert is_png(plot_quality_vs_steps(RECORDS, tmp_path / "s.png", metric="oracle_nll"))
    assert is_png(plot_quality_vs_time(RECORDS, tmp_path / "t.png"))
    bits = [dict(method=r["method"], steps=r.get("steps"), oracle_nll=math.log(r["gen_ppl"]),
                 entropy_bits=r["entropy"] / math.log(2)) for r in RECORDS]
    assert is_png(plot_entropy_vs_quality(bits, tmp_path / "e.png", entropy_unit="bits"))
    # only what the records support: no wall time, no entropy -> only the steps figure
    paths = plot_all([{"method": "MDLM", "steps": 4, "gen_ppl": 50.0}], tmp_path / "only")
    assert list(paths) == ["steps"] and is_png(paths["steps"])


def test_validation_converts_units_and_marks_references():
    recs = validate_records([{"method": "M", "steps": 4, "gen_ppl": math.e ** 2, "entropy_bits": 2.0},
                             {"method": "AR", "oracle_nll": 1.5},
                             {"method": "P", "wall_time": 1.0, "gen_ppl": 3.0, "reference": False}])
    assert recs[0].nll == pytest.approx(2.0) and recs[0].entropy == pytest.approx(2 * math.log(2))
    assert recs[0].quality("gen_ppl") == pytest.approx(math.e ** 2) and not recs[0].reference
    assert recs[1].reference and recs[1].entropy is None and recs[1].quality("oracle_nll") == 1.5
    assert not recs[2].reference and recs[2].steps is None


def test_records_with_equal_steps_are_averaged():
    recs = validate_records(RECORDS)
    groups = _grouped([r for r in recs if not r.reference], lambda r: r.steps, lambda r: r.quality("gen_ppl"))
    assert list(groups) == ["MDLM", "EDLM-AR k=4"]
    mdlm = groups["MDLM"]
    assert [p.steps for p in mdlm] == [8, 32]
    assert mdlm[1].y == pytest.approx(97.0) and mdlm[1].yerr == pytest.approx(math.sqrt(8.0))
    assert mdlm[0].yerr == 0.0


@pytest.mark.parametrize("records, match", [
    ([], "no records"),
    ({"method": "M"}, "list"),
    ([["M", 4, 50.0]], "not an object"),
    ([{"steps": 4, "gen_ppl": 50.0}], "method"),
    ([{"method": "", "steps": 4, "gen_ppl": 50.0}], "method"),
    ([{"method": "M", "steps": 4}], "no quality"),
    ([{"method": "M", "steps": 0, "gen_ppl": 50.0}], "steps=0"),
    ([{"method": "M", "steps": "8", "gen_ppl": 50.0}], "steps='8'"),
    ([{"method": "M", "steps": True, "gen_ppl": 50.0}], "steps=True"),
    ([{"method": "M", "steps": 4, "gen_ppl": 0.5}], "gen_ppl=0.5"),
    ([{"method": "M", "steps": 4, "gen_ppl": float("nan")}], "gen_ppl=nan"),
    ([{"method": "M", "steps": 4, "oracle_nll": -1.0}], "oracle_nll=-1.0"),
    ([{"method": "M", "steps": 4, "gen_ppl": 10.0, "oracle_nll": 1.0}], "disagree"),
    ([{"method": "M", "steps": 4, "gen_ppl": 10.0, "entropy": 1.0, "entropy_bits": 1.0}], "disagree"),
    ([{"method": "M", "steps": 4, "gen_ppl": 10.0, "wall_time": 0}], "wall_time=0"),
    ([{"method": "M", "steps": 4, "gen_ppl": 10.0, "reference": "yes"}], "reference"),
])
def test_ill_formed_records_are_refused(records, match, tmp_path):
    with pytest.raises(EdlmError, match=match):
        plot_all(records, tmp_path / "x")
    assert not list(tmp_path.iterdir())


def test_a_figure_without_its_data_is_refused(tmp_path):
    refs_only = [{"method": "AR", "gen_ppl": 40.0}, {"method": "data", "gen_ppl": 14.0}]
    with pytest.raises(EdlmError, match="steps"):
        plot_quality_vs_steps(refs_only, tmp_path / "s.png")
    with pytest.raises(EdlmError, match="wall_time"):
        plot_quality_vs_time([{"method": "M", "steps": 4, "gen_ppl": 9.0}], tmp_path / "t.png")
    with pytest.raises(EdlmError, match="entropy"):
        plot_entropy_vs_quality([{"method": "M", "steps": 4, "gen_ppl": 9.0}], tmp_path / "e.png")
    with pytest.raises(EdlmError, match="support no figure"):
        plot_all(refs_only, tmp_path / "all")
    with pytest.raises(EdlmError, match="metric"):
        plot_all(RECORDS, tmp_path / "m", metric="mauve")
    assert not list(tmp_path.iterdir())


def test_load_records(tmp_path):
    good = tmp_path / "r.json"
    good.write_text(json.dumps({"title": "T", "records": RECORDS}))
    recs, meta = load_records(good)
    assert len(recs) == len(RECORDS) and meta == {"title": "T"}
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(RECORDS))
    assert len(load_records(bare)[0]) == len(RECORDS)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(EdlmError, match="not valid JSON"):
        load_records(bad)
    bad.write_text(json.dumps({"rows": RECORDS}))
    with pytest.raises(EdlmError, match="no 'records'"):
        load_records(bad)
    with pytest.raises(EdlmError, match="does not exist"):
        load_records(tmp_path / "missing.json")


def test_cli(tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"title": "toy", "records": RECORDS}))
    assert main(["eval", "plot", str(path), "--out", str(tmp_path / "fig"), "--metric", "oracle_nll"]) == 0
    for name in ("steps", "walltime", "entropy"):
        assert is_png(tmp_path / f"fig-{name}.png")
    assert capsys.readouterr().out.count("wrote") == 3
    path.write_text(json.dumps({"records": []}))
    assert main(["eval", "plot", str(path), "--out", str(tmp_path / "none")]) == 2
    assert "no records" in capsys.readouterr().err
    assert not list(tmp_path.glob("none*"))


def test_quality_vs_calls_is_deterministic_and_plot_all_writes_four(tmp_path):
    recs = validate_records(RECORDS_CALLS)
    assert recs[0].model_calls == 8.0 and recs[5].model_calls == 128.0 and recs[6].model_calls is None
    assert validate_records(RECORDS)[0].model_calls is None
    first = plot_quality_vs_calls(RECORDS_CALLS, tmp_path / "c1.png", metric="oracle_nll", title="calls")
    second = plot_quality_vs_calls(RECORDS_CALLS, tmp_path / "c2.png", metric="oracle_nll", title="calls")
    assert is_png(first) and first.read_bytes() == second.read_bytes()
    # the calls plot differs from the wall-time plot: its x values are the model calls, not the seconds
    assert first.read_bytes() != plot_quality_vs_time(RECORDS_CALLS, tmp_path / "t.png", metric="oracle_nll",
                                                      title="calls").read_bytes()
    paths = plot_all(RECORDS_CALLS, tmp_path / "all")
    assert sorted(paths) == ["calls", "entropy", "steps", "walltime"]
    assert paths["calls"] == tmp_path / "all-calls.png" and all(is_png(p) for p in paths.values())
    # calls alone (no wall time, no entropy) -> steps and calls only
    only = plot_all([{"method": "M", "steps": 4, "model_calls": 6.5, "gen_ppl": 9.0}], tmp_path / "only")
    assert sorted(only) == ["calls", "steps"]
    # a reference's model_calls alone does not make a calls figure
    assert "calls" not in plot_all([{"method": "M", "steps": 4, "gen_ppl": 9.0},
                                    {"method": "AR", "model_calls": 64, "gen_ppl": 5.0}], tmp_path / "ref")
    with pytest.raises(EdlmError, match="no non-reference record has model_calls"):
        plot_quality_vs_calls(RECORDS, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("bad, match", [
    (0, "model_calls=0 must be a finite number > 0"),
    (-3, "model_calls=-3"),
    ("12", "model_calls='12'"),
    (True, "model_calls=True"),
    (float("inf"), "model_calls=inf"),
])
def test_bad_model_calls_are_refused(bad, match, tmp_path):
    with pytest.raises(EdlmError, match=match):
        plot_all([{"method": "M", "steps": 4, "gen_ppl": 9.0, "model_calls": bad}], tmp_path / "x")
    assert not list(tmp_path.iterdir())


def test_ablation_heatmap_is_deterministic_and_allows_missing_cells(tmp_path):
    kw = dict(row_label="k", col_label="window", value_label="oracle NLL (bits / char)")
    first = plot_ablation_heatmap(CELLS, tmp_path / "h1.png", title="ablation", **kw)
    second = plot_ablation_heatmap(list(reversed(CELLS)), tmp_path / "h2.png", title="ablation", **kw)
    assert first == tmp_path / "h1.png" and is_png(first) and first.read_bytes() == second.read_bytes()
    holes = [c for c in CELLS if (c["row"], c["col"]) not in {(8, 64), (1, 16)}]
    missing = plot_ablation_heatmap(holes, tmp_path / "holes.png", fmt="{:.2f}", **kw)
    assert is_png(missing) and missing.read_bytes() != first.read_bytes()
    one = plot_ablation_heatmap([{"row": 4, "col": 0.5, "value": 1.0, "seed": 0}], tmp_path / "one.png", **kw)
    assert is_png(one)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("cells, fmt, match", [
    ([], "{:.3f}", "no cells"),
    ({"row": 1, "col": 1, "value": 1.0}, "{:.3f}", "list"),
    ([[1, 1, 1.0]], "{:.3f}", "not an object"),
    ([{"col": 1, "value": 1.0}], "{:.3f}", "row=None"),
    ([{"row": "4", "col": 1, "value": 1.0}], "{:.3f}", "row='4'"),
    ([{"row": 1, "col": True, "value": 1.0}], "{:.3f}", "col=True"),
    ([{"row": 1, "col": 2, "value": float("nan")}], "{:.3f}", "value=nan"),
    ([{"row": 1, "col": 2}], "{:.3f}", "value=None"),
    ([{"row": 1, "col": 2, "value": 1.0}, {"row": 1.0, "col": 2, "value": 2.0}], "{:.3f}", "given twice"),
    ([{"row": 1, "col": 2, "value": 1.0}], "{:.3q}", "fmt="),
    ([{"row": 1, "col": 2, "value": 1.0}], "{x}", "fmt="),
    ([{"row": 1, "col": 2, "value": 1.0}], 3, "fmt=3"),
])
def test_ill_formed_cells_are_refused(cells, fmt, match, tmp_path):
    with pytest.raises(EdlmError, match=match):
        plot_ablation_heatmap(cells, tmp_path / "h.png", row_label="k", col_label="window", value_label="NLL",
                              fmt=fmt)
    assert not list(tmp_path.iterdir())
