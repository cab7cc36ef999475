"""Crash-safe file writes: nothing a reader can see is ever half written.

A file or directory is written under a temporary name in the same parent directory, flushed to
disk with fsync, and then renamed into place with `os.replace`, which is atomic on POSIX file
systems (and on NTFS for files). The parent directory is fsynced after the rename so the new name
survives a power loss too.

Temporary files and directories are created private (0600 / 0700); before anything is renamed into
place they get the permissions a plain `open` or `mkdir` would give under the user's umask (0644 /
0755 under umask 022), so what edlm writes is as readable as any other file the user makes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from pathlib import Path

TMP_PREFIX = ".tmp-"


def umask_mode(*, directory: bool) -> int:
    """The permission bits a new file (0o666) or directory (0o777) gets under this process's umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


def current_umask() -> int:
    """This process's umask, read from /proc/self/status on Linux (no race with other threads);
    elsewhere set and restored once with `os.umask` and remembered."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _umask_once()


@functools.lru_cache(maxsize=1)
def _umask_once() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_path(path: Path) -> None:
    """Flush a file's or a directory's data and metadata to disk (directories: POSIX only)."""
    flags = (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except (IsADirectoryError, PermissionError):  # Windows cannot open directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + "-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, umask_mode(directory=False))
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_path(path.parent)


def write_text_atomic(path: Path, text: str) -> None:
    """`write_bytes_atomic` for UTF-8 text."""
    write_bytes_atomic(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(final: Path):
    """Yield a fresh temporary directory beside `final`; on normal exit, give everything in it the
    umask's permissions, fsync it and rename it to `final` (an existing `final` is replaced). On an
    exception the temporary directory is removed and `final` is untouched; after a hard kill it is
    left behind under a `.tmp-` name, which `remove_stale_temporaries` cleans up.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + final.name + "-", dir=final.parent))
    try:
        os.chmod(tmp, umask_mode(directory=True))
        yield tmp
        for child in tmp.rglob("*"):  # writers such as safetensors create private files too
            os.chmod(child, umask_mode(directory=child.is_dir()))
            fsync_path(child)
        fsync_path(tmp)
        if final.exists():  # move it aside atomically, so `final` is never half deleted
            old = final.parent / f"{TMP_PREFIX}{final.name}-replaced-{os.getpid()}"
            os.replace(final, old)
            shutil.rmtree(old)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_path(final.parent)


def remove_stale_temporaries(directory: Path) -> None:
    """Delete what writers killed mid-write left in `directory` (names starting with `.tmp-`).

    Only call this where a single writer owns the directory, so no live write is removed.
    """
    for child in Path(directory).glob(TMP_PREFIX + "*"):
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                child.unlink()
