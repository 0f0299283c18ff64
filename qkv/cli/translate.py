"""``qkv translate``: translate sentences with a trained encoder-decoder."""

from __future__ import annotations

import argparse

from qkv.cli._decoding import (add_decoding_options, add_input_options, print_outputs,
                               strategy_from_args)
from qkv.cli._distributed import add_distributed_options
from qkv.cli._help import DefaultsFormatter


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "translate", help="translate sentences with a trained encoder-decoder",
        description="Translate sentences (arguments, --input FILE, or stdin; one output line per "
                    "input) with greedy search, beam search or sampling, using the KV cache. "
                    "With --num-return K > 1: K lines 'RANK<TAB>TRANSLATION' per input, a blank "
                    "line between inputs. Under torchrun (torchrun --nproc-per-node N -m qkv "
                    "translate MODEL --input FILE) the processes share the batches and process "
                    "0 prints the translations, in input order.",
        formatter_class=DefaultsFormatter)
    add_input_options(parser, "sentences to translate")
    parser.add_argument("--max-len", type=int, help="most target tokens (default: 2·source + 10)")
    add_decoding_options(parser, num_return=True)
    add_distributed_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from qkv.cli._distributed import command_world, on_device, require_file_input, translate_shared
    from qkv.cli._load import load_model_for, read_inputs

    strategy = strategy_from_args(args)                 # bad options fail before loading
    with command_world("qkv translate", args.dist_timeout) as world:
        require_file_input(world, args.texts, args.input, "qkv translate")
        loaded = load_model_for(args.model, "translation", "qkv translate")
        texts = read_inputs(args.texts, args.input)
        outputs = translate_shared(world, on_device(world, loaded.model), loaded.source_tokenizer,
                                   loaded.target_tokenizer, texts, strategy,
                                   batch_size=args.batch_size, max_len=args.max_len)
        if world.is_main:
            print_outputs(outputs)
    return 0
