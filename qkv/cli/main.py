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
            "embed", "plot", "export", "explain")


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


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, except that the texts of ``qkv translate | generate | classify`` may
    come after options too (``qkv classify RUN --top 2 "some text"``): argparse fills a ``*``
    positional before it sees the options, then calls the texts after them unrecognized."""
    args, extras = parser.parse_known_args(argv)
    texts = getattr(args, "texts", None)
    if extras and isinstance(texts, list) and not any(e.startswith("-") for e in extras):
        args.texts = texts + extras
        return args
    return parser.parse_args(argv)           # nothing to mend: argparse's own result or error


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a problem with the user's input (a missing file, a bad value) is one line
    on stderr naming it, and exit status 2 — not a traceback."""
    args = parse_args(build_parser(), argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)     # for qkv train --nproc
    try:
        return int(args.run(args) or 0)
    except (OSError, ValueError) as error:
        print(f"qkv {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:                  # Ctrl-C where no command catches it
        print(f"qkv {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
