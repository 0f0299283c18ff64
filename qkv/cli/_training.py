"""From ``qkv train``'s options to a ready run: corpus, tokenizers, task, model, settings.

Resuming takes the model config and tokenizers from the run's latest checkpoint, so a resumed
run trains exactly the model it stopped with. A classifier may start from a pretrained encoder
(``--init``), whose tokenizer it then uses.

Validation measures the loss on every validation example and, beyond it, greedy BLEU and chrF
(translation) or accuracy (classification) on the first ``--eval-subset`` of them: a fixed
subset, the same at every validation, so that the curves compare.

Under torchrun every process prepares the same run (the check: a digest of the tokenizers, the
model config and the example counts, compared across processes), and validation is shared out
over them.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from qkv.data.sources import Corpus, corpus_from_description, load_corpus
from qkv.decoding.classify import input_limit
from qkv.models import (
    LanguageModel,
    LanguageModelConfig,
    SequenceClassifier,
    SequenceClassifierConfig,
    Transformer,
    TransformerConfig,
)
from qkv.tokenizers import Tokenizer, train_tokenizer
from qkv.training.checkpoint import load_checkpoint
from qkv.training.distributed import SINGLE, World
from qkv.training.tasks import ClassificationTask, LanguageModelTask, TranslationTask
from qkv.training.trainer import TrainConfig, evaluate_accuracy

__all__ = ["Run", "prepare_run", "validation_subset"]


@dataclass
class Run:
    corpus: Corpus
    task: TranslationTask | LanguageModelTask | ClassificationTask
    model: nn.Module
    train: list
    valid: list
    config: TrainConfig
    metadata: dict
    summary: str
    extra_validation: Callable[[nn.Module], dict[str, float]] | None = None


def _tokenizers(args: argparse.Namespace, corpus: Corpus) -> tuple[Tokenizer, Tokenizer]:
    from qkv.cli.train import DEFAULT_TOKENIZERS
    default = DEFAULT_TOKENIZERS.get(corpus.description.get("name"), ("bpe", "bpe"))
    source_kind = args.source_tokenizer or args.tokenizer or default[0]
    target_kind = args.target_tokenizer or args.tokenizer or default[1]
    if corpus.task in ("language_model", "classification"):
        texts = corpus.train if corpus.task == "language_model" else (t for t, _ in corpus.train)
        tokenizer = train_tokenizer(target_kind, texts, vocab_size=args.vocab_size)
        return tokenizer, tokenizer
    return (train_tokenizer(source_kind, (s for s, _ in corpus.train), vocab_size=args.vocab_size),
            train_tokenizer(target_kind, (t for _, t in corpus.train), vocab_size=args.vocab_size))


def _model_config(args: argparse.Namespace, corpus: Corpus, source: Tokenizer, target: Tokenizer):
    from qkv.cli.train import SIZES
    d_model, heads, layers, d_ff = SIZES[args.model]
    common = dict(d_model=args.d_model or d_model, num_heads=args.heads or heads,
                  num_layers=args.layers or layers, d_ff=args.d_ff or d_ff, dropout=args.dropout,
                  positions=args.positions, max_len=args.max_len, pad_id=target.pad_id)
    if corpus.task == "language_model":
        return LanguageModelConfig(vocab_size=target.vocab_size, **common)
    if corpus.task == "classification":
        return SequenceClassifierConfig(vocab_size=target.vocab_size, labels=corpus_labels(corpus),
                                        pooling=args.pooling or "cls", **common)
    return TransformerConfig(vocab_size=source.vocab_size, tgt_vocab_size=target.vocab_size, **common)


def corpus_labels(corpus: Corpus) -> list[str]:
    """A classification corpus's label names, sorted: those of its training and validation
    examples (a held-out file may use no other, :func:`qkv.data.text.read_labelled`)."""
    return sorted({label for _, label in corpus.train} | {label for _, label in corpus.valid})


def _pretrained_classifier(args: argparse.Namespace, corpus: Corpus):
    """A classifier whose encoder (and tokenizer) come from ``--init``, with a fresh head."""
    from qkv.pretrained import classifier_from_pretrained

    for option in ("tokenizer", "vocab_size", "d_model", "heads", "layers", "d_ff"):
        if getattr(args, option) is not None:
            raise SystemExit(f"--{option.replace('_', '-')} does not apply with --init: the "
                             f"pretrained encoder {args.init} brings its own")
    model, tokenizer = classifier_from_pretrained(args.init, corpus_labels(corpus),
                                                  pooling=args.pooling)
    return model, tokenizer


def _class_weights(args: argparse.Namespace, corpus: Corpus, labels: list[str]) -> list[float] | None:
    """scikit-learn's "balanced" weights, ``n / (labels · count)``, for the labels the training
    data holds (1 for a label seen only in the validation set)."""
    if args.class_weights is None:
        return None
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight

    gold = np.array([label for _, label in corpus.train])
    present = np.array(sorted(set(gold)))
    weights = dict(zip(present, compute_class_weight("balanced", classes=present, y=gold)))
    return [float(weights.get(label, 1.0)) for label in labels]


def _train_config(args: argparse.Namespace) -> TrainConfig:
    from qkv.cli.train import DEFAULT_EVAL_SUBSET, FINE_TUNING, parse_duration
    defaults = FINE_TUNING if getattr(args, "init", None) else {"schedule": "warmup", "lr": 1.0}
    eval_subset = getattr(args, "eval_subset", None)
    if eval_subset is not None and eval_subset < 0:
        raise ValueError(f"--eval-subset must be a number of examples >= 0 (0: all), got "
                         f"{eval_subset}")
    return TrainConfig(
        steps=args.steps, max_tokens=args.max_tokens,
        schedule=args.schedule or defaults["schedule"],
        lr=args.lr if args.lr is not None else defaults["lr"],
        warmup_steps=args.warmup, label_smoothing=args.label_smoothing,
        clip_norm=args.clip_norm if args.clip_norm and args.clip_norm > 0 else None,
        eval_every=args.eval_every, save_every=args.save_every, seed=args.seed,
        max_time=parse_duration(getattr(args, "max_time", None)),
        eval_subset=DEFAULT_EVAL_SUBSET if eval_subset is None else eval_subset,
        accumulate=getattr(args, "accumulate", None) or 1)


def validation_subset(examples: list, count: int) -> list:
    """The validation examples that metrics beyond the loss are computed on: the first
    ``count`` (all for 0) — fixed, so that every validation of a run measures the same ones.

    Example:
        >>> validation_subset(["a", "b", "c"], 2), validation_subset(["a", "b", "c"], 0)
        (['a', 'b'], ['a', 'b', 'c'])
    """
    return list(examples[:count]) if count else list(examples)


def _translation_validation(task: TranslationTask, pairs: list[tuple[str, str]],
                            world: World = SINGLE) -> Callable[[nn.Module], dict[str, float]]:
    """Greedy BLEU and chrF (sacrebleu) of the model's translations of ``pairs``' sources
    against their targets (translated by all the processes of ``world``, scored on each)."""
    from qkv.cli._distributed import translate_shared
    from qkv.decoding import Greedy
    from qkv.evaluation import bleu, chrf

    sources, references = [s for s, _ in pairs], [t for _, t in pairs]

    def extra_validation(model: nn.Module) -> dict[str, float]:
        hypotheses = translate_shared(world, model, task.source_tokenizer,
                                      task.target_tokenizer, sources, Greedy(), everywhere=True)
        return {"bleu": bleu(hypotheses, references), "chrf": chrf(hypotheses, references)}
    return extra_validation


def _resumed_corpus(args: argparse.Namespace, saved: dict) -> Corpus:
    """The corpus a run was trained on, as its checkpoint describes it; a different DATA is an
    error, not a silent switch."""
    same = (args.data == saved["name"] if "name" in saved
            else Path(args.data).resolve() == Path(saved["path"]))
    if not same:
        raise SystemExit(f"--resume continues {args.out} on its own data "
                         f"({saved.get('name') or saved.get('path')}), not {args.data}")
    return corpus_from_description(saved)


def prepare_run(args: argparse.Namespace, world: World = SINGLE) -> Run:
    """Everything ``qkv train`` needs, from its parsed options. ``--resume`` takes the data, the
    model and the training settings from the run's checkpoint (only ``--steps`` may grow,
    ``--max-time`` gives this call its own budget and ``--accumulate`` its own batches a
    step). ``world``: the processes that train together (each prepares the same run)."""
    from qkv.cli.train import TASKS, parse_duration
    saved = None
    class_weights = None
    if args.resume:                              # the weights themselves are loaded by train()
        saved = load_checkpoint(args.out)
        corpus = _resumed_corpus(args, saved.metadata.get("data", {}))
        source, target = saved.source_tokenizer, saved.target_tokenizer
        model_config = saved.model.config
        class_weights = saved.metadata.get("class_weights")
        if args.steps <= saved.step:
            raise SystemExit(f"{args.out} has trained {saved.step} steps already: pass a larger "
                             "--steps to train more")
        config = TrainConfig(**{**saved.metadata["training"], "steps": args.steps})
        if getattr(args, "max_time", None) is not None:    # a budget for this call, not the run's
            config = dataclasses.replace(config, max_time=parse_duration(args.max_time))
        if getattr(args, "accumulate", None) is not None:
            config = dataclasses.replace(config, accumulate=args.accumulate)
        model = None
    else:
        corpus = load_corpus(args.data, target=args.target, valid=args.valid, test=args.test,
                             size=args.size, seed=args.seed,
                             task=TASKS[args.task] if getattr(args, "task", None) else None)
        if Path(args.out, "latest").exists():
            raise SystemExit(f"{args.out} already holds a run: pass --resume to continue it, or "
                             "choose another --out")
        _check_task_options(args, corpus)
        config = _train_config(args)
        if getattr(args, "init", None):
            model, source = _pretrained_classifier(args, corpus)
            target, model_config = source, model.config
        else:
            source, target = _tokenizers(args, corpus)
            model_config = _model_config(args, corpus, source, target)
            model = None
        if corpus.task == "classification":
            class_weights = _class_weights(args, corpus, list(model_config.labels))
    extra_validation, measured = None, ""
    if corpus.task == "language_model":
        task = LanguageModelTask(target, model_config.max_len)
        torch.manual_seed(config.seed)
        model = LanguageModel(model_config)
        train, valid = task.encode(corpus.train), task.encode(corpus.valid)
    elif corpus.task == "classification":
        task = ClassificationTask(target, model_config.labels, input_limit(model_config, target),
                                  class_weights)
        if model is None:
            torch.manual_seed(config.seed)
            model = SequenceClassifier(model_config)
        train, valid = task.encode(corpus.train), task.encode(corpus.valid)
        max_tokens, subset = config.max_tokens, validation_subset(valid, config.eval_subset)

        def extra_validation(model: nn.Module) -> dict[str, float]:
            return evaluate_accuracy(model, task, subset, max_tokens=max_tokens, world=world)
        measured = f" (accuracy on the first {len(subset)})"
    else:
        task = TranslationTask(source, target)
        torch.manual_seed(config.seed)
        model = Transformer(model_config)
        limit = model_config.max_len
        train = [e for e in task.encode(corpus.train) if max(map(len, e)) <= limit]
        fitting = [(pair, e) for pair, e in zip(corpus.valid, task.encode(corpus.valid))
                   if max(map(len, e)) <= limit]
        valid = [e for _, e in fitting]
        for name, kept, given in (("training", train, corpus.train),
                                  ("validation", valid, corpus.valid)):
            if len(kept) < len(given):
                print(f"skipped {len(given) - len(kept)} {name} pairs longer than --max-len "
                      f"{limit} tokens")
        pairs = validation_subset([pair for pair, _ in fitting], config.eval_subset)
        extra_validation = _translation_validation(task, pairs, world)
        measured = f" (BLEU and chrF on the first {len(pairs)})"
    if not valid:
        raise SystemExit("no validation examples (each must fit --max-len): pass a --valid file "
                         "or a larger data set")
    parameters = sum(p.numel() for p in model.parameters())
    resuming = (f"resuming {args.out} at step {saved.step} of {config.steps}, with the run's own "
                "data, model and training settings\n") if saved is not None else ""
    vocabularies = (f"vocabulary {target.vocab_size}" if source is target else
                    f"vocabularies {source.vocab_size} (source) / {target.vocab_size} (target)")
    labels = (f"; {len(model_config.labels)} labels" if corpus.task == "classification" else "")
    summary = resuming + (f"{corpus.task}: {len(train)} training / {len(valid)} validation examples"
               f"{measured}{labels}; {vocabularies}; {type(model).__name__} d_model "
               f"{model_config.d_model}, "
               f"{model_config.num_heads} heads, {model_config.num_layers} layers, "
               f"{parameters:,} parameters")
    if world.size > 1:
        world.check_same(_digest(source, target, model_config, len(train), len(valid)),
                         "the tokenizers, the model config or the examples")
    if world.distributed or config.accumulate > 1:
        group = world.size * config.accumulate
        summary += (f"\n{world.describe()}: a step takes {world.size} × {config.accumulate} "
                    f"batch(es) of up to {config.max_tokens} padded tokens, an effective batch "
                    f"of {group} batches, up to {group * config.max_tokens} padded tokens")
    metadata = {"data": corpus.description}
    if class_weights is not None:
        metadata["class_weights"] = class_weights
    return Run(corpus, task, model, train, valid, config, metadata, summary, extra_validation)


def _digest(source: Tokenizer, target: Tokenizer, model_config, *counts: int) -> str:
    """A fingerprint of what every process of a run must build alike."""
    text = json.dumps([source.to_dict(), target.to_dict(), model_config.to_dict(), counts],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_task_options(args: argparse.Namespace, corpus: Corpus) -> None:
    """Options of one task given for another are errors, not silently ignored."""
    if corpus.task == "classification":
        return
    for option in ("init", "pooling", "class_weights"):
        if getattr(args, option, None):
            raise SystemExit(f"--{option.replace('_', '-')} is for classification (--task "
                             f"classify); {args.data} is a {corpus.task} corpus")

