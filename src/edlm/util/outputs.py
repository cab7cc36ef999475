"""Output paths checked before any work: a command refuses a path it could not write at the end.

`check_output_path` creates nothing. It only asks whether the writers of `edlm.util.atomic` (which
create missing parent directories, write beside the target and rename into place) would succeed:

- file:    `path` becomes a file; it must not be a directory.
- stem:    `path` is a prefix; the files `path + suffix` for each suffix are written beside it.
- dir:     `path` becomes a directory as a whole (replaced atomically); it must not be a file.
- workdir: `path` is a directory that edlm creates or fills in place (a run directory, a cache).

For each, the directory that receives the new names (the target's parent; for an existing workdir the
directory itself) or, when it does not exist yet, its nearest existing ancestor, must be a directory
this process may write to, on a file system that can hold files (not read-only, not /proc or /sys).
"""

from __future__ import annotations

import os
from pathlib import Path

from edlm.errors import require

KINDS = ("file", "stem", "dir", "workdir")
REPORT_SUFFIXES = (".json", ".md")


def check_output_path(path, *, option: str = "--out", kind: str = "file",
                      suffixes: tuple[str, ...] = REPORT_SUFFIXES) -> Path | None:
    """Raise EdlmError (one sentence naming `option`, the path and the fix) unless `path` can be
    written as `kind` (see the module docstring); return it as a Path. None (an output that was not
    asked for) passes. `option`: a command-line option or argument ("--out", "OUT_DIR"), or a config
    key, which has a dot and is named as key=value ("train.out_dir=..."). `suffixes`: kind="stem" only."""
    if path is None:
        return None
    require(kind in KINDS, f"kind={kind!r} is not one of {KINDS}.")
    text = f"{option}={path}" if "." in option else f"{option} {path}"
    require(str(path).strip() != "", f"{option} is empty; pass a path to write.")
    target = Path(str(path)).expanduser()
    if kind == "stem":
        for suffix in suffixes:
            file = target.with_name(target.name + suffix)
            require(not os.path.isdir(file), f"{text} would write {file}, which is an existing directory; "
                    "pass another prefix.")
    elif kind == "file":
        require(not os.path.isdir(target), f"{text} is an existing directory; pass a file path, such as "
                "a name inside it.")
    else:
        require(not (os.path.lexists(target) and not os.path.isdir(target)),
                f"{text} is an existing file, not a directory; pass a directory path.")
    receiver = target if kind == "workdir" and os.path.isdir(target) else target.parent
    _check_receiver(receiver, text)
    return target


def _check_receiver(directory: Path, text: str) -> None:
    """EdlmError unless `directory`, or its nearest existing ancestor, is a directory we can create
    entries in."""
    ancestor = directory
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    require(os.path.isdir(ancestor), f"{text} lies under {ancestor}, which is not a directory; "
            "pass a path inside a directory.")
    require(os.access(ancestor, os.W_OK | os.X_OK),
            f"{text} cannot be written: directory {ancestor} is not writable for you; "
            "pass a path in a directory you can write to.")
    if not hasattr(os, "statvfs"):  # Windows
        return
    stats = os.statvfs(ancestor)
    require(not stats.f_flag & os.ST_RDONLY,
            f"{text} cannot be written: {ancestor} is on a read-only file system; "
            "pass a path on a writable disk.")
    require(stats.f_blocks > 0 or stats.f_files > 0,
            f"{text} cannot be written: {ancestor} is on a virtual file system (such as /proc or "
            "/sys) that holds no files; pass a path on a real disk.")
