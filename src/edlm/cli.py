"""The `edlm` command line. Bad input exits with status 2 and one sentence naming the fix."""

from __future__ import annotations

import argparse
import sys

from edlm.errors import EdlmError


def build_parser() -> argparse.ArgumentParser:
    from edlm.commands import command_modules
    from edlm.version import __version__

    parser = argparse.ArgumentParser(
        prog="edlm", description="Energy-based discrete diffusion language models: train, sample, evaluate.")
    parser.add_argument("--version", action="version", version=f"edlm {__version__}",
                        help="print edlm's version and exit")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                       help="run `edlm COMMAND --help` for its options")
    for module in command_modules():
        if hasattr(module, "register") and module.__name__.rsplit(".", 1)[-1] != "__init__":
            module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EdlmError as err:
        print(f"edlm: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edlm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
