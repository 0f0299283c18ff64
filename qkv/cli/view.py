"""``qkv view MODEL "I love my dog" -o attention.html``: the attention views of a model as a file.

Writes the interactive HTML page (head, model, neuron and step views; self-contained, works
offline) and, with ``--png PATH`` (a .png or .svg path), a layers × heads heatmap grid of each
attention kind. The page shows the model's output beside the attention, and the command prints
it: a classifier's most probable labels, a translation (the greedy one, the target side of the
views), a language model's most probable next tokens after the text.
"""

from __future__ import annotations

import argparse

from qkv.cli._help import describe


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "view", help="write the attention views of a model on a sentence (HTML, PNG)",
        description=describe(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", metavar="MODEL", help="a checkpoint folder or a pretrained name")
    parser.add_argument("text", help="the sentence to look at")
    parser.add_argument("--target", default=None,
                        help="translation models: the target to teacher-force (default: greedy)")
    parser.add_argument("-o", "--output", default="attention.html",
                        help="where to write the HTML page (default: %(default)s)")
    parser.add_argument("--png", default=None, metavar="PATH",
                        help="also write a layers × heads heatmap grid (.png or .svg); with "
                             "several kinds of attention, one file per kind (PATH-kind.png)")
    parser.add_argument("--max-tokens", type=int, default=1024,
                        help="most tokens per side (default: %(default)s)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from qkv.cli._load import load_model
    from qkv.views import explore, save_heatmap, save_html
    from qkv.views.contract import kinds

    loaded = load_model(args.model)
    try:
        document = explore(loaded.model, task=loaded.task,
                           source_tokenizer=loaded.source_tokenizer,
                           target_tokenizer=loaded.target_tokenizer, text=args.text,
                           target_text=args.target, max_tokens=args.max_tokens)
    except ValueError as exception:
        raise SystemExit(f"qkv view: {exception}") from None
    if "prediction" in document:
        print(_summary(document["prediction"]))
    print(f"wrote {save_html(document, args.output)}")
    if args.png:
        path, present = Path(args.png), kinds(document)
        for kind in present:
            out = path if len(present) == 1 else path.with_name(f"{path.stem}-{kind}{path.suffix}")
            print(f"wrote {save_heatmap(document, out, kind=kind)}")
    return 0


def _summary(prediction: dict) -> str:
    """One line of a document's ``"prediction"`` (:mod:`qkv.views.contract`), for the terminal."""
    from qkv.views.contract import ranked_labels

    if prediction["kind"] == "translation":
        return f"translation: {prediction['text']!r}"
    if prediction["kind"] == "next_token":
        pairs = list(zip(prediction["tokens"], prediction["probabilities"]))[:3]
        return "next token: " + ", ".join(f"{token!r} {p:.4f}" for token, p in pairs)
    best = ranked_labels(prediction, k=3)
    return "prediction: " + ", ".join(f"{label!r} {p:.4f}" for label, p in best)
