"""Token-level corpora as documents per split: local text files (`corpus: text`) or a Hugging Face dataset (`corpus: hf`).

A document is one line of a text file, or one example (its `data.text_field`) of a dataset, with surrounding
whitespace stripped; blank ones are skipped. Lines, because the usual LM files put one unit per line (PTB: a
sentence; WikiText: a paragraph or heading) and Hugging Face's `text` loader makes one example per line, so a
file gives the same documents through either path. Skipping blank lines keeps runs of bare EOS tokens (trivially
predictable, flattering perplexity) out of the data.

Splits: train, valid, test (dataset or file names valid/validation/val/dev all mean valid). A corpus without a
valid or test split gets it carved from the end of its train documents: `round(valid_fraction * n)` documents
(at least one) per missing split, test last, valid before it, train the rest; deterministic, contiguous (like
MDLM's OpenWebText validation split), so neighbouring lines do not leak across splits.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edlm.data.files import file_digest, resolve_data_path
from edlm.errors import EdlmError, require

SPLITS = ("train", "valid", "test")
SPLIT_ALIASES = {"train": ("train",), "valid": ("valid", "validation", "val", "dev"), "test": ("test",)}


@dataclass(frozen=True)
class Corpus:
    """Readers of each split's documents, and a fingerprint of the source content (None: unknown, do not cache)."""

    name: str
    parts: dict[str, Callable[[], list[str]]]
    fingerprint: str | None


def _documents(texts) -> list[str]:
    """Stripped, non-blank documents."""
    return [d for d in (t.strip() for t in texts) if d]


def read_lines(path: Path) -> list[str]:
    """The documents (non-blank stripped lines) of a UTF-8 text file; CRLF line ends are accepted."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise EdlmError(f"{path} is not UTF-8 text (byte {raw[err.start:err.start + 1]!r} at offset {err.start:,}); "
                        "convert it to UTF-8.") from None
    return _documents(text.split("\n"))


def _split_of(name: str) -> str | None:
    """The split a file or dataset-split name means: one of its '.', '_', '-' separated words is an alias."""
    words = set(re.split(r"[._\-]", name.lower()))
    found = [split for split, aliases in SPLIT_ALIASES.items() if words & set(aliases)]
    return found[0] if len(found) == 1 else None


def _split_files(directory: Path, path: str) -> dict[str, Path]:
    found: dict[str, list[Path]] = {}
    for f in sorted(directory.iterdir()):
        split = _split_of(f.name) if f.is_file() and not f.name.startswith(".") else None
        if split:
            found.setdefault(split, []).append(f)
    require(bool(found), f"directory {directory} has no split files (names with train, valid/validation/val/dev or "
                         "test as a word, like ptb.train.txt); point data.path at one text file or such a directory.")
    for split, files in found.items():
        example = files[0].name
        for alias in SPLIT_ALIASES[split]:
            example = re.sub(rf"(?<![a-z]){alias}(?![a-z])", "{split}", example, count=1)
        require(len(files) == 1, f"directory {directory} has several {split} files ({', '.join(f.name for f in files)}); "
                                 f"pick one name pattern, e.g. data.path={path.rstrip('/')}/{example}.")
    return {split: files[0] for split, files in found.items()}


def _template_files(path: str) -> dict[str, Path]:
    """Files of `DIR/name{split}pattern`: each split's aliases substituted in turn, the first existing file kept."""
    template = Path(path)
    require("{split}" in template.name and "{split}" not in str(template.parent),
            f"data.path={path!r}: put {{split}} in the file name only, e.g. ptb/ptb.{{split}}.txt.")
    directory = resolve_data_path(str(template.parent), "the text corpus")
    files = {}
    for split, aliases in SPLIT_ALIASES.items():
        existing = [directory / template.name.replace("{split}", a) for a in aliases
                    if (directory / template.name.replace("{split}", a)).is_file()]
        if existing:
            files[split] = existing[0]
    require(bool(files), f"data.path={path!r} matches no files in {directory}; "
                         f"the name must give a file when {{split}} is train, valid (or validation, val, dev) or test.")
    return files


