"""text8: 100M characters of cleaned English Wikipedia (space and a-z), as chunks of `seq_len` characters.

Where the text comes from, first match wins:
1. `data.path`: a directory or a file (relative paths are also looked up under $EDLM_DATA);
2. $EDLM_DATA: a directory;
3. the canonical `text8.zip`, downloaded into the cache directory and checked (size and md5).
In a directory, the full corpus (`text8`, `text8.zip`, `text8/text8`, `text8/text8.zip`) is preferred over the
prefix (`text8/text8_prefix.txt`, `text8_prefix.txt`).

Splits, in characters: the full corpus uses the standard train [0, 90M), valid [90M, 95M), test [95M, 100M);
any other text file (the 12.5M-character prefix on our machines) uses train [0, 10M), valid [10M, 11M),
test [11M, 12M). Chunks are consecutive characters from the start of the split; the
remainder shorter than one chunk is dropped.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edlm.data.chars import bytes_to_ids
from edlm.data.files import atomic_path, cache_dir, data_root, file_digest, resolve_data_path
from edlm.errors import EdlmError, require

TEXT8_URL = "http://mattmahoney.net/dc/text8.zip"
TEXT8_ZIP_BYTES = 31_344_016
TEXT8_ZIP_MD5 = "f26f94c5209bc6159618bad4a559ff81"
TEXT8_CHARS = 100_000_000
PREFIX_MD5 = "ec1961819f29b7a812313fcc9439ced5"  # the 12,549,840-character prefix, text8/text8_prefix.txt
KNOWN_MD5 = {TEXT8_ZIP_MD5: "the official text8.zip", PREFIX_MD5: "the 12,549,840-character text8 prefix"}

STANDARD_SPLITS = {"train": (0, 90_000_000), "valid": (90_000_000, 95_000_000), "test": (95_000_000, 100_000_000)}
PREFIX_SPLITS = {"train": (0, 10_000_000), "valid": (10_000_000, 11_000_000), "test": (11_000_000, 12_000_000)}

_FULL_NAMES = ("text8", "text8.zip", "text8/text8", "text8/text8.zip")
_PREFIX_NAMES = ("text8/text8_prefix.txt", "text8_prefix.txt")


@dataclass(frozen=True)
class Text8Source:
    """The text file that splits are read from; `origin` is what was found or downloaded (the zip, or the file)."""

    path: Path
    origin: Path
    full: bool

    @property
    def splits(self) -> dict[str, tuple[int, int]]:
        """Split name -> [start, stop) character offsets."""
        return STANDARD_SPLITS if self.full else PREFIX_SPLITS


def fetch_url(url: str, dest: Path) -> None:
    """Stream `url` into the file `dest`, with a progress bar."""
    from edlm.util.progress import progress_bar

    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with progress_bar(total=total, unit="B", unit_scale=True, desc=f"downloading {url}") as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                bar.update(len(block))


def verify_zip(path: Path, *, size: int = TEXT8_ZIP_BYTES, md5: str = TEXT8_ZIP_MD5,
               source: str | None = None) -> None:
    """Raise EdlmError unless the file has exactly `size` bytes and the md5 `md5`.

    `source` names where the bytes came from (a URL for a fresh download, else the file itself).
    """
    fix = "try again later" if source else f"delete it and download {TEXT8_URL} again"
    source = source or str(path)
    actual = path.stat().st_size
    require(actual == size, f"text8.zip from {source} has {actual:,} bytes, not the expected {size:,}; {fix}.")
    digest = file_digest(path, "md5")
    require(digest == md5, f"text8.zip from {source} has md5 {digest}, not the expected {md5}; {fix}.")


def download_text8(cache: Path, *, url: str = TEXT8_URL, size: int = TEXT8_ZIP_BYTES,
                   md5: str = TEXT8_ZIP_MD5) -> Path:
    """`cache/text8.zip`, downloaded from `url` unless already there; checked against `size` and `md5` either way.

    The download goes to a temporary file that replaces `cache/text8.zip` only after it passes the checks.
    """
    target = cache / "text8.zip"
    if target.is_file():
        verify_zip(target, size=size, md5=md5)
        return target
    with atomic_path(target) as tmp:
        try:
            fetch_url(url, tmp)
        except (OSError, urllib.error.URLError) as err:
            raise EdlmError(f"could not download text8 from {url} ({err}); check the network, or set EDLM_DATA (or "
                            "data.path) to a directory that holds text8, text8.zip or text8/text8_prefix.txt.") from None
        verify_zip(tmp, size=size, md5=md5, source=url)
    return target


def unzip_text8(zip_path: Path, dest: Path) -> Path:
    """`dest/text8`, extracted (atomically) from the member `text8` of `zip_path` unless already there."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            info = archive.getinfo("text8")
            target = dest / "text8"
            if target.is_file() and target.stat().st_size == info.file_size:
                return target
            with atomic_path(target) as tmp, archive.open(info) as member, open(tmp, "wb") as out:
                shutil.copyfileobj(member, out, 1 << 22)
    except (zipfile.BadZipFile, KeyError) as err:
        raise EdlmError(f"{zip_path} is not a text8 zip with a member named text8 ({err}); delete it and "
                        f"download {TEXT8_URL} again.") from None
    return target


