"""File plumbing shared by the loaders: the cache directory, data-path resolution, atomic writes, digests.

Environment variables:
- `EDLM_CACHE`: where downloads and tokenized splits are kept (default `~/.cache/edlm`).
- `EDLM_DATA`: a directory of local corpora; relative `data.path` values are looked up there too.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from edlm.errors import EdlmError
from edlm.util.atomic import umask_mode


def cache_dir() -> Path:
    """The edlm cache directory: $EDLM_CACHE, else ~/.cache/edlm (not created here)."""
    return Path(os.environ.get("EDLM_CACHE") or Path.home() / ".cache" / "edlm").expanduser()


def data_root() -> Path | None:
    """The directory that $EDLM_DATA names, or None when it is unset or empty."""
    value = os.environ.get("EDLM_DATA", "")
    return Path(value).expanduser() if value else None


def resolve_data_path(path: str, what: str) -> Path:
    """An existing file or directory for `data.path`: as given, else relative to $EDLM_DATA.

    `what` names the corpus in the error message when neither place holds it.
    """
    given = Path(path).expanduser()
    candidates = [given]
    root = data_root()
    if root is not None and not given.is_absolute():
        candidates.append(root / given)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    tried = " or ".join(str(c) for c in candidates)
    raise EdlmError(f"data.path={path!r} for {what} does not exist (looked for {tried}); "
                    "point data.path at the file or directory, or set EDLM_DATA to the directory that holds it.")


@contextmanager
def atomic_path(target: Path):
    """Yield a temporary path beside `target`; on success it replaces `target` atomically, on error it is removed.

    A reader therefore sees either no file or the complete file, never a half-written one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, umask_mode(directory=False))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file's bytes (read in 4 MiB blocks)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
