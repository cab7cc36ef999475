"""The README's code blocks, as written.

- Python blocks run in a fresh interpreter in an empty working directory.
- Bash blocks: every `edlm ...` command (also after `torchrun ... -m edlm`) must parse with
  `edlm.cli.build_parser()`, so a renamed or removed option fails here. Set-up commands (venv, pip,
  export, pytest) and the lm-eval-harness entry point (`python -m edlm.metrics.lm_eval_adapter`, which
  has its own parser) are not edlm commands and are skipped.
- The quick commands then run, in README order, in one empty working directory with `EDLM_DATA` set to
  a text8 prefix made here. `NOT_RUN` lists the commands that do not run in the suite and why: training
  (minutes), the full-size demo (15-40 s; the README's small demo runs), the full text8 benchmark
  (about 80 min), commands that download Hugging Face models or need corpora or files this test does
  not have, and commands on runs that only `edlm train` creates.
- The README's list of options per command equals the options of the parser.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from test_train_support import text8_dir  # noqa: F401

from edlm.cli import build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"
SETUP = {"python3", "python", ".", "source", "pip", "export", "pytest"}
NOT_RUN = [  # (does the argv match, why it does not run here)
    (lambda argv: argv[0] == "train", "trains for minutes"),
    (lambda argv: argv == ["demo"], "the full-size demo takes 15-40 s; the README's small demo runs"),
    (lambda argv: argv[:2] == ["eval", "text8"], "the full text8 benchmark takes about 80 min"),
    (lambda argv: argv[:2] == ["eval", "zeroshot"], "downloads hf:gpt2 and needs the PTB corpus"),
    (lambda argv: argv[:2] == ["eval", "mauve"], "downloads hf:gpt2 and needs a human text file"),
    (lambda argv: argv[:2] == ["eval", "plot"], "needs a records file from the user's own runs"),
    (lambda argv: any(a.startswith(("runs/", "coar:runs/", "nce:runs/")) for a in argv),
     "needs a run that only edlm train creates"),
]


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def edlm_commands() -> list[list[str]]:
    """The argv (after `edlm`) of every edlm command in the README's bash blocks, in order."""
    commands = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            for segment in line.split("&&"):
                words = shlex.split(segment, comments=True)
                if not words:
                    continue
                if words[0] == "edlm":
                    commands.append(words[1:])
                elif words[0] == "torchrun":
                    at = words.index("-m")
                    assert words[at + 1] == "edlm", segment
                    commands.append(words[at + 2:])
                else:
                    assert words[0] in SETUP, f"unexpected command in the README: {segment!r}"
    return commands


def test_python_blocks_run_as_written(tmp_path):
    assert blocks("python")
    for code in blocks("python"):
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300, env={**os.environ, "OMP_NUM_THREADS": "2"})
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_edlm_command_parses():
    commands = edlm_commands()
    assert len(commands) >= 20
    for argv in commands:
        build_parser().parse_args(argv)  # argparse exits (status 2) on an unknown or renamed option


def test_quick_commands_run(text8_dir, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("EDLM_DATA", str(text8_dir))
    monkeypatch.chdir(tmp_path)
    ran = []
    for argv in edlm_commands():
        if any(skip(argv) for skip, _ in NOT_RUN):
            continue
        assert main(argv) == 0, (argv, capsys.readouterr().err)
        ran.append(argv[0] if argv[0] != "eval" else f"eval {argv[1]}")
    assert {"demo", "sample", "eval gen", "eval nll", "eval energy", "eval latency"} <= set(ran)
    assert {"demo.json", "mdlm.jsonl", "edlm.jsonl", "glauber.jsonl", "gen.md", "nll.md", "fig2-energy.png",
            "latency.md"} <= {p.name for p in tmp_path.iterdir()}


def test_option_lists_match_the_parser():
    listed = {}
    for line in README.read_text().splitlines():
        match = re.match(r"- `edlm ([a-z0-9 ]+?)(?: [A-Z][^`]*)?`: (.*)$", line)
        if match:
            listed[match[1]] = set(re.findall(r"`(--[a-z0-9-]+)`", match[2]))
    actual = {}

    def walk(parser, path):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for name, sub in (subs[0].choices.items() if subs else []):
            walk(sub, (*path, name))
        if not subs:
            actual[" ".join(path)] = {f for a in parser._actions for f in a.option_strings if a.dest != "help"}

    walk(build_parser(), ())
    assert listed == actual
