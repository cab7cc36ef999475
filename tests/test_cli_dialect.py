"""The command line speaks one dialect: one name per thing across subcommands, help for every option,
`edlm --version`, an `edlm eval` summary generated from the eval modules, CLI errors that name CLI
flags, and progress reports (a bar on a terminal, a log line every ~10 s elsewhere)."""

from __future__ import annotations

import argparse
import io
import types

import pytest
import torch

import edlm
import edlm.util.progress as progress_module
from edlm.cli import build_parser, main
from edlm.commands import command_modules
from edlm.toy import ExactDenoiser, ToyDistribution
from edlm.util.progress import LogProgress, progress_bar

# Spellings the CLI used before it had one dialect; none may come back.
RETIRED = {"--data-path", "--path", "--num-sequences", "--table-sequences", "--json", "--ks", "--windows",
           "--ablation-ks", "--ablation-windows", "--mdlm", "--carry-over"}


def parsers(parser: argparse.ArgumentParser | None = None, path: tuple[str, ...] = ("edlm",)):
    """(command path, parser) for the root parser and every subcommand parser below it."""
    parser = parser or build_parser()
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, (*path, name))


def options(parser: argparse.ArgumentParser):
    return [a for a in parser._actions if not isinstance(a, argparse._SubParsersAction)]


def test_every_option_and_subcommand_has_help():
    missing = []
    for path, parser in parsers():
        for action in parser._actions:
            name = "/".join(action.option_strings) or action.dest
            if not (action.help and action.help.strip()):
                missing.append(f"{' '.join(path)} {name}")
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{' '.join(path)} {c.dest}" for c in action._choices_actions if not c.help]
    assert not missing


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"edlm {edlm.__version__}\n"


def test_eval_summary_names_every_eval_subcommand():
    names = [m.__name__.rsplit(".", 1)[-1].removeprefix("eval_") for m in command_modules("eval_")]
    assert {"nll", "energy", "gen", "mauve", "zeroshot", "latency", "plot", "text8"} <= set(names)
    root = dict(parsers())[("edlm",)]
    summary = next(c.help for a in root._actions if isinstance(a, argparse._SubParsersAction)
                   for c in a._choices_actions if c.dest == "eval")
    assert all(name in summary for name in names), summary
    assert sorted(dict(parsers())[("edlm", "eval")]._actions[-1].choices) == sorted(names)


def test_one_name_for_one_thing():
    flags = {}  # flag -> [command path]
    for path, parser in parsers():
        for action in options(parser):
            for flag in action.option_strings:
                flags.setdefault(flag, []).append(" ".join(path))
            if "--split" in action.option_strings:
                assert action.default == "test", path
            if "--out" in action.option_strings and path[-1] not in ("sample",):
                assert action.metavar == "STEM", path  # reports: STEM.json + STEM.md (+ STEM-*.png)
    assert not RETIRED & set(flags), RETIRED & set(flags)
    assert flags["--width"] == ["edlm eval latency"] and flags["--columns"] == ["edlm demo"]
    assert set(flags["--data"]) == {"edlm data text8", "edlm eval nll", "edlm eval energy", "edlm eval zeroshot",
                                    "edlm eval text8", "edlm demo"}
    counted = {"edlm eval nll", "edlm eval energy", "edlm eval zeroshot", "edlm eval text8"}
    assert counted <= set(flags["--max-sequences"])
    for path, parser in parsers():  # one evaluated model is positional MODEL
        if path[-1] in ("nll", "zeroshot", "export"):
            assert "MODEL" in [a.metavar for a in options(parser)], path


@pytest.mark.parametrize("argv, message", [
    (["sample", "--k", "4", "--window", "0.5"], "--k 4 with --window 0.5 needs an --energy"),
    (["eval", "gen", "s.jsonl", "--oracle", "x", "--repetition-window", "0"], "--repetition-window 0"),
    (["eval", "mauve", "--prompt-len", "-1"], "--prompt-len -1"),
    (["eval", "text8", "--k", "1"], "--k '1': every k must be at least 2"),
    (["eval", "text8", "--max-sequences", "1"], "--max-sequences 1 must be 0 (all) or at least 2"),
    (["eval", "text8", "--num-z", "1"], "--num-z 1 must be at least 2"),
    (["eval", "text8", "--energies", "ar,xyz"], "--energies 'ar,xyz'"),
])
def test_errors_name_the_cli_flag(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path / ("x.jsonl" if argv[0] == "sample" else "x"))]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


class Clock:
    """A fake monotonic clock that advances `step` seconds at every reading."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_lines_every_interval_when_not_a_terminal():
    stream = io.StringIO()
    bar = progress_bar(total=100, desc="nll", unit="batch", stream=stream, clock=Clock(3.0))
    assert isinstance(bar, LogProgress)  # created at t = 3
    with bar:
        for _ in range(10):  # readings at t = 6, 9, ..., 33: lines at 15 (n=4) and 27 (n=8)
            bar.update(1)
    assert stream.getvalue().splitlines() == ["nll: 4/100 batch (4%), 12 s elapsed, ~288 s left",
                                              "nll: 8/100 batch (8%), 24 s elapsed, ~276 s left"]


def test_log_lines_of_an_iterable_with_postfix_and_unknown_total():
    stream = io.StringIO()
    bar = progress_bar(iter(range(5)), desc="train", unit="step", stream=stream, clock=Clock(6.0))
    bar.set_postfix(loss="1.2345", refresh=False)
    assert list(bar) == [0, 1, 2, 3, 4]
    assert stream.getvalue().splitlines() == ["train: 2 step, 12 s elapsed, loss 1.2345",
                                              "train: 4 step, 24 s elapsed, loss 1.2345"]


def test_no_line_for_a_short_loop_a_bar_on_a_terminal_and_nothing_when_disabled():
    quiet = io.StringIO()
    with progress_bar(total=1000, stream=quiet, clock=Clock(0.001)) as bar:
        for _ in range(1000):
            bar.update(1)
    assert quiet.getvalue() == ""
    terminal = Terminal()
    with progress_bar(total=3, desc="sample", stream=terminal) as bar:
        assert not isinstance(bar, LogProgress)
        bar.update(3)
    assert "sample" in terminal.getvalue() and "3/3" in terminal.getvalue()
    off = Terminal()
    with progress_bar(total=3, enabled=False, stream=off) as bar:
        bar.update(3)
    assert off.getvalue() == ""


def test_library_loops_log_through_the_helper(monkeypatch, capsys):
    """edlm.sample(progress=True) with stderr captured (not a terminal) logs through edlm.util.progress."""
    monkeypatch.setattr(progress_module, "time", types.SimpleNamespace(monotonic=Clock(4.0)))
    toy = ToyDistribution.random(3, 3, torch.Generator().manual_seed(0))
    edlm.sample(ExactDenoiser(toy), 2, 3, 8, generator=torch.Generator().manual_seed(0), progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("sample: ") and "seq-step" in line for line in lines), lines
