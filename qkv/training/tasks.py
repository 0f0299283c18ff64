"""What a model is trained to do: tokenized examples, batches as tensors, and the loss.

* :class:`TranslationTask` — an encoder–decoder on (source, target) pairs: the source ends with
  ``<eos>``, the decoder reads ``<bos> y1 … yn`` and predicts ``y1 … yn <eos>`` (teacher forcing).
* :class:`LanguageModelTask` — a decoder-only model on texts: reads ``<bos> x1 … xn`` and
  predicts ``x1 … xn <eos>``; texts longer than the model's ``max_len`` are cut into pieces.
* :class:`ClassificationTask` — a sequence classifier on (text, label) pairs: reads
  ``<bos> x1 … xn <eos>`` (BERT's ``[CLS] … [SEP]``) and predicts the label's index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from qkv.tokenizers.base import Tokenizer
from qkv.training.loss import Loss, label_smoothed_cross_entropy

__all__ = ["TranslationTask", "LanguageModelTask", "ClassificationTask", "Batch", "pad_batch",
           "classification_ids"]


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> Tensor:
    """Right-pad id lists into one tensor: ``N`` lists → ``(N, longest)``.

    Example:
        >>> pad_batch([[5, 6, 7], [8]], pad_id=0)
        tensor([[5, 6, 7],
                [8, 0, 0]])
    """
    longest = max(len(s) for s in sequences)
    batch = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        batch[row, :len(sequence)] = torch.as_tensor(list(sequence), dtype=torch.long)
    return batch


@dataclass
class Batch:
    """Model inputs and what to predict. ``source`` is ``None`` for a language model and a
    classifier.

    Shape: ``source (B, S)``, ``inputs (B, T)``, ``targets (B, T)`` (padding = the pad id), or
    ``targets (B,)`` label indices for a classifier.
    """

    source: Tensor | None
    inputs: Tensor
    targets: Tensor

    def to(self, device: torch.device) -> Batch:
        """The batch on ``device`` (the model's)."""
        return Batch(None if self.source is None else self.source.to(device),
                     self.inputs.to(device), self.targets.to(device))


class TranslationTask:
    """Sequence-to-sequence training on (source, target) text pairs."""

    name = "translation"

    def __init__(self, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer) -> None:
        source_tokenizer.require("eos", "pad")
        target_tokenizer.require("bos", "eos", "pad")
        if source_tokenizer.pad_id != target_tokenizer.pad_id:
            raise ValueError("source and target tokenizers must share the pad id, got "
                             f"{source_tokenizer.pad_id} and {target_tokenizer.pad_id}")
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.pad_id = target_tokenizer.pad_id

    def encode_source(self, text: str) -> list[int]:
        return self.source_tokenizer.encode(text) + [self.source_tokenizer.eos_id]

    def encode(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        """Pairs of text → pairs of ids: ``(x… <eos>, <bos> y… <eos>)``."""
        bos, eos = self.target_tokenizer.bos_id, self.target_tokenizer.eos_id
        return [(self.encode_source(source), [bos, *self.target_tokenizer.encode(target), eos])
                for source, target in pairs]

    @staticmethod
    def lengths(examples) -> list[int]:
        return [max(len(source), len(target)) for source, target in examples]

    def collate(self, examples) -> Batch:
        target = pad_batch([t for _, t in examples], self.pad_id)           # (B, T + 1)
        return Batch(pad_batch([s for s, _ in examples], self.pad_id), target[:, :-1], target[:, 1:])

    def loss(self, model: nn.Module, batch: Batch, smoothing: float) -> Loss:
        batch = batch.to(next(model.parameters()).device)
        logits = model(batch.source, batch.inputs)                           # (B, T, V)
        return label_smoothed_cross_entropy(logits, batch.targets, smoothing=smoothing,
                                            ignore_index=self.pad_id)


class LanguageModelTask:
    """Next-token prediction on texts, cut into pieces of at most ``max_len`` tokens."""

    name = "language_model"

    def __init__(self, tokenizer: Tokenizer, max_len: int) -> None:
        tokenizer.require("bos", "eos", "pad")
        self.source_tokenizer = self.target_tokenizer = tokenizer
        self.pad_id = tokenizer.pad_id
        self.max_len = max_len

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Texts → ``<bos> x… <eos>`` id lists of at most ``max_len + 1`` ids (inputs + 1)."""
        examples = []
        for text in texts:
            ids = [self.target_tokenizer.bos_id, *self.target_tokenizer.encode(text),
                   self.target_tokenizer.eos_id]
            for start in range(0, max(1, len(ids) - 1), self.max_len):
                examples.append(ids[start:start + self.max_len + 1])
        return examples

    @staticmethod
    def lengths(examples) -> list[int]:
        return [len(ids) for ids in examples]

    def collate(self, examples) -> Batch:
        ids = pad_batch(examples, self.pad_id)                               # (B, T + 1)
        return Batch(None, ids[:, :-1], ids[:, 1:])

    def loss(self, model: nn.Module, batch: Batch, smoothing: float) -> Loss:
        batch = batch.to(next(model.parameters()).device)
        logits = model(batch.inputs)                                         # (B, T, V)
        return label_smoothed_cross_entropy(logits, batch.targets, smoothing=smoothing,
                                            ignore_index=self.pad_id)


def classification_ids(tokenizer: Tokenizer, text: str, max_len: int) -> list[int]:
    """What a classifier reads for ``text``: ``<bos> x1 … xn <eos>`` (``[CLS] … [SEP]`` for BERT;
    each only where the tokenizer has it), the content cut so that the whole fits ``max_len``.

    Example:
        >>> from qkv.tokenizers import CharTokenizer
        >>> tokenizer = CharTokenizer.train(["abc"])
        >>> tokenizer.tokens(classification_ids(tokenizer, "abcabc", max_len=5))
        ['<bos>', 'a', 'b', 'c', '<eos>']
    """
    bos = [] if tokenizer.bos_id is None else [tokenizer.bos_id]
    eos = [] if tokenizer.eos_id is None else [tokenizer.eos_id]
    room = max_len - len(bos) - len(eos)
    if room < 1:
        raise ValueError(f"max_len {max_len} leaves no room for text between the special tokens")
    return [*bos, *tokenizer.encode(text)[:room], *eos]


class ClassificationTask:
    """One label per text: cross-entropy (label-smoothed, optionally class-weighted) on the
    classifier's logits.

    Args:
        tokenizer: turns texts into ids (:func:`classification_ids`).
        labels: the label names, in the classifier's output order.
        max_len: the most ids a text may have (longer texts are cut).
        class_weights: one weight per label, multiplying each example's loss (for imbalanced
            data, e.g. "balanced": ``n_examples / (n_labels · count of the label)``); ``None``:
            all 1.
    """

    name = "classification"

    def __init__(self, tokenizer: Tokenizer, labels: Sequence[str], max_len: int,
                 class_weights: Sequence[float] | None = None) -> None:
        tokenizer.require("pad")
        self.source_tokenizer = self.target_tokenizer = tokenizer
        self.pad_id = tokenizer.pad_id
        self.labels = tuple(labels)
        self.index = {label: i for i, label in enumerate(self.labels)}
        self.max_len = max_len
        if class_weights is not None:
            class_weights = [float(w) for w in class_weights]
            if len(class_weights) != len(self.labels) or min(class_weights) <= 0:
                raise ValueError(f"class_weights must be {len(self.labels)} positive numbers (one "
                                 f"per label), got {class_weights}")
        self.class_weights = class_weights

    def encode_text(self, text: str) -> list[int]:
        return classification_ids(self.source_tokenizer, text, self.max_len)

    def encode(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], int]]:
        """(text, label) pairs → (ids, label index) pairs. A label the task does not know is a
        ValueError naming it and the known ones."""
        unknown = sorted({label for _, label in pairs if label not in self.index})
        if unknown:
            raise ValueError(f"unknown label(s) {unknown[:10]}; this classifier knows "
                             f"{list(self.labels)}")
        return [(self.encode_text(text), self.index[label]) for text, label in pairs]

    @staticmethod
    def lengths(examples) -> list[int]:
        return [len(ids) for ids, _ in examples]

    def collate(self, examples) -> Batch:
        return Batch(None, pad_batch([ids for ids, _ in examples], self.pad_id),      # (B, T)
                     torch.tensor([label for _, label in examples], dtype=torch.long))  # (B,)

    def loss(self, model: nn.Module, batch: Batch, smoothing: float) -> Loss:
        """Summed over the batch's examples; ``tokens`` counts examples."""
        batch = batch.to(next(model.parameters()).device)
        logits = model(batch.inputs)                                         # (B, C)
        weights = None if self.class_weights is None else torch.tensor(self.class_weights)
        return label_smoothed_cross_entropy(logits, batch.targets, smoothing=smoothing,
                                            class_weights=weights)
