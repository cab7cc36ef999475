"""One self-contained HTML page that steps through a sample's denoising (`edlm sample --trace FILE.html`).

Input: an `edlm.sampling.trace.SampleTrace` filled by `edlm.sample(..., trace=...)`, and
`token_text(id) -> str`, the text of one token id (a character for text8's tokenizer, a GPT-2 token
string). The page holds one `<section class="step">` per recorded step (a step that changed the
sequence), each with the sequence after the step - masked positions grey, positions revealed by the
step green, positions masked again by the step (ReMDM) red, fixed prefix / clamped positions
underlined - and, inside the importance-sampling window, a table of the k candidates x0 (the
positions they filled highlighted) with their energies, importance weights and the effective sample
size; then the final sample. Everything is inline (CSS, and a few lines of plain JavaScript that show
one step at a time with previous / next buttons, a slider and the arrow keys, starting at step N for
`FILE.html#step-N`); it loads nothing, and without JavaScript every step is shown one below the other. All token text is HTML-escaped.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Callable

from edlm.sampling.trace import SampleTrace, TraceStep
from edlm.util.atomic import write_text_atomic

MASK_TEXT = "\u00a0"  # a non-breaking space: a masked position is a grey (or red) box one character wide

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; max-width: 70em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1em; margin: 0 0 .4em; }
table.meta td { padding: 0 1em 0 0; font-family: monospace; } table.meta td:first-child { color: #666; }
.seq { font-family: monospace; font-size: 15px; white-space: pre-wrap; word-break: break-all; line-height: 1.6;
       background: #fafafa; border: 1px solid #ddd; padding: .4em; }
.m { background: #c8c8c8; } .r { background: #9be29b; } .x { background: #f08080; }
.f { text-decoration: underline; } .c { background: #fff1a8; }
.m, .r, .x, .c { box-shadow: inset -1px 0 0 #fafafa; }  /* a thin gap between neighbouring marked tokens */
section.step { border-top: 1px solid #ccc; padding: .6em 0; }
table.cand { border-collapse: collapse; margin-top: .5em; width: 100%; }
table.cand caption { text-align: left; padding: .2em 0; }
table.cand th, table.cand td { border: 1px solid #ddd; padding: .15em .4em; vertical-align: top; text-align: left; }
table.cand td.num { font-family: monospace; text-align: right; white-space: nowrap; }
table.cand tr.chosen { outline: 2px solid #2a7; }
.bar { display: inline-block; height: .7em; background: #48a; margin-right: .3em; }
nav { position: sticky; top: 0; background: #fff; padding: .4em 0; border-bottom: 1px solid #ccc; }
.legend span.seq { display: inline; border: none; padding: 0 .2em; }
"""

SCRIPT = r"""
(function () {
  var steps = document.querySelectorAll("section.step"), at = document.getElementById("at");
  var all = document.getElementById("all"), pos = document.getElementById("pos");
  if (!steps.length) return;
  function show(i) {
    i = Math.max(0, Math.min(steps.length - 1, i));
    at.value = i + 1;
    for (var n = 0; n < steps.length; n++) steps[n].hidden = !all.checked && n !== i;
    pos.textContent = (i + 1) + " / " + steps.length;
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("prev").onclick = function () { show(at.value - 2); };
  document.getElementById("next").onclick = function () { show(+at.value); };
  at.oninput = function () { show(at.value - 1); };
  all.onchange = function () { show(at.value - 1); };
  document.addEventListener("keydown", function (e) {
    if (e.target === at) return;
    if (e.key === "ArrowLeft") show(at.value - 2);
    if (e.key === "ArrowRight") show(+at.value);
  });
  var linked = /^#step-(\d+)$/.exec(location.hash);
  show(linked ? linked[1] - 1 : 0);
})();
"""


def trace_html(trace: SampleTrace, token_text: Callable[[int], str], *, title: str = "edlm sample trace",
               settings: dict | None = None) -> str:
    """The page (see the module docstring) as a string. settings: key -> value shown in a table at the top
    (the sampler options, the models)."""
    page = _Page(trace, token_text)
    sections = [page.step_section(n, step) for n, step in enumerate(trace.steps)]
    meta = "".join(f"<tr><td>{_e(key)}</td><td>{_e(_value(value))}</td></tr>" for key, value in (settings or {}).items())
    legend = ("<p class=\"legend\">" + f"<span class=\"seq\"><span class=\"m\">{MASK_TEXT}</span></span> masked "
              f"<span class=\"seq\"><span class=\"r\">a</span></span> revealed by the step "
              f"<span class=\"seq\"><span class=\"x\">{MASK_TEXT}</span></span> masked again by the step "
              "<span class=\"seq\"><span class=\"f\">a</span></span> fixed (prefix / clamp) "
              "<span class=\"seq\"><span class=\"c\">a</span></span> filled by a candidate x0</p>")
    summary = (f"<p>Sample {trace.index}: {len(trace.steps)} of {trace.total} steps changed it and are shown; "
               f"the other {trace.skipped} revealed nothing in it and ran no forward pass for it.</p>")
    nav = ("<nav id=\"nav\" hidden><button id=\"prev\" type=\"button\">&larr; previous</button> "
           f"<input id=\"at\" type=\"range\" min=\"1\" max=\"{max(1, len(sections))}\" value=\"1\"> "
           "<button id=\"next\" type=\"button\">next &rarr;</button> <span id=\"pos\"></span> "
           "<label><input id=\"all\" type=\"checkbox\"> all steps</label> (arrow keys step)</nav>")
    final = (f"<section class=\"final\"><h2>Final sample</h2><div class=\"seq\">"
             f"{page.sequence(trace.final, trace.final)}</div></section>")
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{_e(title)}</title>\n"
            f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>{_e(title)}</h1>\n<table class=\"meta\">{meta}</table>\n"
            f"{legend}\n{summary}\n{nav}\n" + "\n".join(sections) + f"\n{final}\n<script>{SCRIPT}</script>\n"
            "</body>\n</html>\n")


