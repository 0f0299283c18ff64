"""Classifying texts with a :class:`~qkv.SequenceClassifier`: tokenize, batch, softmax."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from qkv._checks import check_positive_int
from qkv.models.classifier import SequenceClassifier
from qkv.tokenizers.base import Tokenizer
from qkv.training.tasks import classification_ids, pad_batch

__all__ = ["classify_texts", "input_limit", "top_labels"]


def input_limit(config, tokenizer: Tokenizer) -> int:
    """The most ids a classifier with this ``config`` reads: its ``max_len``, lowered to the
    tokenizer's ``max_length`` where it has one (sentence-transformers' truncation)."""
    limit = int(config.max_len)
    max_length = getattr(tokenizer, "max_length", None)
    return limit if max_length is None else min(limit, int(max_length))


@torch.no_grad()
def classify_texts(model: nn.Module, tokenizer: Tokenizer, texts: Sequence[str], *,
                   batch_size: int = 64) -> Tensor:
    """The label probabilities of each text (``softmax`` of the classifier's logits), computed
    ``batch_size`` texts at a time, sorted by length so that batches hold little padding; rows
    come back in the input order. Texts longer than the model reads are cut (:func:`input_limit`).

    Args:
        model: a :class:`~qkv.SequenceClassifier` (put it in eval mode).
        tokenizer: its tokenizer.
        texts: the texts.

    Shape:
        returns ``(N, C)``: ``N`` texts, ``C = len(model.labels)``; each row sums to 1. No
        texts give ``(0, C)``.

    A model whose logits hold NaN (NaN in its weights) gives NaN probabilities: they are not
    turned into a distribution.

    Raises:
        TypeError: a model that is not a :class:`~qkv.SequenceClassifier`, a tokenizer that is
            not a :class:`~qkv.tokenizers.base.Tokenizer`, texts that are not a list of str.
        ValueError: ``batch_size`` < 1, no pad id, ids outside the model's vocabulary.

    Example:
        >>> import torch, qkv
        >>> from qkv.tokenizers import CharTokenizer
        >>> tokenizer = CharTokenizer.train(["ham", "spam"])
        >>> model = qkv.SequenceClassifier(qkv.SequenceClassifierConfig(
        ...     vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2, num_layers=1, d_ff=32,
        ...     labels=["ham", "spam"])).eval()
        >>> classify_texts(model, tokenizer, ["spam", "ham", "mash"]).shape
        torch.Size([3, 2])
    """
    if not isinstance(model, SequenceClassifier):
        raise TypeError(f"classify_texts needs a qkv.SequenceClassifier, got "
                        f"{type(model).__name__}")
    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(f"tokenizer must be a qkv Tokenizer, got {type(tokenizer).__name__}")
    check_positive_int("batch_size", batch_size)
    if (isinstance(texts, str) or not isinstance(texts, Sequence)
            or not all(isinstance(text, str) for text in texts)):
        raise TypeError(f"texts must be a sequence of str (a list of texts), got "
                        f"{type(texts).__name__}")
    pad = model.config.pad_id if model.config.pad_id is not None else tokenizer.pad_id
    if pad is None:
        raise ValueError("classifying a batch needs a pad id (the model's or the tokenizer's)")
    limit = input_limit(model.config, tokenizer)
    encoded = [classification_ids(tokenizer, text, limit) for text in texts]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    device = next(model.parameters()).device
    probabilities = torch.zeros(len(texts), len(model.labels))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        ids = pad_batch([encoded[i] for i in rows], pad).to(device)                 # (B, T)
        mask = ids != pad                                                           # (B, T)
        logits = model(ids, mask)                                                   # (B, C)
        probabilities[rows] = torch.softmax(logits.float(), dim=-1).cpu()
    return probabilities


def top_labels(probabilities: Tensor, labels: Sequence[str], k: int = 1) -> list[list[tuple[str, float]]]:
    """The ``k`` most probable labels of each row, best first, as ``(label, probability)``.

    Shape:
        ``probabilities (N, C)`` → ``N`` lists of ``min(k, C)`` pairs

    Example:
        >>> top_labels(torch.tensor([[0.1, 0.7, 0.2]]), ["a", "b", "c"], k=2)
        [[('b', 0.699999988079071), ('c', 0.20000000298023224)]]
    """
    check_positive_int("k", k)
    values, indices = probabilities.topk(min(k, probabilities.shape[-1]), dim=-1)  # (N, k)
    return [[(labels[i], p) for i, p in zip(row_indices, row_values)]
            for row_indices, row_values in zip(indices.tolist(), values.tolist())]
