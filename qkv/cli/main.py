"""The ``qkv`` command; each sub-command lives in its own module of this package."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from qkv import __version__

# One module of qkv.cli per sub-command, each with ``add_parser(commands)``; the modules import
# their heavy dependencies inside ``run`` so that ``qkv --help`` stays fast.
COMMANDS = ("demo", "train", "translate", "generate", "classify", "evaluate", "view", "serve",
            "embed")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qkv",
        description="The Transformer's attention mechanism, from the formula up, as a glass box.",
    )
    parser.add_argument("--version", action="version", version=f"qkv {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"qkv.cli.{name}").add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a problem with the user's input (a missing file, a bad value) is one line
    on stderr naming it, and exit status 2 — not a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (OSError, ValueError) as error:
        print(f"qkv {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
