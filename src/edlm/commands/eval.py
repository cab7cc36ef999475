"""`edlm eval <what>`: the evaluation commands, one module `eval_<what>.py` each."""

from __future__ import annotations

from edlm.commands import command_modules


def register(subparsers) -> None:
    modules = list(command_modules("eval_"))
    names = ", ".join(module.__name__.rsplit(".", 1)[-1][len("eval_"):] for module in modules)
    parser = subparsers.add_parser("eval", help=f"evaluate models and samples ({names})")
    inner = parser.add_subparsers(dest="eval_command", required=True, metavar="WHAT",
                                  help="run `edlm eval WHAT --help` for its options")
    for module in modules:
        module.register(inner)