def text_corpus(path: str) -> Corpus:
    """A corpus of local text files: one file (valid and test carved from it), a directory of split files, or a
    template `DIR/prefix{split}suffix` such as `ptb/ptb.{split}.txt`."""
    require(bool(path), "data.corpus=text needs data.path: a text file, a directory of split files, or a template "
                        "like ptb/ptb.{split}.txt.")
    if "{split}" in path:
        files = _template_files(path)
    else:
        resolved = resolve_data_path(path, "the text corpus")
        files = _split_files(resolved, path) if resolved.is_dir() else {"train": resolved}
    digest = hashlib.sha256()
    for split, f in sorted(files.items()):
        digest.update(f"{split}:{file_digest(f, 'sha256')};".encode())
    parts = {split: (lambda f=f: read_lines(f)) for split, f in files.items()}
    return Corpus(name=f"text corpus {path}", parts=parts, fingerprint="text:" + digest.hexdigest())


def hf_corpus(name: str, config: str, path: str, text_field: str) -> Corpus:
    """A corpus from `datasets.load_dataset(name, config or None)`; `path` (a file or directory) becomes its
    `data_files` or `data_dir`, for loaders such as "text", "json", "csv" or "parquet"."""
    require(bool(name), "data.corpus=hf needs data.hf_name: a dataset name, a local dataset directory, or a loader "
                        "such as json, text or parquet together with data.path.")
    try:
        import datasets
    except ImportError:
        raise EdlmError("data.corpus=hf needs the datasets package; install it with pip install 'edlm[hf]'.") from None
    kwargs = {}
    if path:
        local = resolve_data_path(path, f"the Hugging Face dataset {name!r}")
        kwargs = {"data_dir": str(local)} if local.is_dir() else {"data_files": str(local)}
    try:
        loaded = datasets.load_dataset(name, config or None, **kwargs)
    except (OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(".")
        raise EdlmError(f"could not load the Hugging Face dataset {name!r} (config {config or None!r}): {first}; "
                        "check data.hf_name, data.hf_config and data.path (the hub needs the network).") from None
    parts, names, fingerprints = {}, {}, []
    for split_name, dataset in sorted(loaded.items()):
        split = _split_of(split_name)
        if split is None:
            continue
        require(split not in parts, f"dataset {name!r} has two splits that mean {split}, {names.get(split)!r} and "
                                    f"{split_name!r}; remove one of them.")
        require(text_field in dataset.column_names, f"dataset {name!r} split {split_name!r} has no column "
                f"{text_field!r}; set data.text_field to one of {dataset.column_names}.")
        dtype = getattr(dataset.features[text_field], "dtype", None)
        require(dtype in ("string", "large_string"), f"dataset {name!r} split {split_name!r} column "
                f"{text_field!r} holds {dtype or 'nested'} values, not text; set data.text_field to a text column.")
        parts[split], names[split] = (lambda dataset=dataset: _hf_documents(dataset, text_field)), split_name
        fingerprints.append(f"{split}:{getattr(dataset, '_fingerprint', None)}")
    require(bool(parts), f"dataset {name!r} has no train, validation or test split (it has {sorted(loaded)}); "
                         "use a dataset with such splits.")
    known = all(not f.endswith(":None") for f in fingerprints)
    key = f"{text_field};{';'.join(fingerprints)}"
    fingerprint = "hf:" + hashlib.sha256(key.encode()).hexdigest() if known else None
    return Corpus(name=f"dataset {name}", parts=parts, fingerprint=fingerprint)


def _hf_documents(dataset, text_field: str) -> list[str]:
    return _documents(t for t in dataset[text_field] if t is not None)


def split_documents(corpus: Corpus, split: str, valid_fraction: float) -> list[str]:
    """The documents of `split`, carving missing valid/test splits from train (see the module docstring)."""
    require(split in SPLITS, f"split={split!r} is unknown; use train, valid or test.")
    missing = [s for s in ("valid", "test") if s not in corpus.parts]
    if split in corpus.parts and (split != "train" or not missing):
        return corpus.parts[split]()
    require("train" in corpus.parts, f"{corpus.name} has no {split} split"
            + ("" if split == "train" else " and no train split to carve it from")
            + f" (it has {', '.join(sorted(corpus.parts))}); add a {split} file or use another split.")
    require(0 < valid_fraction < 1 / (len(missing) + 1),
            f"data.valid_fraction={valid_fraction} must lie in (0, {1 / (len(missing) + 1):.3g}) to carve "
            f"{' and '.join(missing)} from the train documents of {corpus.name}.")
    docs = corpus.parts["train"]()
    n = max(1, round(valid_fraction * len(docs)))
    keep = len(docs) - n * len(missing)
    require(keep >= 1, f"{corpus.name} has {len(docs)} train documents, too few to carve {' and '.join(missing)} "
                       f"of {n} documents each; add documents or provide separate split files.")
    if split == "train":
        return docs[:keep]
    start = keep + n * missing.index(split)
    return docs[start:start + n]
