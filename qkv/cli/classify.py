"""``qkv classify``: the label of each text, with its probability, from a sequence classifier.

    qkv classify runs/languages "Bonjour tout le monde" "Guten Morgen" --top 3

prints, for each text, its ``--top`` most probable labels and their probabilities (``--json``:
one JSON object per text, one a line). The model is a checkpoint of ``qkv train --task
classify`` or a Hugging Face ``BertForSequenceClassification`` folder. Texts come as arguments,
from ``--input FILE`` (one a line) or from stdin. Under torchrun (``torchrun --nproc-per-node N
-m qkv classify MODEL --input FILE``) the processes share the batches and process 0 prints,
in input order.
"""

from __future__ import annotations

import argparse
import json

from qkv.cli._distributed import add_distributed_options
from qkv.cli._help import describe


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "classify", help="label texts with a sequence classifier (label and probability)",
        description=describe(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a checkpoint or run folder from qkv train --task classify, "
                                      "or a BertForSequenceClassification folder")
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    parser.add_argument("--input", metavar="FILE",
                        help="read texts from FILE, one a line ('-': stdin)")
    parser.add_argument("--top", type=int, default=1, metavar="K",
                        help="show the K most probable labels of each text")
    parser.add_argument("--json", action="store_true",
                        help='one JSON object a line: {"text", "label", "probability", "top"}')
    parser.add_argument("--batch-size", type=int, default=64, help="texts per forward pass")
    add_distributed_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from qkv.cli._distributed import classify_shared, command_world, on_device, require_file_input
    from qkv.cli._load import load_model_for, read_inputs
    from qkv.decoding.classify import top_labels

    if args.top < 1:
        raise SystemExit(f"qkv classify: --top must be at least 1, got {args.top}")
    if args.batch_size < 1:
        raise SystemExit(f"qkv classify: --batch-size must be at least 1, got {args.batch_size}")
    with command_world("qkv classify", args.dist_timeout) as world:
        require_file_input(world, args.texts, args.input, "qkv classify")
        loaded = load_model_for(args.model, "classification", "qkv classify")
        texts = read_inputs(args.texts, args.input)
        probabilities = classify_shared(world, on_device(world, loaded.model),
                                        loaded.source_tokenizer, texts,
                                        batch_size=args.batch_size)               # (N, C)
    if not world.is_main:
        return 0
    for text, best in zip(texts, top_labels(probabilities, loaded.model.labels, args.top)):
        if args.json:
            print(json.dumps({"text": text, "label": best[0][0], "probability": best[0][1],
                              "top": [{"label": label, "probability": p} for label, p in best]},
                             ensure_ascii=False))
        elif args.top == 1:
            print(f"{best[0][0]}\t{best[0][1]:.3f}\t{text}")
        else:
            print(text)
            for label, p in best:
                print(f"  {p:6.3f}  {label}")
    return 0