def write_trace_html(path, trace: SampleTrace, token_text: Callable[[int], str], **options) -> Path:
    """Write `trace_html(trace, token_text, **options)` to path atomically; return the path."""
    write_text_atomic(Path(path), trace_html(trace, token_text, **options))
    return Path(path)


def _value(value) -> str:
    """A setting as text: lists and tuples comma-separated, anything else as str."""
    return ", ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def _e(value) -> str:
    return html.escape(str(value), quote=True)


class _Page:
    """Renders the sequences of one trace (token texts cached by id)."""

    def __init__(self, trace: SampleTrace, token_text: Callable[[int], str]):
        self.trace = trace
        self.mask = trace.mask_id
        self.fixed = [token != trace.mask_id for token in trace.initial or []]
        self.text = {}
        self.token_text = token_text

    def token(self, token: int) -> str:
        if token not in self.text:
            self.text[token] = _e(self.token_text(token))
        return self.text[token]

    def sequence(self, before: list[int], after: list[int], fresh: str = "r") -> str:
        """after, marked against before: masked, masked again ("x"), fixed ("f"), and unmasked since
        `before` with class `fresh` ("r": revealed by the step; "c": filled by a candidate)."""
        out = []
        for i, (a, b) in enumerate(zip(before, after)):
            if b == self.mask:
                kind = "x" if a != self.mask else "m"
                out.append(f"<span class=\"{kind}\"{_title(i, a) if kind == 'x' else ''}>{MASK_TEXT}</span>")
            elif a == self.mask:
                out.append(f"<span class=\"{fresh}\"{_title(i, b)}>{self.token(b)}</span>")
            elif self.fixed[i]:
                out.append(f"<span class=\"f\">{self.token(b)}</span>")
            else:
                out.append(self.token(b))
        return "".join(out)

    def step_section(self, n: int, step: TraceStep) -> str:
        revealed, remasked = step.revealed(self.mask), step.remasked(self.mask)
        per_block, total = self.trace.per_block, self.trace.total
        where = f"step {step.step + 1} of {per_block}"
        if total > per_block:
            where = f"block {step.block + 1} of {total // per_block}, " + where
        called = "denoiser called" if step.called else "remasking only, no forward pass"
        head = (f"<h2>{where} &middot; t = {step.t:.4f} &rarr; {step.s:.4f} &middot; "
                f"<span class=\"count-revealed\">{len(revealed)}</span> revealed &middot; "
                f"<span class=\"count-remasked\">{len(remasked)}</span> masked again &middot; {called}</h2>")
        body = f"<div class=\"seq\">{self.sequence(step.before, step.after)}</div>"
        return (f"<section class=\"step\" id=\"step-{n + 1}\" data-revealed=\"{len(revealed)}\" "
                f"data-remasked=\"{len(remasked)}\">\n{head}\n{body}\n{self.candidates(step)}</section>")

    def candidates(self, step: TraceStep) -> str:
        """The table of the step's k candidates (empty outside the importance-sampling window)."""
        if step.candidates is None:
            return ""
        rows = []
        for j, (candidate, energy, weight) in enumerate(zip(step.candidates, step.energies, step.weights)):
            chosen = j == step.choice
            rows.append(f"<tr class=\"candidate{' chosen' if chosen else ''}\"><td class=\"num\">{j + 1}"
                        f"{' &#10003;' if chosen else ''}</td><td class=\"num energy\">{energy:.6g}</td>"
                        f"<td class=\"num weight\"><span class=\"bar\" style=\"width: {100 * weight:.1f}px\">"
                        f"</span>{weight:.4f}</td><td><div class=\"seq\">"
                        f"{self.sequence(step.before, candidate, 'c')}</div></td></tr>")
        k = len(step.candidates)
        return (f"<table class=\"cand\"><caption>k = {k} candidates x0, importance weights softmax(-E / tau); "
                f"effective sample size <span class=\"ess\">{step.ess:.4f}</span> of {k}; "
                "&#10003; the resampled one</caption>\n<tr><th>#</th><th>energy E</th><th>weight</th>"
                "<th>candidate x0 (yellow: positions it filled)</th></tr>\n" + "\n".join(rows) + "\n</table>\n")


def _title(position: int, token: int) -> str:
    return f" title=\"position {position}, id {token}\""
