"""Decoding options shared by ``qkv translate``, ``qkv generate`` (and ``qkv evaluate``), and how
their outputs are printed."""

from __future__ import annotations

import argparse
import math

from qkv.decoding import BeamSearch, Greedy, Sampling

__all__ = ["add_decoding_options", "strategy_from_args", "add_input_options", "print_outputs"]


def add_input_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("model", help="a checkpoint or run folder from qkv train, or a "
                                      "pretrained model folder")
    parser.add_argument("texts", nargs="*", help=f"{what}; without any, read --input or stdin")
    parser.add_argument("-i", "--input", help=f"file of {what}, one a line ('-': stdin)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="sentences decoded together (padded to the longest)")


def add_decoding_options(parser: argparse.ArgumentParser, *, num_return: bool = False) -> None:
    """The strategy's options; ``num_return``: also ``--num-return K`` (commands that print K
    outputs per input)."""
    group = parser.add_argument_group("decoding (greedy unless --beam or --sample)")
    group.add_argument("--beam", type=int, metavar="K", help="beam search with K beams")
    group.add_argument("--length-penalty", type=float, default=0.6,
                       help="beam search: GNMT length penalty alpha")
    group.add_argument("--sample", action="store_true", help="sample instead of searching")
    group.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    group.add_argument("--top-k", type=int, help="sample among the K most probable tokens")
    group.add_argument("--top-p", type=float, help="sample from the smallest set of tokens "
                                                   "whose probability reaches P (nucleus)")
    group.add_argument("--seed", type=int, help="seed for sampling")
    group.add_argument("--no-repeat-ngram", type=int, metavar="N",
                       help="no N tokens in a row occur twice in an output (a language model's "
                            "prompt counts too)")
    group.add_argument("--repetition-penalty", type=float, default=1.0, metavar="P",
                       help="CTRL penalty: the score of every token already there (a language "
                            "model's prompt included) is divided by P where positive, multiplied "
                            "where negative; P > 1 repeats less")
    group.add_argument("--min-length", type=int, default=0, metavar="N",
                       help="no end of sentence before N new tokens")
    if num_return:
        group.add_argument("--num-return", type=int, default=1, metavar="K",
                           help="K outputs per input: the K best beams (K <= --beam) or K "
                                "samples; printed as K lines 'RANK<TAB>OUTPUT', a blank line "
                                "between inputs")


def strategy_from_args(args: argparse.Namespace):
    if args.sample and args.beam:
        raise SystemExit("choose --beam or --sample, not both")
    if args.beam is not None and args.beam < 1:
        raise SystemExit(f"--beam must be at least 1, got {args.beam}")
    sampling_only = [name for name, value in (("--top-k", args.top_k), ("--top-p", args.top_p),
                                               ("--seed", args.seed)) if value is not None]
    if args.temperature != 1.0:
        sampling_only.append("--temperature")
    if sampling_only and not args.sample:
        verb = "applies" if len(sampling_only) == 1 else "apply"
        raise SystemExit(f"{', '.join(sampling_only)} {verb} only with --sample")
    controls = _controls(args)
    num_return = getattr(args, "num_return", 1)
    if num_return < 1:
        raise SystemExit(f"--num-return must be at least 1, got {num_return}")
    if num_return > 1 and not args.sample and (args.beam or 1) < num_return:
        raise SystemExit(f"--num-return {num_return} needs --beam {num_return} or more, or "
                         f"--sample; got {f'--beam {args.beam}' if args.beam else 'greedy search'}")
    if args.sample:
        return Sampling(args.temperature, args.top_k, args.top_p, args.seed,
                        num_return=num_return, **controls)
    if args.beam:
        return BeamSearch(args.beam, args.length_penalty, num_return=num_return, **controls)
    return Greedy(**controls)


def _controls(args: argparse.Namespace) -> dict:
    """The strategy fields of ``--no-repeat-ngram``, ``--repetition-penalty``, ``--min-length``,
    checked with the flags' names."""
    if args.no_repeat_ngram is not None and args.no_repeat_ngram < 1:
        raise SystemExit(f"--no-repeat-ngram must be at least 1, got {args.no_repeat_ngram}")
    if not 0 < args.repetition_penalty < math.inf:
        raise SystemExit(f"--repetition-penalty must be a number > 0 (1: none), got "
                         f"{args.repetition_penalty}")
    if args.min_length < 0:
        raise SystemExit(f"--min-length must be at least 0, got {args.min_length}")
    return dict(no_repeat_ngram_size=args.no_repeat_ngram,
                repetition_penalty=args.repetition_penalty, min_length=args.min_length)


def print_outputs(outputs: list[str] | list[list[str]]) -> None:
    """One line per input; where each input has a list of outputs (``--num-return`` K > 1), K
    lines ``RANK<TAB>OUTPUT`` (rank from 1; beam search: best first) and a blank line between
    inputs."""
    for index, output in enumerate(outputs):
        if isinstance(output, str):
            print(output)
            continue
        if index:
            print()
        for rank, text in enumerate(output, start=1):
            print(f"{rank}\t{text}")
