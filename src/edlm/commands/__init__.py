"""Subcommands of the `edlm` command, discovered by name.

Each module `edlm/commands/<name>.py` (except those starting with `eval_`) defines
`register(subparsers)`, which adds its parser and sets `func=run` on it. Modules named
`eval_<what>.py` register under `edlm eval <what>` the same way (see `eval.py`).
"""

from __future__ import annotations

import importlib
import pkgutil


def command_modules(prefix: str = ""):
    """Imported command modules whose names start with `prefix` (top-level ones: no `eval_` prefix)."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        top_level = not prefix and not info.name.startswith("eval_")
        if (prefix and info.name.startswith(prefix)) or top_level:
            yield importlib.import_module(f"{__name__}.{info.name}")
