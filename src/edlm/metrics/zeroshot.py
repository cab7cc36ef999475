"""Zero-shot perplexity of a model on corpora it was not trained on (MDLM / SEDD Table 3 style).

Corpora (documents, then the detokenizer applied to each):
- `ptb`: Mikolov's PTB, `ptb/ptb.{split}.txt` under the data directory; one document per line; `ptb`.
- `wikitext2`: WikiText-2; test from `wikitext-2/wiki.test.raw` (the raw split, like the Hugging Face
  `wikitext-2-raw-v1`), valid from `wikitext-2/valid.txt` (the tokenized split with `<unk>`: the only
  valid copy available here); one document per article (top-level ` = Title = ` headings); `wikitext`.
- `lambada`: LAMBADA (OpenAI's version); a local `.jsonl` (field `text`) or text file (one passage
  per line) via `path`, else the Hugging Face dataset `EleutherAI/lambada_openai` (needs the hub);
  one document per passage; `lambada`.
- `hf:NAME`: any Hugging Face dataset (`datasets.load_dataset(NAME, config, split=..., data_files=path)`,
  column `text_field`; e.g. `hf:json` with `path` a local JSON-lines file); a text file or a `.jsonl`
  file (field `text`): one document per non-empty line.
  No detokenizer unless one is asked for.

Sequences: with a tokenizer that has an EOS id, documents are tokenized and wrapped exactly as edlm's
training data (`edlm.data.wrap_documents`: each document followed by EOS, concatenated, cut into rows
`[EOS] + seq_len - 2 tokens + [EOS]`, the remainder dropped). Without an EOS (text8 characters), the
documents are joined by single spaces and cut into rows of seq_len characters; for the `char`
tokenizer the text is first reduced to text8's alphabet (`text8_normalize`).

The number is `edlm.likelihood.nelbo.split_likelihood` over every token of every row: exact for a
causal LM (kind "exact"), the MDLM NELBO for a denoiser and the score-entropy bound for a SEDD score
model (kind "upper_bound": the perplexity is an upper bound, up to Monte Carlo error). Both
dataset-level orders are reported: `ppl = exp(mean NLL per token)` over the whole corpus, and
`ppl_mean_of_sequences = mean over rows of exp(NLL_row / seq_len)` (exp, then mean: what SEDD's code
reports; never below `ppl`, docs/pitfalls.md, item 10).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from edlm.errors import EdlmError, require
from edlm.metrics.detokenizers import DETOKENIZERS, text8_normalize
from edlm.likelihood.nelbo import split_likelihood

CORPORA = ("ptb", "wikitext2", "lambada")
DEFAULT_DETOKENIZER = {"ptb": "ptb", "wikitext2": "wikitext", "lambada": "lambada"}
LAMBADA_HF = "EleutherAI/lambada_openai"


def _data_root() -> Path:
    from edlm.data.files import data_root

    root = data_root()
    require(root is not None, "the shared corpora are found through EDLM_DATA; set EDLM_DATA to the data directory "
            "(the one holding ptb/ and wikitext-2/) or pass --data.")
    return root


def _corpus_file(path: str | None, relative: str) -> Path:
    """The corpus file: `path` when it names a file, `path / relative` when it names a data directory (the one
    holding ptb/ and wikitext-2/), `$EDLM_DATA / relative` when it is None."""
    if path is None:
        return _data_root() / relative
    given = Path(path).expanduser()
    return given / relative if given.is_dir() else given


def _lines(path: Path) -> list[str]:
    require(path.is_file(), f"corpus file {path} does not exist; pass --data or set EDLM_DATA to the data directory.")
    if path.suffix == ".jsonl":
        docs = []
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        docs.append(json.loads(line)["text"])
                    except (json.JSONDecodeError, KeyError, TypeError):
                        raise EdlmError(f"{path}:{number} is not a JSON object with a 'text' field; "
                                        "fix the line.") from None
        return docs
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def wikitext_articles(text: str) -> list[str]:
    """WikiText text split into articles at top-level headings (lines ` = Title = `)."""
    articles, current = [], []
    for line in text.splitlines():
        if re.fullmatch(r" ?= [^=].* = ?", line) and current:
            articles.append("\n".join(current))
            current = []
        if line.strip():
            current.append(line)
    if current:
        articles.append("\n".join(current))
    return articles


def _hf_documents(name: str, config: str, split: str, text_field: str, data_files=None) -> list[str]:
    import datasets

    try:
        data = datasets.load_dataset(name, config or None, split=split, data_files=data_files)
    except Exception as err:  # datasets raises many types (hub, file, config errors)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EdlmError(f"could not load the Hugging Face dataset {name!r} split {split!r} ({first}); check the name, "
                        "--hf-config and --split (the hub needs the network), or pass a local file.") from None
    require(text_field in data.column_names, f"dataset {name!r} has no column {text_field!r}; pass --text-field, "
            f"one of {data.column_names}.")
    return [t for t in data[text_field] if t and t.strip()]


def corpus_documents(corpus: str, split: str = "test", *, path: str | None = None, hf_config: str = "",
                     text_field: str = "text") -> tuple[list[str], str]:
    """(raw documents, name of the default detokenizer) of a corpus (module docstring)."""
    if corpus == "ptb":
        require(split in ("train", "valid", "test"), f"PTB has no split {split!r}; use --split train, valid or test.")
        return _lines(_corpus_file(path, f"ptb/ptb.{split}.txt")), "ptb"
    if corpus == "wikitext2":
        files = {"test": "wiki.test.raw", "valid": "valid.txt"}
        require(path is not None or split in files,
                f"the local WikiText-2 has no split {split!r}; use --split valid or test.")
        file = _corpus_file(path, f"wikitext-2/{files.get(split, '')}")
        require(file.is_file(), f"corpus file {file} does not exist; pass --data or set EDLM_DATA.")
        return wikitext_articles(file.read_text(encoding="utf-8")), "wikitext"
    if corpus == "lambada":
        docs = _lines(Path(path)) if path else _hf_documents(LAMBADA_HF, "default", split, "text")
        return docs, "lambada"
    if corpus.startswith("hf:"):
        return _hf_documents(corpus[3:], hf_config, split, text_field, path), "none"
    file = Path(corpus)
    require(file.is_file(), f"--corpus {corpus!r} is neither one of {CORPORA}, hf:NAME, nor an existing file; "
            "pass one of those.")
    return _lines(file), "none"


def documents_to_rows(documents: list[str], tokenizer, seq_len: int) -> torch.Tensor:
    """Long[N, seq_len] rows of the documents (module docstring: wrapping with EOS, else plain chunks)."""
    if tokenizer.eos_id is not None:
        from edlm.data import wrap_documents

        encode_batch = getattr(tokenizer, "encode_batch", None)
        tokens = encode_batch(documents) if encode_batch else [tokenizer.encode(d) for d in documents]
        return wrap_documents(tokens, tokenizer.eos_id, seq_len)
    text = " ".join(documents)
    if getattr(tokenizer, "name", "") == "char":
        text = text8_normalize(text)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    n = ids.numel() // seq_len
    require(n >= 1, f"the corpus has {ids.numel()} tokens, fewer than one sequence of {seq_len}; use a shorter "
            "seq_len or more text.")
    return ids[: n * seq_len].view(n, seq_len)


@dataclass
class ZeroShotResult:
    """Zero-shot likelihood of a corpus. ppl = exp(nats_per_token); ppl_mean_of_sequences = mean over rows
    of exp(row nats / seq_len) (the other order); kind "upper_bound" marks a bound."""

    corpus: str
    split: str
    detokenizer: str
    kind: str
    ppl: float
    nats_per_token: float
    bits_per_token: float
    stderr: float
    num_documents: int
    num_sequences: int
    num_tokens: int
    seq_len: int
    num_t: int
    ppl_mean_of_sequences: float

    @property
    def ppl_label(self) -> str:
        return "PPL (upper bound)" if self.kind == "upper_bound" else "PPL"

    def to_dict(self) -> dict:
        return {**asdict(self), "ppl_label": self.ppl_label}


def zeroshot_perplexity(model, tokenizer, corpus: str, *, seq_len: int, split: str = "test",
                        detokenizer: str | None = None, path: str | None = None, hf_config: str = "",
                        text_field: str = "text", num_t: int = 16, batch_size: int = 16,
                        max_sequences: int | None = None, seed: int = 0, progress: bool = False) -> ZeroShotResult:
    """Per-token likelihood of `model` (denoiser, score model or causal LM) on a corpus (module docstring).

    detokenizer: one of DETOKENIZERS, None for the corpus's default. max_sequences: evaluate only the
    first rows (a quick look; the number then describes that slice). seed: the Monte Carlo generator.
    """
    documents, default = corpus_documents(corpus, split, path=path, hf_config=hf_config, text_field=text_field)
    name = detokenizer or default
    require(name in DETOKENIZERS, f"detokenizer={name!r} is unknown; use one of {sorted(DETOKENIZERS)}.")
    require(bool(documents), f"corpus {corpus!r} split {split!r} holds no text.")
    rows = documents_to_rows([DETOKENIZERS[name](d) for d in documents], tokenizer, seq_len)
    if max_sequences:
        rows = rows[:max_sequences]
    result = split_likelihood(model, rows, num_t=num_t, batch_size=batch_size,
                              generator=torch.Generator().manual_seed(seed), progress=progress)
    return ZeroShotResult(corpus, split, name, result.kind, result.ppl, result.nats_per_token,
                          result.bits_per_token, result.stderr, len(documents), result.num_sequences,
                          result.num_tokens, seq_len, result.num_t, result.ppl_mean_of_sequences)
