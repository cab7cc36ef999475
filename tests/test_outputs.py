"""Outputs are checked before any work: every command refuses an output path it could not write with
exit status 2 and one sentence naming the path, and leaves the file system as it was."""

from __future__ import annotations

import os

import pytest

from edlm.cli import main
from edlm.errors import EdlmError
from edlm.util.outputs import check_output_path

# Each command with inputs that would fail on their own (a missing model or file), so a status-2 message
# about the output shows that the output was checked first. OUT marks where the output path goes.
OUT = object()
COMMANDS = {
    "sample": (["sample", "--denoiser", "bundled:nope", "--out", OUT], "file"),
    "demo": (["demo", "--denoiser", "bundled:nope", "--out", OUT], "stem"),
    "eval gen": (["eval", "gen", "missing.jsonl", "--oracle", "bundled:nope", "--out", OUT], "stem"),
    "eval nll": (["eval", "nll", "bundled:nope", "--out", OUT], "stem"),
    "eval energy": (["eval", "energy", "nce:bundled:nope", "--out", OUT], "stem"),
    "eval zeroshot": (["eval", "zeroshot", "bundled:nope", "--corpus", "missing.txt", "--out", OUT], "stem"),
    "eval mauve": (["eval", "mauve", "--reference", "missing.txt", "--samples", "missing.jsonl", "--out", OUT], "stem"),
    "eval latency": (["eval", "latency", "--denoiser", "bundled:nope", "--out", OUT], "stem"),
    "eval plot": (["eval", "plot", "missing.json", "--out", OUT], "stem"),
    "eval text8": (["eval", "text8", "--denoiser", "bundled:nope", "--out", OUT], "stem"),
    "export": (["export", "bundled:nope", OUT], "dir"),
    "train": (["train", "text8-tiny", OUT, "train.steps=1"], "workdir"),
}


def snapshot(root) -> dict:
    """Every path under `root` with its kind, size and modification time."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            stat = os.lstat(path)
            found[os.path.relpath(path, root)] = (stat.st_mode, stat.st_size, stat.st_mtime_ns)
    return found


def run_refused(command: str, out: str, capsys, root) -> str:
    """Run `command` with output `out`; assert status 2, one sentence naming `out`, nothing changed."""
    argv, _ = COMMANDS[command]
    argv = [(f"train.out_dir={out}" if command == "train" else out) if a is OUT else a for a in argv]
    before = snapshot(root)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("edlm: error: ") and err.count("\n") == 1 and err.rstrip().endswith("."), err
    assert out in err and "nope" not in err and "missing" not in err, err
    assert snapshot(root) == before
    return err


@pytest.fixture
def place(tmp_path, monkeypatch):
    """tmp_path as the working directory, holding a regular file `file.txt` and a directory `dir`."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("not a directory\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "inside.txt").write_text("kept\n")
    return tmp_path


@pytest.mark.parametrize("command", COMMANDS)
def test_output_on_a_virtual_file_system(command, place, capsys):
    err = run_refused(command, "/proc/nonexistent/x", capsys, place)
    assert "virtual file system" in err or "not writable" in err


@pytest.mark.parametrize("command", COMMANDS)
def test_output_under_a_regular_file(command, place, capsys):
    err = run_refused(command, str(place / "file.txt" / "sub" / "x"), capsys, place)
    assert f"lies under {place / 'file.txt'}, which is not a directory" in err


@pytest.mark.parametrize("command", [c for c, (_, kind) in COMMANDS.items() if kind in ("dir", "workdir")])
def test_directory_output_that_is_a_file(command, place, capsys):
    err = run_refused(command, str(place / "file.txt"), capsys, place)
    assert "is an existing file, not a directory" in err


def test_file_output_that_is_a_directory(place, capsys):
    err = run_refused("sample", str(place / "dir"), capsys, place)
    assert "is an existing directory" in err


@pytest.mark.parametrize("command", [c for c, (_, kind) in COMMANDS.items() if kind == "stem"
                                     and c != "eval plot"])
def test_stem_whose_json_file_is_a_directory(command, place, capsys):
    (place / "report.json").mkdir()
    err = run_refused(command, str(place / "report"), capsys, place)
    assert f"would write {place / 'report.json'}, which is an existing directory" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to any directory")
def test_output_in_a_read_only_directory(place, capsys):
    locked = place / "locked"
    locked.mkdir(mode=0o555)
    try:
        err = run_refused("sample", str(locked / "new" / "x.jsonl"), capsys, place)
    finally:
        locked.chmod(0o755)
    assert f"directory {locked} is not writable for you" in err


def test_check_output_path_accepts_what_can_be_written(tmp_path):
    (tmp_path / "old.jsonl").write_text("replaced atomically\n")
    (tmp_path / "run").mkdir()
    assert check_output_path(tmp_path / "new" / "deeper" / "x.jsonl") == tmp_path / "new" / "deeper" / "x.jsonl"
    assert check_output_path(tmp_path / "old.jsonl") == tmp_path / "old.jsonl"
    assert check_output_path(tmp_path / "run", kind="workdir") == tmp_path / "run"
    assert check_output_path(tmp_path / "run", kind="dir") == tmp_path / "run"
    assert check_output_path(tmp_path / "report", kind="stem") == tmp_path / "report"
    assert check_output_path(None) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.jsonl", "run"]  # nothing was created


def test_check_output_path_names_config_keys_as_key_value(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(EdlmError, match=f"^train.out_dir={tmp_path / 'f'} is an existing file, not a directory; "):
        check_output_path(tmp_path / "f", option="train.out_dir", kind="workdir")
    with pytest.raises(EdlmError, match="^--out is empty; pass a path to write.$"):
        check_output_path("")
