"""Decoding options shared by ``qkv translate`` and ``qkv generate``."""

from __future__ import annotations

import argparse

from qkv.decoding import BeamSearch, Greedy, Sampling

__all__ = ["add_decoding_options", "strategy_from_args", "add_input_options"]


def add_input_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("model", help="a checkpoint or run folder from qkv train, or a "
                                      "pretrained model folder")
    parser.add_argument("texts", nargs="*", help=f"{what}; without any, read --input or stdin")
    parser.add_argument("-i", "--input", help=f"file of {what}, one a line ('-': stdin)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="sentences decoded together (padded to the longest)")


def add_decoding_options(parser: argparse.ArgumentParser) -> None:
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
    if args.sample:
        return Sampling(args.temperature, args.top_k, args.top_p, args.seed)
    if args.beam:
        return BeamSearch(args.beam, args.length_penalty)
    return Greedy()
