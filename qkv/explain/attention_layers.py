"""A subject's attention laid out by layer, and the *readout*: which query rows the target reads.

Shared by the attention-based attributions (:mod:`~qkv.explain.raw_attention`,
:mod:`~qkv.explain.rollout`, :mod:`~qkv.explain.flow`, :mod:`~qkv.explain.norm`,
:mod:`~qkv.explain.alti`).

* :func:`readout` — the target's row as weights over the query positions of the explained side:
  row 0 for a ``"cls"``-pooled classifier, the mean of the non-padding rows for a ``"mean"``-pooled
  one and for an encoder's :class:`~qkv.explain.targets.Similarity` (mean pooling averages
  them), the last row for a language model (where the next token is predicted) and for a
  translation (the decoder's last target position).
* :func:`attention_stacks` — the captured steps as ``(encoder, self_attention, cross)``: for a
  text subject the one stack's self-attention steps (``encoder`` and ``cross`` empty); for a
  translation the encoder's self-attention, the decoder's self-attention and its
  cross-attention, by layer. Per-layer scores of a translation are per *decoder* layer.
* :func:`check_layer`, :func:`check_head` — the options every method shares.

Shape letters: ``S`` source (encoder) positions, ``T`` query positions of the explained side
(the text, or a translation's target prefix), ``N`` the subject's tokens (``T``, or ``S + T``),
``L`` layers, ``H`` heads, ``E`` model dim.
"""

from __future__ import annotations

import torch
from torch import Tensor

from qkv.explain.capture import AttentionStep, Capture
from qkv.explain.subject import Subject
from qkv.explain.targets import Label, Similarity
from qkv.models import SequenceClassifier

__all__ = ["readout", "attention_stacks", "head_mean", "check_layer", "check_head",
           "check_fraction"]


def readout(subject: Subject) -> Tensor:
    """The target's row: weights over the explained side's query positions, summing to 1.

    Shape:
        returns ``(T,)``, ``T`` the tokens of ``"text"`` (or of a translation's ``"target"``)
    """
    side = "target" if "target" in subject.ids else "text"
    ids = subject.ids[side]
    T = int(ids.shape[0])
    model, target = subject.model, subject.target
    mean = isinstance(target, Similarity) or (
        isinstance(target, Label) and isinstance(model, SequenceClassifier)
        and model.config.pooling == "mean")
    weights = torch.zeros(T, dtype=torch.float64)
    if not mean:
        weights[0 if isinstance(target, Label) else T - 1] = 1.0
        return weights
    pad_id = model.config.pad_id
    keep = torch.ones(T, dtype=torch.bool) if pad_id is None else ids != pad_id   # (T,)
    if not keep.any():                                  # all padding: the model reads all rows
        keep = torch.ones(T, dtype=torch.bool)
    weights[keep] = 1.0 / int(keep.sum())
    return weights


def attention_stacks(subject: Subject, captured: Capture
                     ) -> tuple[list[AttentionStep], list[AttentionStep], list[AttentionStep]]:
    """``(encoder, self_attention, cross)`` steps, each by layer (see the module docstring)."""
    if "target" in subject.ids:
        return (captured.of("encoder"), captured.of("decoder"),
                captured.of("decoder", cross=True))
    stack = "decoder" if captured.of("decoder") else "encoder"
    return [], captured.of(stack), []


def head_mean(step: AttentionStep, head: int | None = None) -> Tensor:
    """The step's weights averaged over heads (or of one ``head``), float64 on the CPU.

    Shape:
        returns ``(T, S)`` (batch of one)
    """
    weights = step.weights[0].detach().cpu().double()                   # (H, T, S)
    return weights.mean(0) if head is None else weights[head]


def check_layer(layer: object, num_layers: int, what: str = "layer") -> int:
    """``layer`` as an index in ``[0, L)``; negative counts from the end."""
    if isinstance(layer, bool) or not isinstance(layer, int) or not (
            -num_layers <= layer < num_layers):
        raise ValueError(f"{what} must be an int in [-{num_layers}, {num_layers}) for a model "
                         f"with {num_layers} layers, got {layer!r}")
    return layer % num_layers


def check_head(head: object, num_heads: int) -> int | None:
    """``head`` as an index in ``[0, H)`` (negative counts from the end), or ``None`` (all)."""
    if head is None:
        return None
    if isinstance(head, bool) or not isinstance(head, int) or not -num_heads <= head < num_heads:
        raise ValueError(f"head must be None (the mean over heads) or an int in "
                         f"[-{num_heads}, {num_heads}) for {num_heads} heads, got {head!r}")
    return head % num_heads


def check_fraction(name: str, value: object) -> float:
    """A float in ``[0, 1]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)
