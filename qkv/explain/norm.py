"""Norm-based attention: weigh each attention weight by the size of what it carries.

Kobayashi, Kuribayashi, Yokoi & Inui, 2020, "Attention is Not Only a Weight: Analyzing
Transformers with Vector Norms" (EMNLP). An attention sublayer's output at position ``i`` is
``Σ_j Σ_h α^h_ij f_h(x_j)`` (plus W^O's bias), with ``f_h(x_j) = (x_j W_V^h + b_V^h) W_O^h``, the
value vector of head ``h`` through that head's block of rows of W^O. A large weight on a small
vector moves the output little; the norm ``‖Σ_h α^h_ij f_h(x_j)‖`` measures how much each
input token ``j`` actually moved output ``i``.

:func:`transformed_values` computes ``f_h(x_j)`` from a captured call (its ``call.value`` is
already ``x W_V + b_V`` per head, after the pre-norm LayerNorm if any), :func:`norms` the norms
for one target row, and :func:`norm_attention` (registered as ``"norm"``) reads them from a
subject.

For a mean-pooled target the row is the pooled output's decomposition,
``‖Σ_h (Σ_i w_i α^h_ij) f_h(x_j)‖`` with ``w`` the readout weights (one-hot for a single
position, where it is the paper's quantity). For a translation, the source tokens' scores are
the decoder layer's cross-attention norms (``f`` reading the encoder output), the target
prefix's its self-attention norms.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

from qkv._checks import shape_str
from qkv.explain.attention_layers import attention_stacks, check_head, check_layer, readout
from qkv.explain.attribution import Attribution, register
from qkv.explain.capture import AttentionStep, capture
from qkv.explain.subject import Subject

__all__ = ["transformed_values", "norms", "norm_attention"]


def transformed_values(step: AttentionStep) -> Tensor:
    """``f_h(x_j) = value_h(x_j) · W_O^h``, each head's value through its block of W^O (float64,
    on the CPU).

    Shape:
        returns ``(H, S, E)`` (batch of one); ``Σ_h Σ_j α^h_ij f_h(x_j) + b_O`` is the
        sublayer's output at ``i``.
    """
    value = step.call.value[0].detach().cpu().double()                   # (H, S, D)
    H = value.shape[0]
    W_O = step.call.module.output_proj.weight.detach().cpu().double()    # (E, H·D)
    per_head = rearrange(W_O, "e (h d) -> h d e", h=H)                  # (H, D, E)
    return torch.einsum("hsd,hde->hse", value, per_head)                # (H, S, E)


def norms(weights: Tensor, transformed: Tensor) -> Tensor:
    """``‖Σ_h weights[h, j] · transformed[h, j]‖₂`` for every input ``j``.

    Args:
        weights: the target row's attention weights per head, ``α^h_{t j}`` (or a weighted
            mean of rows).
        transformed: ``f_h(x_j)`` of :func:`transformed_values`.

    Shape:
        ``weights (H, S)``, ``transformed (H, S, E)`` → ``(S,)``

    Example:
        >>> import torch
        >>> f = torch.tensor([[[3.0, 4.0], [0.0, 1.0]]])               # H = 1, S = 2, E = 2
        >>> norms(torch.tensor([[0.5, 0.5]]), f)                        # 0.5·5, 0.5·1
        tensor([2.5000, 0.5000])
    """
    if weights.dim() != 2 or transformed.dim() != 3 or transformed.shape[:2] != weights.shape:
        raise ValueError(f"expected weights (H, S) and transformed (H, S, E) with the same H, "
                         f"S; got {shape_str(weights.shape)} and {shape_str(transformed.shape)}")
    moved = torch.einsum("hs,hse->se", weights, transformed)           # (S, E)
    return moved.norm(dim=-1)                                           # (S,)


def _row_norms(step: AttentionStep, readout_weights: Tensor, head: int | None) -> Tensor:
    """The readout row's norms for one step ``(S,)``."""
    alpha = torch.einsum("t,hts->hs", readout_weights,
                         step.weights[0].detach().cpu().double())       # (H, S)
    transformed = transformed_values(step)                              # (H, S, E)
    if head is not None:
        alpha, transformed = alpha[head:head + 1], transformed[head:head + 1]
    return norms(alpha, transformed)


@register("norm")
def norm_attention(subject: Subject, *, layer: int = -1, head: int | None = None
                   ) -> Attribution:
    """Norm-based attention (Kobayashi et al., 2020, "Attention is Not Only a Weight:
    Analyzing Transformers with Vector Norms"): ``‖Σ_h α^h_tj f_h(x_j)‖`` for the target row
    ``t`` of each layer.

    Args:
        subject: what to explain.
        layer: which layer's norms are the scores (negative counts from the end); default last.
        head: one head's ``‖α^h_tj f_h(x_j)‖``, or ``None`` for the sum over heads.

    Shape:
        ``scores (N,)`` = ``layers[layer]``, non-negative, in the model's units (not
        normalised); ``layers (L, N)`` (``L`` = decoder layers for a translation).

    Raises:
        ValueError: ``layer`` or ``head`` out of range.

    Example:
        >>> import qkv
        >>> from qkv.explain import subject, attribute
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=16,
        ...     num_heads=2, num_layers=2, d_ff=32))
        >>> attribute(subject(model, [1, 5, 6, 7]), "norm").layers.shape
        torch.Size([2, 4])
    """
    _, self_steps, cross_steps = attention_stacks(subject, capture(subject))
    L, H = len(self_steps), self_steps[0].weights.shape[1]
    index, head = check_layer(layer, L), check_head(head, H)
    weights = readout(subject)                                          # (T,)
    rows = []
    for l in range(L):
        row = _row_norms(self_steps[l], weights, head)                  # (T,)
        if cross_steps:
            row = torch.cat([_row_norms(cross_steps[l], weights, head), row])  # (S + T,)
        rows.append(row)
    layers = torch.stack(rows).float()                                  # (L, N)
    return Attribution("norm", subject, layers[index], layers, {"layer": index, "head": head})
