"""The package's layering (docs/architecture.md, Layers): every `edlm` import, at module level or inside
a function, goes to the importer's layer or a lower one, and no modules import each other in a circle."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "edlm"


def layer_table() -> dict[str, int]:
    """{top-level module name: layer} from the table in docs/architecture.md ("__init__" is the package)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    layers = {}
    for number, modules in re.findall(r"^\| (\d+) \| ([^|]+) \|", text, flags=re.M):
        for name in re.findall(r"`([^`]+)`", modules):
            layers[name.rstrip("/")] = int(number)
    return layers


def module_name(path: Path) -> str:
    parts = ["edlm", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The edlm modules `name` imports anywhere in its file (each target cut to the longest known module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(here[:len(here) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] or [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    edges = {m: imported(m, p, known) for m, p in mods.items()}
    # a package's __init__ re-exporting its own submodules is not a dependency of design
    return {m: {t for t in ts if not (mods[m].name == "__init__.py" and t.startswith(m + "."))}
            for m, ts in edges.items()}


def test_every_module_is_placed_and_imports_only_its_layer_or_lower():
    layers = layer_table()
    assert len(set(layers.values())) >= 10, layers  # the table was found
    edges = graph()
    unplaced = sorted({top(m) for m in edges} - set(layers))
    assert not unplaced, f"modules missing from the table in docs/architecture.md: {unplaced}"
    upward = [f"{m} (layer {layers[top(m)]}) imports {t} (layer {layers[top(t)]})"
              for m, ts in sorted(edges.items()) for t in sorted(ts) if layers[top(t)] > layers[top(m)]]
    assert not upward, "\n".join(upward)


def test_no_import_circles():
    edges = graph()
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components; the package has ~100 modules
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    assert not circles, circles


def test_the_checker_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from edlm.train.loop import train\n    import edlm.metrics.mauve\n")
    known = {"edlm.train.loop", "edlm.train", "edlm.metrics", "edlm.metrics.mauve"}
    assert imported("edlm.data.mod", source, known) == {"edlm.train.loop", "edlm.metrics.mauve"}


def test_commands_do_not_import_each_other():
    """A subcommand module (one with `register`) never imports another; shared option glue lives in modules
    of commands/ without `register` (docs/architecture.md, How to add)."""
    mods = modules()
    commands = {m for m, p in mods.items() if m.startswith("edlm.commands.") and "def register(" in p.read_text()}
    assert {"edlm.commands.sample", "edlm.commands.demo", "edlm.commands.eval_latency"} <= commands
    crossing = sorted(f"{m} imports {t}" for m, ts in graph().items() if m in commands for t in ts if t in commands)
    assert not crossing, crossing
