"""What the CLI commands that run a model share: loading a checkpoint or a pretrained model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from qkv.tokenizers.base import Tokenizer

__all__ = ["Loaded", "load_model", "load_model_for", "read_inputs"]

_TASKS = {"Transformer": "translation", "LanguageModel": "language_model", "EncoderModel": "encoder",
          "SequenceClassifier": "classification"}
# What a model of each task is, and which commands run it: for one-line errors.
_KINDS = {"translation": "an encoder-decoder", "language_model": "a language model",
          "encoder": "an encoder-only model", "classification": "a sequence classifier"}
_COMMANDS = {"translation": "qkv translate", "language_model": "qkv generate",
             "encoder": "qkv embed, qkv view or qkv serve", "classification": "qkv classify"}


@dataclass
class Loaded:
    """A model ready to run (eval mode) with its tokenizers and what it does: ``task`` is
    ``"translation"``, ``"language_model"``, ``"encoder"`` or ``"classification"``."""

    model: nn.Module
    task: str
    source_tokenizer: Tokenizer
    target_tokenizer: Tokenizer
    name: str
    pretrained: bool = False
    metadata: dict = field(default_factory=dict)      # a qkv checkpoint's (data, training…)


def load_model(spec: str) -> Loaded:
    """A qkv checkpoint (its folder or its run folder), or a pretrained model: ``"minilm"`` or a
    Hugging Face-format folder (``config.json`` + ``model.safetensors``; a
    ``BertForSequenceClassification`` folder is a classifier)."""
    path = Path(spec)
    is_pretrained = spec == "minilm" or (path / "config.json").is_file()
    if is_pretrained:
        from qkv.pretrained import load_pretrained
        model, tokenizer = load_pretrained(spec)
        model.eval()
        task = _TASKS.get(type(model).__name__)
        if task is None:
            raise ValueError(f"{spec}: a {type(model).__name__} is not a model the CLI can run")
        return Loaded(model, task, tokenizer, tokenizer, spec, pretrained=True)
    from qkv.training.checkpoint import load_checkpoint
    checkpoint = load_checkpoint(path)
    return Loaded(checkpoint.model, checkpoint.task, checkpoint.source_tokenizer,
                  checkpoint.target_tokenizer, str(checkpoint.path), metadata=checkpoint.metadata)


def load_model_for(spec: str, task: str, command: str) -> Loaded:
    """:func:`load_model`, refusing (one line, naming the right command) a model of another task."""
    loaded = load_model(spec)
    if loaded.task != task:
        raise SystemExit(f"{command} needs {_KINDS[task]}; {spec} holds "
                         f"{_KINDS.get(loaded.task, loaded.task)} (use {_COMMANDS[loaded.task]})")
    return loaded


def read_inputs(texts: list[str], file: str | None) -> list[str]:
    """The sentences given as arguments, else those of ``file`` (``-`` or no file: stdin), one a
    line; empty lines are skipped."""
    import sys
    if texts:
        return texts
    if file and file != "-":
        from qkv.data.text import read_text_lines
        lines = read_text_lines(file)
    else:
        lines = sys.stdin.read().splitlines()
    lines = [line.strip() for line in lines if line.strip()]
    if not lines:
        raise SystemExit("no input: give sentences as arguments, with --input FILE, or on stdin")
    return lines
