"""From ``qkv train``'s options to a ready run: corpus, tokenizers, task, model, settings.

Resuming takes the model config and tokenizers from the run's latest checkpoint, so a resumed
run trains exactly the model it stopped with.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from qkv.data.sources import Corpus, corpus_from_description, load_corpus
from qkv.models import LanguageModel, LanguageModelConfig, Transformer, TransformerConfig
from qkv.tokenizers import Tokenizer, train_tokenizer
from qkv.training.checkpoint import load_checkpoint
from qkv.training.tasks import LanguageModelTask, TranslationTask
from qkv.training.trainer import TrainConfig

__all__ = ["Run", "prepare_run"]


@dataclass
class Run:
    corpus: Corpus
    task: TranslationTask | LanguageModelTask
    model: nn.Module
    train: list
    valid: list
    config: TrainConfig
    metadata: dict
    summary: str


def _tokenizers(args: argparse.Namespace, corpus: Corpus) -> tuple[Tokenizer, Tokenizer]:
    from qkv.cli.train import DEFAULT_TOKENIZERS
    default = DEFAULT_TOKENIZERS.get(corpus.description.get("name"), ("bpe", "bpe"))
    source_kind = args.source_tokenizer or args.tokenizer or default[0]
    target_kind = args.target_tokenizer or args.tokenizer or default[1]
    if corpus.task == "language_model":
        tokenizer = train_tokenizer(target_kind, corpus.train, vocab_size=args.vocab_size)
        return tokenizer, tokenizer
    return (train_tokenizer(source_kind, (s for s, _ in corpus.train), vocab_size=args.vocab_size),
            train_tokenizer(target_kind, (t for _, t in corpus.train), vocab_size=args.vocab_size))


def _model_config(args: argparse.Namespace, task: str, source: Tokenizer, target: Tokenizer):
    from qkv.cli.train import SIZES
    d_model, heads, layers, d_ff = SIZES[args.model]
    common = dict(d_model=args.d_model or d_model, num_heads=args.heads or heads,
                  num_layers=args.layers or layers, d_ff=args.d_ff or d_ff, dropout=args.dropout,
                  positions=args.positions, max_len=args.max_len, pad_id=target.pad_id)
    if task == "language_model":
        return LanguageModelConfig(vocab_size=target.vocab_size, **common)
    return TransformerConfig(vocab_size=source.vocab_size, tgt_vocab_size=target.vocab_size, **common)


def _resumed_corpus(args: argparse.Namespace, saved: dict) -> Corpus:
    """The corpus a run was trained on, as its checkpoint describes it; a different DATA is an
    error, not a silent switch."""
    same = (args.data == saved["name"] if "name" in saved
            else Path(args.data).resolve() == Path(saved["path"]))
    if not same:
        raise SystemExit(f"--resume continues {args.out} on its own data "
                         f"({saved.get('name') or saved.get('path')}), not {args.data}")
    return corpus_from_description(saved)


def prepare_run(args: argparse.Namespace) -> Run:
    """Everything ``qkv train`` needs, from its parsed options. ``--resume`` takes the data, the
    model and the training settings from the run's checkpoint (only ``--steps`` may grow)."""
    if args.resume:                              # the weights themselves are loaded by train()
        saved = load_checkpoint(args.out)
        corpus = _resumed_corpus(args, saved.metadata.get("data", {}))
        source, target = saved.source_tokenizer, saved.target_tokenizer
        model_config = saved.model.config
        if args.steps <= saved.step:
            raise SystemExit(f"{args.out} has trained {saved.step} steps already: pass a larger "
                             "--steps to train more")
        config = TrainConfig(**{**saved.metadata["training"], "steps": args.steps})
    else:
        corpus = load_corpus(args.data, target=args.target, valid=args.valid, test=args.test,
                             size=args.size, seed=args.seed)
        if Path(args.out, "latest").exists():
            raise SystemExit(f"{args.out} already holds a run: pass --resume to continue it, or "
                             "choose another --out")
        source, target = _tokenizers(args, corpus)
        model_config = _model_config(args, corpus.task, source, target)
        config = TrainConfig(
            steps=args.steps, max_tokens=args.max_tokens, schedule=args.schedule, lr=args.lr,
            warmup_steps=args.warmup, label_smoothing=args.label_smoothing,
            clip_norm=args.clip_norm if args.clip_norm and args.clip_norm > 0 else None,
            eval_every=args.eval_every, save_every=args.save_every, seed=args.seed)
    if corpus.task == "language_model":
        task = LanguageModelTask(target, model_config.max_len)
        torch.manual_seed(config.seed)
        model = LanguageModel(model_config)
        train, valid = task.encode(corpus.train), task.encode(corpus.valid)
    else:
        task = TranslationTask(source, target)
        torch.manual_seed(config.seed)
        model = Transformer(model_config)
        limit = model_config.max_len
        train = [e for e in task.encode(corpus.train) if max(map(len, e)) <= limit]
        valid = [e for e in task.encode(corpus.valid) if max(map(len, e)) <= limit]
        for name, kept, given in (("training", train, corpus.train),
                                  ("validation", valid, corpus.valid)):
            if len(kept) < len(given):
                print(f"skipped {len(given) - len(kept)} {name} pairs longer than --max-len "
                      f"{limit} tokens")
    if not valid:
        raise SystemExit("no validation examples (each must fit --max-len): pass a --valid file "
                         "or a larger data set")
    parameters = sum(p.numel() for p in model.parameters())
    resuming = (f"resuming {args.out} at step {saved.step} of {config.steps}, with the run's own "
                "data, model and training settings\n") if args.resume else ""
    summary = resuming + (f"{corpus.task}: {len(train)} training / {len(valid)} validation examples; "
               f"vocabularies {source.vocab_size} (source) / {target.vocab_size} (target); "
               f"{type(model).__name__} d_model {model_config.d_model}, {model_config.num_heads} "
               f"heads, {model_config.num_layers} layers, {parameters:,} parameters")
    return Run(corpus, task, model, train, valid, config, {"data": corpus.description}, summary)
