"""``qkv generate``: continue prompts with a trained language model."""

from __future__ import annotations

import argparse

from qkv.cli._decoding import add_decoding_options, add_input_options, strategy_from_args
from qkv.cli._help import DefaultsFormatter


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "generate", help="continue prompts with a trained language model",
        description="Continue each prompt (arguments, --input FILE, or stdin; an empty prompt "
                    "'' starts from nothing) with greedy search, beam search or sampling, using "
                    "the KV cache. Prints each prompt followed by its continuation.",
        formatter_class=DefaultsFormatter)
    add_input_options(parser, "prompts")
    parser.add_argument("--max-new-tokens", type=int, default=100,
                        help="most tokens to add to each prompt")
    add_decoding_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from qkv.cli._load import load_model_for, read_inputs
    from qkv.decoding.text import generate_texts

    loaded = load_model_for(args.model, "language_model", "qkv generate")
    prompts = args.texts if args.texts else read_inputs([], args.input)
    outputs = generate_texts(loaded.model, loaded.target_tokenizer, prompts,
                             strategy_from_args(args), max_new_tokens=args.max_new_tokens,
                             batch_size=args.batch_size)
    for prompt, continuation in zip(prompts, outputs):
        print(prompt + continuation)
    return 0
