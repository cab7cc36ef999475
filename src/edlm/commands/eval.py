"""`edlm eval <what>`: the evaluation commands, one module `eval_<what>.py` each."""

from __future__ import annotations

from edlm.commands import command_modules


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate models and samples (nll, gen, mauve, zeroshot, latency, energy)")
    inner = parser.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    for module in command_modules("eval_"):
        module.register(inner)
