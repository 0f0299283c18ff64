"""Raw attention weights as an attribution: the baseline every attention-based method improves on.

The target's row (:func:`~qkv.explain.attention_layers.readout`) of one layer's attention
weights, of one head or averaged over heads — what "attention as explanation" reads (Jain &
Wallace, 2019, "Attention is not Explanation"; Wiegreffe & Pinter, 2019, "Attention is not not
Explanation", argue over it). It ignores the residual stream, the value vectors and every other
layer, which is what :mod:`~qkv.explain.rollout`, :mod:`~qkv.explain.norm` and
:mod:`~qkv.explain.alti` add back.
"""

from __future__ import annotations

import torch

from qkv.explain.attention_layers import attention_stacks, check_head, check_layer, head_mean, \
    readout
from qkv.explain.attribution import Attribution, register
from qkv.explain.capture import capture
from qkv.explain.subject import Subject

__all__ = ["raw_attention"]


@register("attention")
def raw_attention(subject: Subject, *, layer: int = -1, head: int | None = None) -> Attribution:
    """The target's row of the attention weights of ``layer`` (Vaswani et al., 2017,
    "Attention Is All You Need": the weights ``softmax(QKᵀ/√d_k)`` of section 3.2.1).

    Args:
        subject: what to explain.
        layer: which layer's weights are the scores (negative counts from the end); default the
            last.
        head: one head's weights, or ``None`` for the mean over heads.

    A translation reads its decoder layers (``L`` = decoder layers): the source tokens' scores
    are the layer's cross-attention row, the target prefix's its (causal) self-attention row;
    each part sums to 1 on its own.

    Shape:
        ``scores (N,)`` = ``layers[layer]``; ``layers (L, N)``, the row at every layer.

    Raises:
        ValueError: ``layer`` or ``head`` out of range.

    Example:
        >>> import qkv
        >>> from qkv.explain import subject, attribute
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=16,
        ...     num_heads=2, num_layers=2, d_ff=32))
        >>> result = attribute(subject(model, [1, 5, 6, 7]), "attention", head=0)
        >>> result.layers.shape, round(float(result.scores.sum()), 4)
        (torch.Size([2, 4]), 1.0)
    """
    _, self_steps, cross_steps = attention_stacks(subject, capture(subject))
    L, H = len(self_steps), self_steps[0].weights.shape[1]
    index, head = check_layer(layer, L), check_head(head, H)
    weights = readout(subject)                                          # (T,)
    rows = []
    for l in range(L):
        own = weights @ head_mean(self_steps[l], head)                  # (T,)
        if cross_steps:
            own = torch.cat([weights @ head_mean(cross_steps[l], head), own])   # (S + T,)
        rows.append(own)
    layers = torch.stack(rows).float()                                  # (L, N)
    return Attribution("attention", subject, layers[index], layers,
                       {"layer": index, "head": head})
