"""The repository's documentation holds together: no references to documents outside the repository,
every relative link and cited docs item exists, every `edlm.*` name in the docs resolves."""

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
MARKDOWN = [ROOT / "README.md", *DOCS, ROOT / "src" / "edlm" / "checkpoints" / "README.md"]
TEXT_SUFFIXES = {".py", ".md", ".sh", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".json"}
OUTSIDE = re.compile(r"DESIGN\.md|\.\./shared|seed 00\d|\btrap \d", re.IGNORECASE)
FILE_SUFFIXES = {"json", "jsonl", "md", "png", "txt", "yaml", "safetensors", "zip"}


def text_files(*tops: str) -> list[Path]:
    files = []
    for top in tops:
        path = ROOT / top
        found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files += [p for p in found if p.suffix in TEXT_SUFFIXES and not any(
            part.endswith(".egg-info") or part == "__pycache__" for part in p.parts)]
    return files


def without_code(markdown: str) -> str:
    """Markdown with fenced code blocks and inline code spans removed."""
    markdown = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", markdown)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(path: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    return [h.strip() for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)]


def test_nothing_cites_documents_outside_the_repository():
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
            for p in text_files("src", "docs", "README.md", "benchmarks", "scripts", "tests")
            if p.name != "test_docs.py"
            for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if OUTSIDE.search(line)]
    assert not hits, "cite docs/ or the paper instead:\n" + "\n".join(hits)


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files_and_headings_that_exist(page):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", without_code(page.read_text())):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in {slug(h) for h in headings(linked)}:
            broken.append(f"{target}: no such heading")
    assert not broken, broken


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_files_named_in_the_docs_exist(page):
    named = re.findall(r"\b((?:src/edlm|tests|benchmarks|scripts|docs)/[\w./-]+\.(?:py|sh|md|yaml))\b", page.read_text())
    assert not sorted({n for n in named if not (ROOT / n).exists()})


def snippets(markdown: str) -> list[str]:
    """Shell-like text of a page: each line of its fenced code blocks (backslash continuations joined)
    and each inline code span (line breaks inside it joined)."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", markdown, flags=re.M | re.S)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    indented = [line for line in prose.replace("\\\n", " ").splitlines() if line.startswith("    ")]
    return lines + indented + [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]


def subparsers(parser):
    import argparse

    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return actions[0].choices if actions else {}


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_edlm_commands_in_the_docs_exist_with_their_options(page):
    from edlm.cli import build_parser

    root = build_parser()
    wrong = []
    for snippet in snippets(page.read_text()):
        for command in re.split(r"&&|\|\||;|\s#\s|\$\(", snippet):
            tokens = command.split()
            starts = [i for i, w in enumerate(tokens) if w == "edlm" and (i == 0 or not tokens[i - 1].startswith("--"))]
            if not starts:
                continue
            words = tokens[starts[0] + 1:]
            parser, path = root, ["edlm"]
            while words and words[0] in subparsers(parser):
                parser = subparsers(parser)[words[0]]
                path.append(words.pop(0))
            if subparsers(parser) and not any(w.startswith("--") for w in words):
                continue  # prose such as `edlm eval` or `edlm data`
            known = {s for a in parser._actions for s in a.option_strings}
            used = re.findall(r"(?<![\w-])--[a-z][\w-]*", " ".join(words))
            wrong += [f"{' '.join(path)} {w}" for w in used if w not in known]
            if used and "..." not in words:  # a complete command line names every required option
                wrong += [f"{' '.join(path)} needs {a.option_strings[0]}" for a in parser._actions
                          if a.required and a.option_strings and not set(a.option_strings) & set(used)]
    assert not wrong, wrong


def test_options_named_alone_in_the_docs_exist():
    """An inline `--option` outside a command line must be an option of some edlm command."""
    from edlm.cli import build_parser

    def every_option(parser):
        yield from (s for a in parser._actions for s in a.option_strings)
        for sub in subparsers(parser).values():
            yield from every_option(sub)

    known = set(every_option(build_parser()))
    named = {(page.name, span.split()[0].split("=")[0]) for page in MARKDOWN
             for span in re.findall(r"`(--[a-z][^`]*)`", page.read_text())}
    assert not sorted((page, option) for page, option in named if option not in known)


def resolves(dotted: str) -> bool:
    """True when `dotted` is a module, or a module followed by attributes that exist."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_every_edlm_name_in_the_docs_resolves():
    names = {m for page in MARKDOWN for m in re.findall(r"\bedlm(?:\.[A-Za-z_]\w*)+", page.read_text())
             if m.rsplit(".", 1)[-1] not in FILE_SUFFIXES}
    assert len(names) > 20, names  # the pattern found the docs' names
    assert not sorted(n for n in names if not resolves(n))


def test_cited_docs_pages_items_and_sections_exist():
    """Code cites docs as "docs/PAGE.md", "docs/PAGE.md, item N" or "docs/PAGE.md, Section heading"."""
    cite = re.compile(r"docs/([\w-]+\.md)(?:, (?:item (\d+)|([^)\n]+?)(?=\)|$)))?", re.M)
    wrong = []
    for path in text_files("src", "tests", "benchmarks", "scripts", "README.md", "docs"):
        if path.name == "test_docs.py":
            continue
        for page, item, section in cite.findall(path.read_text(errors="replace")):
            target = ROOT / "docs" / page
            if not target.exists():
                wrong.append(f"{path.name}: docs/{page} does not exist")
                continue
            titles = headings(target)
            if item and not any(t.startswith(f"{item}. ") for t in titles):
                wrong.append(f"{path.name}: docs/{page} has no item {item}")
            if section and section.strip() not in titles:
                wrong.append(f"{path.name}: docs/{page} has no section {section.strip()!r}")
    assert not wrong, wrong


def test_every_pitfall_names_a_test_that_exists():
    text = (ROOT / "docs" / "pitfalls.md").read_text()
    named = re.findall(r"`(tests/test_\w+\.py)::(\w+)`", text)
    assert len(named) >= 10
    for file, test in named:
        assert re.search(rf"^def {test}\(", (ROOT / file).read_text(), flags=re.M), f"{file}::{test}"
    # "`::test_x`" continues the file named last before it
    for block in re.split(r"^## ", text, flags=re.M)[1:]:
        files = re.findall(r"`(tests/test_\w+\.py)::", block)
        for test in re.findall(r"`::(\w+)`", block):
            assert files and re.search(rf"^def {test}\(", (ROOT / files[-1]).read_text(), flags=re.M), test


def test_no_hard_flash_attn_dependency():
    """docs/pitfalls.md, item 9: attention is torch's SDPA; flash-attn is neither required nor imported."""
    assert "flash" not in (ROOT / "pyproject.toml").read_text().lower()
    imports = [p for p in text_files("src") if p.suffix == ".py"
               and re.search(r"^\s*(import|from)\s+flash_attn", p.read_text(), flags=re.M)]
    assert not imports
    assert "scaled_dot_product_attention" in (ROOT / "src" / "edlm" / "models" / "transformer.py").read_text()
