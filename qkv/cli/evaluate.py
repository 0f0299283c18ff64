"""``qkv evaluate``: score a checkpoint on held-out data (BLEU, chrF, exact match, perplexity)."""

from __future__ import annotations

import argparse
import json

from qkv.cli._decoding import add_decoding_options
from qkv.cli._help import DefaultsFormatter


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "evaluate", help="score a checkpoint: BLEU, chrF, exact match, perplexity",
        description="Decode the test set and score it: BLEU and chrF (sacrebleu; Chinese is "
                    "scored by character) and exact-match accuracy for translation and the toy "
                    "tasks; per-token loss and perplexity for every model. Without --data, the "
                    "test split of the corpus the checkpoint was trained on.",
        formatter_class=DefaultsFormatter)
    parser.add_argument("model", help="a checkpoint or run folder from qkv train")
    parser.add_argument("--data", help="test file: .tsv (or with --target) for translation, "
                                       "text for a language model")
    parser.add_argument("--target", help="aligned target file for --data")
    parser.add_argument("--split", choices=("test", "valid"), default="test",
                        help="which split of the training corpus, without --data")
    parser.add_argument("--limit", type=int, help="score only the first N examples")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="sentences decoded together (padded to the longest)")
    add_decoding_options(parser)
    parser.set_defaults(run=run)


def evaluation_examples(loaded, args) -> list:
    """The examples to score: ``--data``, or the checkpoint's own corpus split."""
    from qkv.data.sources import corpus_from_description
    from qkv.data.text import read_lines, read_parallel

    if args.data:
        if loaded.task == "translation":
            return read_parallel(args.data, args.target)
        return read_lines(args.data)
    if loaded.pretrained:
        raise SystemExit(f"qkv evaluate: {loaded.name} is a pretrained model, with no test set of "
                         "its own; pass --data FILE")
    examples = getattr(corpus_from_description(loaded.metadata.get("data", {})), args.split)
    if not examples:
        raise SystemExit(f"{loaded.name} was trained without a {args.split} set (qkv train "
                         f"--{args.split} FILE keeps one with the run); pass --data FILE")
    return examples


def run(args: argparse.Namespace) -> int:
    from qkv.cli._decoding import strategy_from_args
    from qkv.cli._load import load_model
    from qkv.decoding.text import translate_texts
    from qkv.evaluation import bleu, chrf, exact_match
    from qkv.training.tasks import LanguageModelTask, TranslationTask
    from qkv.training.trainer import evaluate_loss

    if args.limit is not None and args.limit < 1:
        raise SystemExit(f"qkv evaluate: --limit must be at least 1, got {args.limit}")
    loaded = load_model(args.model)
    examples = evaluation_examples(loaded, args)[:args.limit]
    if not examples:
        raise SystemExit("nothing to evaluate: the split is empty")
    scores: dict[str, float] = {"examples": len(examples)}
    if loaded.task == "translation":
        task = TranslationTask(loaded.source_tokenizer, loaded.target_tokenizer)
        hypotheses = translate_texts(loaded.model, loaded.source_tokenizer, loaded.target_tokenizer,
                                     [s for s, _ in examples], strategy_from_args(args),
                                     batch_size=args.batch_size)
        references = [t for _, t in examples]
        scores.update(bleu=bleu(hypotheses, references), chrf=chrf(hypotheses, references),
                      exact_match=exact_match(hypotheses, references))
    elif loaded.task == "language_model":
        task = LanguageModelTask(loaded.target_tokenizer, loaded.model.config.max_len)
    else:
        raise SystemExit(f"qkv evaluate scores translation and language models, not {loaded.task}")
    scores.update(evaluate_loss(loaded.model, task, task.encode(examples), max_tokens=4096))
    if args.json:
        print(json.dumps(scores))
    else:
        for name, value in scores.items():
            print(f"{name:12} {value:.4g}" if isinstance(value, float) else f"{name:12} {value}")
    return 0