def _source_from_zip(zip_path: Path) -> Text8Source:
    verify_zip(zip_path)
    return Text8Source(path=unzip_text8(zip_path, cache_dir()), origin=zip_path, full=True)


def _source_at(path: Path) -> Text8Source:
    """The text8 source that an existing directory or file names."""
    if path.is_dir():
        found = next((path / n for n in _FULL_NAMES + _PREFIX_NAMES if (path / n).is_file()), None)
        require(found is not None, f"directory {path} holds no text8 corpus; it needs one of "
                                   f"{', '.join(_FULL_NAMES + _PREFIX_NAMES)}.")
        path = found
    if path.suffix == ".zip":
        return _source_from_zip(path)
    n_chars = path.stat().st_size
    require(path.name != "text8" or n_chars == TEXT8_CHARS,
            f"{path} has {n_chars:,} characters, but the full text8 has {TEXT8_CHARS:,}; it is truncated: "
            f"download {TEXT8_URL} again, or rename a prefix to text8_prefix.txt to use the prefix split.")
    return Text8Source(path=path, origin=path, full=n_chars == TEXT8_CHARS)


def find_text8(path: str = "") -> Text8Source:
    """Resolve `data.path`, then $EDLM_DATA, then the download (see the module docstring)."""
    if path:
        return _source_at(resolve_data_path(path, "text8"))
    root = data_root()
    if root is not None:
        require(root.is_dir(), f"EDLM_DATA={str(root)!r} is not a directory; point it at the shared data directory.")
        return _source_at(root)
    zip_path = download_text8(cache_dir())  # checked already
    return Text8Source(path=unzip_text8(zip_path, cache_dir()), origin=zip_path, full=True)


def read_text8(source: Text8Source, split: str) -> np.ndarray:
    """Character ids (int8[stop - start]) of `split`, every character checked against the alphabet."""
    require(split in source.splits, f"split={split!r} is unknown; use train, valid or test.")
    start, stop = source.splits[split]
    n_chars = source.path.stat().st_size
    require(n_chars >= stop, f"{source.path} has {n_chars:,} characters, but its {split} split needs characters "
                             f"[{start:,}, {stop:,}); use the 12.5M-character prefix or the full text8.")
    raw = np.fromfile(source.path, dtype=np.uint8, count=stop - start, offset=start)
    return bytes_to_ids(raw, source=str(source.path), offset=start)


def chunk_count(n_chars: int, split: str, seq_len: int) -> int:
    """Chunks of `seq_len` in a split of `n_chars` characters; EdlmError when not even one fits."""
    require(isinstance(seq_len, int) and seq_len >= 1, f"data.seq_len={seq_len!r} must be a positive integer.")
    require(n_chars >= seq_len, f"the text8 {split} split has {n_chars:,} characters, fewer than one chunk of "
                                f"data.seq_len={seq_len:,}; lower data.seq_len.")
    return n_chars // seq_len


def load_text8(source: Text8Source, split: str, seq_len: int) -> torch.Tensor:
    """Chunks LongTensor[N, seq_len] of character ids for `split`, N = split length // seq_len."""
    ids = read_text8(source, split)
    n = chunk_count(ids.size, split, seq_len)
    return torch.from_numpy(ids[: n * seq_len].astype(np.int64)).view(n, seq_len)
