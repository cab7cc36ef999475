"""`edlm.sample(..., trace=SampleTrace())` and the HTML page of `edlm sample --trace`: tracing leaves the
samples unchanged, the trace agrees with `SampleStats`, the candidates inside the window carry
normalised weights and their ESS, and the page is one self-contained file with a section per step."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser

import pytest
import torch

import edlm
from edlm.cli import main
from edlm.energy import AREnergy
from edlm.errors import EdlmError
from edlm.reports.trace_html import trace_html
from edlm.sampling.trace import SampleTrace
from edlm.toy import ExactCausalLM, ExactDenoiser, ToyDistribution
from test_sampling_cli import write_checkpoint

TEXT = ["<", "&", "\"", "b"]  # token texts that must be escaped


@pytest.fixture(scope="module")
def toy():
    return ToyDistribution.random(4, 4, torch.Generator().manual_seed(0))


def g(seed):
    return torch.Generator().manual_seed(seed)


def options(toy):
    energy = AREnergy(ExactCausalLM(toy))
    return {
        "plain": dict(prefix=[1]),
        "edlm": dict(energy=energy, k=3, window=0.5, clamp=[-1, -1, 2, -1]),
        "remasking": dict(remasking="cap", eta=0.4, energy=energy, k=2, window=1.0),
        "margin": dict(unmasking="margin", unmasking_noise=0.5, remasking="conf", eta=0.5),
        "semi_ar": dict(block_size=2, context=4, energy=energy, k=3, window=1.0),
    }


def traced(toy, name, index=4):
    opts = options(toy)[name]
    seq_len = 6 if "context" in opts else 4
    trace = SampleTrace(index=index)
    x, stats = edlm.sample(ExactDenoiser(toy), 7, seq_len, 5, generator=g(3), batch_size=3, return_stats=True,
                           trace=trace, **opts)
    return x, stats, trace, opts


@pytest.mark.parametrize("name", ["plain", "edlm", "remasking", "margin", "semi_ar"])
def test_tracing_leaves_samples_unchanged_bit_for_bit(toy, name):
    x, stats, trace, opts = traced(toy, name)
    seq_len = x.shape[1]
    y, plain = edlm.sample(ExactDenoiser(toy), 7, seq_len, 5, generator=g(3), batch_size=3, return_stats=True, **opts)
    assert torch.equal(x, y)
    assert torch.equal(stats.revealed, plain.revealed) and torch.equal(stats.remasked, plain.remasked)
    assert torch.equal(stats.ess.nan_to_num(-1), plain.ess.nan_to_num(-1)) and stats.calls == plain.calls
    assert trace.steps  # it recorded something


@pytest.mark.parametrize("name", ["plain", "edlm", "remasking", "margin", "semi_ar"])
def test_trace_agrees_with_the_stats_and_the_sample(toy, name):
    x, stats, trace, _ = traced(toy, name)
    mask = trace.mask_id
    assert trace.final == x[4].tolist() and trace.total == stats.revealed.shape[1]
    seen = set()
    current = trace.initial
    for step in trace.steps:
        col = step.block * trace.per_block + step.step
        seen.add(col)
        assert step.before == current
        current = step.after
        assert len(step.revealed(mask)) == stats.revealed[4, col] and len(step.remasked(mask)) == stats.remasked[4, col]
        assert step.called == (stats.revealed[4, col] > 0)
        assert math.isclose(step.t, float(stats.times[col]))
    unchanged = [c for c in range(trace.total) if c not in seen]
    assert len(unchanged) == trace.skipped
    assert all(stats.revealed[4, c] == 0 and stats.remasked[4, c] == 0 for c in unchanged)
    fixed = [i for i, token in enumerate(trace.initial) if token != mask]
    assert all(step.after[i] == trace.initial[i] for step in trace.steps for i in fixed)


@pytest.mark.parametrize("name", ["edlm", "remasking", "semi_ar"])
def test_candidates_inside_the_window_with_weights_and_ess(toy, name):
    x, stats, trace, opts = traced(toy, name)
    k, window = opts["k"], opts["window"]
    inside = 0
    for step in trace.steps:
        col = step.block * trace.per_block + step.step
        if step.called and step.t >= 1 - window - 1e-12:
            inside += 1
            assert len(step.candidates) == len(step.energies) == len(step.weights) == k
            w = torch.tensor(step.weights, dtype=torch.float64)
            assert math.isclose(float(w.sum()), 1.0, abs_tol=1e-12)
            expected = torch.softmax(-torch.tensor(step.energies, dtype=torch.float64), dim=0)
            assert torch.allclose(w, expected, rtol=0, atol=1e-12)
            assert math.isclose(step.ess, 1.0 / float((w * w).sum()), rel_tol=1e-12)
            assert step.ess == float(stats.ess[4, col])
            chosen = step.candidates[step.choice]
            assert all(step.after[i] == chosen[i] for i in step.revealed(trace.mask_id))
            assert all(c[i] == step.before[i] for c in step.candidates for i, t in enumerate(step.before)
                       if t != trace.mask_id)  # SUBS: candidates keep what is revealed
        else:
            assert step.candidates is None and step.ess is None and math.isnan(stats.ess[4, col])
    assert inside >= 1


def test_trace_index_is_checked(toy):
    with pytest.raises(EdlmError, match="trace index=7 must be an integer in"):
        edlm.sample(ExactDenoiser(toy), 7, 4, 2, trace=SampleTrace(index=7))
    with pytest.raises(EdlmError, match="must be None or an edlm.sampling.trace.SampleTrace"):
        edlm.sample(ExactDenoiser(toy), 7, 4, 2, trace="page.html")


class _Tags(HTMLParser):
    """Start tags with their attributes, and whether every opened section was closed."""

    def __init__(self):
        super().__init__()
        self.tags, self.open_sections = [], 0

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.open_sections += tag == "section"

    def handle_endtag(self, tag):
        self.open_sections -= tag == "section"


def parse(page: str) -> _Tags:
    tags = _Tags()
    tags.feed(page)
    tags.close()
    assert tags.open_sections == 0
    return tags


def assert_self_contained(page: str) -> None:
    low = page.lower()
    assert "http://" not in low and "https://" not in low and "src=" not in low and "<link" not in low
    assert "@import" not in low and "url(" not in low


@pytest.mark.parametrize("name", ["edlm", "remasking", "semi_ar"])
def test_page_has_a_section_per_step_that_agrees_with_the_trace(toy, name):
    _, _, trace, opts = traced(toy, name)
    page = trace_html(trace, lambda token: TEXT[token], settings={"energy": "<toy & AR>"})
    assert_self_contained(page)
    assert "&lt;toy &amp; AR&gt;" in page and "<toy" not in page
    tags = parse(page)
    sections = [a for t, a in tags.tags if t == "section" and a.get("class") == "step"]
    assert len(sections) == len(trace.steps)
    for attrs, step in zip(sections, trace.steps):
        assert int(attrs["data-revealed"]) == len(step.revealed(trace.mask_id))
        assert int(attrs["data-remasked"]) == len(step.remasked(trace.mask_id))
    chunks = page.split('<section class="step"')[1:]
    for chunk, step in zip(chunks, trace.steps):
        chunk = chunk.split("</section>")[0]
        rows = chunk.count('<tr class="candidate')
        assert rows == (0 if step.candidates is None else opts["k"])
        assert chunk.count('class="r"') == len(step.revealed(trace.mask_id))
        assert chunk.count('class="x"') == len(step.remasked(trace.mask_id))
        if step.candidates is not None:
            assert chunk.count('<tr class="candidate chosen"') == 1
            ess = float(re.search(r'<span class="ess">([0-9.]+)</span>', chunk).group(1))
            assert math.isclose(ess, step.ess, abs_tol=1e-4)
            weights = [float(w) for w in re.findall(r'</span>([0-9.]+)</td><td><div class="seq">', chunk)]
            assert math.isclose(sum(weights), 1.0, abs_tol=1e-3) and len(weights) == opts["k"]
    assert page.count('<section class="final"') == 1


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    return dict(mdlm=write_checkpoint(root / "mdlm", []),
                ar=write_checkpoint(root / "ar", ["train.objective=ar", "model.causal=true", "model.adaln=false"]))


def sample_cli(ckpts, tmp_path, *extra):
    out = tmp_path / "s.jsonl"
    code = main(["sample", "--denoiser", str(ckpts["mdlm"]), "--energy", f"ar:{ckpts['ar']}", "--k", "3",
                 "--window", "0.5", "--steps", "6", "--num-samples", "3", "--batch-size", "2", "--prefix", "ab",
                 "--out", str(out), "--device", "cpu", *extra])
    return code, out


def test_cli_writes_the_page_and_the_same_samples(ckpts, tmp_path, capsys):
    code, out = sample_cli(ckpts, tmp_path)
    assert code == 0
    plain = out.read_text()
    page_path = tmp_path / "pages" / "trace.html"
    code, out = sample_cli(ckpts, tmp_path, "--trace", str(page_path))
    assert code == 0 and out.read_text() == plain
    assert f"wrote the denoising of sample 0 to {page_path}" in capsys.readouterr().err
    page = page_path.read_text()
    assert_self_contained(page)
    sections = [a for t, a in parse(page).tags if t == "section" and a.get("class") == "step"]
    assert 1 <= len(sections) <= 6
    assert page.count('<tr class="candidate') >= 3  # at least one step inside the window (t = 1 is)
    assert '<span class="f">a</span><span class="f">b</span>' in page  # the prefix, underlined
    assert "<td>window</td><td>0.5</td>" in page and "<td>seed</td><td>0</td>" in page


@pytest.mark.parametrize("extra,message", [
    (["--sampler", "glauber", "--trace", "t.html"], "--trace apply to --sampler mdlm only"),
    (["--trace", "."], "--trace . is an existing directory"),
    (["--trace", "{out}"], "is the --out file"),
])
def test_cli_refuses_a_trace_it_cannot_write(ckpts, tmp_path, capsys, extra, message):
    extra = [e.replace("{out}", str(tmp_path / "s.jsonl")) for e in extra]
    code, _ = sample_cli(ckpts, tmp_path, *extra)
    assert code == 2 and message in capsys.readouterr().err
