"""``qkv translate``: translate sentences with a trained encoder-decoder."""

from __future__ import annotations

import argparse

from qkv.cli._decoding import (add_decoding_options, add_input_options, print_outputs,
                               strategy_from_args)
from qkv.cli._help import DefaultsFormatter


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "translate", help="translate sentences with a trained encoder-decoder",
        description="Translate sentences (arguments, --input FILE, or stdin; one output line per "
                    "input) with greedy search, beam search or sampling, using the KV cache. "
                    "With --num-return K > 1: K lines 'RANK<TAB>TRANSLATION' per input, a blank "
                    "line between inputs.",
        formatter_class=DefaultsFormatter)
    add_input_options(parser, "sentences to translate")
    parser.add_argument("--max-len", type=int, help="most target tokens (default: 2·source + 10)")
    add_decoding_options(parser, num_return=True)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from qkv.cli._load import load_model_for, read_inputs
    from qkv.decoding.text import translate_texts

    strategy = strategy_from_args(args)                 # bad options fail before loading
    loaded = load_model_for(args.model, "translation", "qkv translate")
    texts = read_inputs(args.texts, args.input)
    print_outputs(translate_texts(loaded.model, loaded.source_tokenizer, loaded.target_tokenizer,
                                  texts, strategy, batch_size=args.batch_size,
                                  max_len=args.max_len))
    return 0
