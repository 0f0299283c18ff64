"""``qkv evaluate``: score a checkpoint on held-out data (BLEU, chrF, exact match, perplexity;
for a classifier accuracy, macro-F1, per-label precision / recall / F1 and a confusion matrix).

Under torchrun the processes share the decoding and the loss batches out; the scores are
computed on process 0 from all the outputs gathered (not averaged over processes), so they are
the scores of one process."""

from __future__ import annotations

import argparse
import json

from qkv.cli._decoding import add_decoding_options
from qkv.cli._distributed import add_distributed_options
from qkv.cli._help import DefaultsFormatter


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "evaluate", help="score a checkpoint: BLEU, chrF, exact match, perplexity, accuracy, F1",
        description="Decode the test set and score it: BLEU and chrF (sacrebleu; Chinese is "
                    "scored by character) and exact-match accuracy for translation and the toy "
                    "tasks; per-token loss and perplexity for every model; for a classifier, "
                    "accuracy, macro-F1, precision / recall / F1 per label (scikit-learn) and "
                    "the confusion matrix as a PNG. Without --data, the test split of the "
                    "corpus the checkpoint was trained on.",
        formatter_class=DefaultsFormatter)
    parser.add_argument("model", help="a checkpoint or run folder from qkv train")
    parser.add_argument("--data", help="test file: .tsv (or with --target) for translation, "
                                       "text for a language model, text<TAB>label lines for a "
                                       "classifier")
    parser.add_argument("--target", help="aligned target file for --data")
    parser.add_argument("--split", choices=("test", "valid"), default="test",
                        help="which split of the training corpus, without --data")
    parser.add_argument("--limit", type=int, help="score only the first N examples")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.add_argument("--confusion", metavar="PNG",
                        help="where a classifier's confusion matrix goes (default: "
                             "confusion-<split>.png in the run folder, or in the current folder "
                             "for a pretrained model)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="sentences decoded together (padded to the longest)")
    add_decoding_options(parser)
    add_distributed_options(parser)
    parser.set_defaults(run=run)


def evaluation_examples(loaded, args) -> list:
    """The examples to score: ``--data``, or the checkpoint's own corpus split."""
    from qkv.data.sources import corpus_from_description
    from qkv.data.text import read_labelled, read_lines, read_parallel

    if args.data:
        if loaded.task == "translation":
            return read_parallel(args.data, args.target)
        if loaded.task == "classification":
            return read_labelled(args.data, labels=set(loaded.model.labels))
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
    from qkv.cli._distributed import command_world

    if args.limit is not None and args.limit < 1:
        raise SystemExit(f"qkv evaluate: --limit must be at least 1, got {args.limit}")
    with command_world("qkv evaluate", args.dist_timeout) as world:
        return evaluate(args, world)


def evaluate(args: argparse.Namespace, world) -> int:
    """Score ``args.model`` in ``world`` (its processes share the work; process 0 prints)."""
    from qkv.cli._decoding import strategy_from_args
    from qkv.cli._distributed import on_device, translate_shared
    from qkv.cli._load import load_model
    from qkv.evaluation import bleu, chrf, exact_match
    from qkv.training.tasks import LanguageModelTask, TranslationTask
    from qkv.training.trainer import evaluate_loss

    loaded = load_model(args.model)
    loaded.model = on_device(world, loaded.model)
    examples = evaluation_examples(loaded, args)[:args.limit]
    if not examples:
        raise SystemExit("nothing to evaluate: the split is empty")
    scores: dict[str, float] = {"examples": len(examples)}
    if loaded.task == "translation":
        task = TranslationTask(loaded.source_tokenizer, loaded.target_tokenizer)
        hypotheses = translate_shared(world, loaded.model, loaded.source_tokenizer,
                                      loaded.target_tokenizer, [s for s, _ in examples],
                                      strategy_from_args(args), batch_size=args.batch_size)
        if world.is_main:                        # scored on all the outputs, gathered
            references = [t for _, t in examples]
            scores.update(bleu=bleu(hypotheses, references), chrf=chrf(hypotheses, references),
                          exact_match=exact_match(hypotheses, references))
    elif loaded.task == "language_model":
        task = LanguageModelTask(loaded.target_tokenizer, loaded.model.config.max_len)
    elif loaded.task == "classification":
        return evaluate_classifier(loaded, examples, args, world)
    else:
        raise SystemExit(f"qkv evaluate scores translation and language models and classifiers, "
                         f"not {loaded.task}")
    scores.update(evaluate_loss(loaded.model, task, task.encode(examples), max_tokens=4096,
                                world=world))
    if not world.is_main:
        return 0
    if args.json:
        print(json.dumps(scores))
    else:
        for name, value in scores.items():
            print(f"{name:12} {value:.4g}" if isinstance(value, float) else f"{name:12} {value}")
    return 0


def evaluate_classifier(loaded, examples: list[tuple[str, str]], args: argparse.Namespace,
                        world=None) -> int:
    """Accuracy, macro-F1, the per-label table and the confusion matrix (printed as a table of
    scores, saved as a PNG), plus the loss on the same examples; ``world``: its processes share
    the work, process 0 scores and writes."""
    from pathlib import Path

    from qkv.cli._distributed import classify_shared
    from qkv.decoding.classify import input_limit
    from qkv.evaluation import classification_scores
    from qkv.training.distributed import SINGLE
    from qkv.training.tasks import ClassificationTask
    from qkv.training.trainer import evaluate_loss
    from qkv.views.confusion import save_confusion_matrix

    world = SINGLE if world is None else world
    model, tokenizer, labels = loaded.model, loaded.source_tokenizer, list(loaded.model.labels)
    probabilities = classify_shared(world, model, tokenizer, [text for text, _ in examples],
                                    batch_size=args.batch_size)                   # (N, C)
    task = ClassificationTask(tokenizer, labels, input_limit(model.config, tokenizer))
    loss = evaluate_loss(model, task, task.encode(examples), max_tokens=4096, world=world)
    if not world.is_main:
        return 0
    predicted = [labels[i] for i in probabilities.argmax(dim=-1).tolist()]
    scores = classification_scores(predicted, [label for _, label in examples], labels)
    split = Path(args.data).stem if args.data else args.split
    where = Path(args.confusion) if args.confusion else (
        Path(f"confusion-{split}.png") if loaded.pretrained
        else Path(loaded.name).parent / f"confusion-{split}.png")
    save_confusion_matrix(scores["confusion"], labels, where,
                          title=f"{Path(loaded.name).name} on {split} ({len(examples)} texts)")
    summary = {"examples": len(examples), "accuracy": scores["accuracy"],
               "macro_f1": scores["macro_f1"], "loss": loss["loss"]}
    if args.json:
        print(json.dumps({**summary, "per_label": scores["per_label"],
                          "confusion": scores["confusion"], "labels": labels,
                          "confusion_png": str(where)}, ensure_ascii=False))
        return 0
    print(f"examples     {len(examples)}\naccuracy     {scores['accuracy']:.2f}%\n"
          f"macro-F1     {scores['macro_f1']:.2f}%\nloss         {loss['loss']:.4g}\n")
    width = max(len("label"), *(len(label) for label in labels))
    print(f"{'label':{width}}  precision  recall      F1  support")
    for label, row in scores["per_label"].items():
        print(f"{label:{width}}  {row['precision']:9.1f}  {row['recall']:6.1f}  {row['f1']:6.1f}  "
              f"{row['support']:7d}")
    print(f"\nconfusion matrix: {where}")
    return 0
