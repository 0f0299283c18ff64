"""``qkv plot``: draw a run's training curves (metrics.jsonl) as a PNG: training loss and
perplexity, learning rate and tokens/s against the step, with every validation metric (loss,
perplexity, BLEU, chrF, accuracy). ``qkv train`` draws RUN/curves.png itself at the end; this
redraws it at any time, during training too. For live curves: ``tensorboard --logdir RUN``."""

from __future__ import annotations

import argparse
from pathlib import Path

from qkv.cli._help import DefaultsFormatter, describe


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "plot", help="draw a run's training curves as a PNG",
        description=describe(__doc__), formatter_class=DefaultsFormatter)
    parser.add_argument("folder", metavar="RUN",
                        help="a run folder of qkv train (or its metrics.jsonl)")
    parser.add_argument("-o", "--output",
                        help="image file, PNG, SVG or PDF by its suffix (default: "
                             "RUN/curves.png)")
    parser.add_argument("--title", help="drawn above the curves (default: the run's name)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from qkv.views.curves import curve_series, read_metrics, save_curves

    source = Path(args.folder)
    folder = source if source.is_dir() else source.parent
    series = curve_series(read_metrics(source))
    output = Path(args.output) if args.output else folder / "curves.png"
    if not output.parent.is_dir():
        raise FileNotFoundError(f"--output: no folder {output.parent} to write {output.name} in")
    saved = save_curves(series, output, title=args.title or f"training curves of "
                                                            f"{folder.resolve().name}")
    print(f"curves of {', '.join(series)}: {saved}")
    return 0


__all__ = ["add_parser", "run"]
