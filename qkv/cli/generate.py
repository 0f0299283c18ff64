"""``qkv generate``: continue prompts with a trained language model."""

from __future__ import annotations

import argparse

from qkv.cli._decoding import (add_decoding_options, add_input_options, print_outputs,
                               strategy_from_args)
from qkv.cli._help import DefaultsFormatter


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "generate", help="continue prompts with a trained language model",
        description="Continue each prompt (arguments, --input FILE, or stdin; an empty prompt "
                    "'' starts from nothing) with greedy search, beam search or sampling, using "
                    "the KV cache. Prints each prompt followed by its continuation; with "
                    "--num-return K > 1, K lines 'RANK<TAB>PROMPT+CONTINUATION' per prompt, a "
                    "blank line between prompts.",
        formatter_class=DefaultsFormatter)
    add_input_options(parser, "prompts")
    parser.add_argument("--max-new-tokens", type=int, default=100,
                        help="most tokens to add to each prompt")
    add_decoding_options(parser, num_return=True)
    parser.add_argument("--quantize", choices=["int8"],
                        help="int8 weights (weight-only): several times faster on the CPU, "
                             "close to float32 but not equal to it (tokens may differ)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from qkv.cli._load import load_model_for, read_inputs
    from qkv.decoding.text import generate_texts

    strategy = strategy_from_args(args)                 # bad options fail before loading
    loaded = load_model_for(args.model, "language_model", "qkv generate")
    if args.quantize:
        from qkv.quantization import quantize

        quantize(loaded.model, args.quantize, inplace=True)
    prompts = args.texts if args.texts else read_inputs([], args.input)
    outputs = generate_texts(loaded.model, loaded.target_tokenizer, prompts, strategy,
                             max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    print_outputs([prompt + out if isinstance(out, str) else [prompt + o for o in out]
                   for prompt, out in zip(prompts, outputs)])
    return 0
