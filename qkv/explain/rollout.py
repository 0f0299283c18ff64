"""Attention rollout: how much of each input token reaches the target through every layer.

Abnar & Zuidema, 2020, "Quantifying Attention Flow in Transformers" (ACL). Each layer mixes
the tokens by its attention and keeps each token by the residual connection, so a layer's mixing
matrix is ``Â = 0.5·mean_h(A) + 0.5·I`` (rows renormalised); the layers compose by matrix
product, ``R = Â_L ··· Â_1``, and the target's row of ``R`` says how much of each input token
reached it.

The math is in two pure functions on tensors — :func:`rollout` (one stack) and
:func:`encoder_decoder_rollout` (a translation) — which :mod:`qkv.explain.alti` reuses on its
contribution matrices; :func:`attention_rollout` (registered as ``"rollout"``) reads them from a
subject.

**Encoder–decoder rule.** For a translation the scores run over ``[source ‖ target prefix]``.
``R_enc = Â_Le ··· Â_1`` (``S × S``) rolls out the encoder, whose output every cross-attention
reads. The decoder's ``R_dec`` (``T × (S + T)``) starts as ``[0 | I_T]`` (each target position
is itself) and each decoder layer updates it, self-attention first, then cross-attention::

    R_dec ← Â_self · R_dec                                   (T × T)·(T × (S + T))
    R_dec ← r ⊙ R_dec + C · [R_enc | 0]                      r (T,) residual share, C (T × S)

with ``r = 0.5`` and ``C = 0.5·mean_h(A_cross)`` for rollout (the residual keeps half of each
target position, the other half is what it read from the source). This follows the shape of
Chefer, Gur & Wolf's rules for encoder–decoder models (2021, "Generic Attention-model
Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers": self-attention
mixes a modality within itself, cross-attention adds what the queries read, through the keys'
own relevancy) but keeps rollout's multiplicative residual mixing instead of their
gradient-weighted, additive update; every row of ``R_dec`` still sums to 1. ALTI replaces ``r``
and ``C`` by the measured contributions of the residual and of the source tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor

from qkv._checks import shape_str
from qkv.explain.attention_layers import attention_stacks, check_fraction, head_mean, readout
from qkv.explain.attribution import Attribution, register
from qkv.explain.capture import capture
from qkv.explain.subject import Subject

__all__ = ["residual_adjusted", "rollout", "encoder_decoder_rollout", "attention_rollout"]


def residual_adjusted(attention: Tensor, residual: float = 0.5) -> Tensor:
    """``Â = (1 − residual)·A + residual·I``, each row renormalised to sum to 1.

    Shape:
        ``attention (..., T, T)`` → ``(..., T, T)``

    Example:
        >>> import torch
        >>> residual_adjusted(torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
        tensor([[0.5000, 0.5000],
                [0.0000, 1.0000]])
    """
    if attention.dim() < 2 or attention.shape[-1] != attention.shape[-2]:
        raise ValueError(f"attention must be square on its last two dims (..., T, T), got "
                         f"{shape_str(attention.shape)}")
    eye = torch.eye(attention.shape[-1], dtype=attention.dtype, device=attention.device)
    adjusted = (1 - residual) * attention + residual * eye              # (..., T, T)
    return adjusted / adjusted.sum(-1, keepdim=True).clamp(min=torch.finfo(adjusted.dtype).tiny)


def rollout(matrices: Tensor, residual: float = 0.5) -> Tensor:
    """The rollout after each layer: ``R_l = Â_l ··· Â_1`` with ``Â`` of :func:`residual_adjusted`.

    Args:
        matrices: one mixing matrix per layer, first layer first (e.g. head-mean attention
            weights; row ``i`` = how query ``i`` reads the layer's inputs).
        residual: the residual's share (0.5 in the paper; 0 when the matrices already account
            for the residual, as ALTI's contributions do).

    Shape:
        ``matrices (L, T, T)`` → ``(L, T, T)``; ``[l, i, j]`` = how much of input token ``j``
        reaches position ``i`` after layer ``l``.

    Example:
        >>> import torch
        >>> identity = torch.eye(3).expand(2, 3, 3)         # every token attends to itself
        >>> torch.equal(rollout(identity)[-1], torch.eye(3))
        True
    """
    if matrices.dim() != 3 or matrices.shape[1] != matrices.shape[2] or matrices.shape[0] == 0:
        raise ValueError(f"matrices must be (L, T, T) with L >= 1, got "
                         f"{shape_str(matrices.shape)}")
    adjusted = residual_adjusted(matrices, residual)                    # (L, T, T)
    rolled, current = [], torch.eye(matrices.shape[-1], dtype=matrices.dtype)
    for layer in adjusted:
        current = layer @ current                                       # (T, T)
        rolled.append(current)
    return torch.stack(rolled)                                          # (L, T, T)


def encoder_decoder_rollout(encoder: Tensor, decoder: Tensor, cross: Tensor,
                            cross_residual: Tensor) -> Tensor:
    """Propagate a translation's decoder over ``[source ‖ target]`` (the module's rule).

    Args:
        encoder: ``R_enc``, the encoder's rollout (how much of each source token is in each
            encoder output).
        decoder: each decoder layer's self-attention mixing matrix, residual included (``Â``).
        cross: each decoder layer's cross-attention share of each source position ``C``.
        cross_residual: each decoder layer's residual share ``r`` at its cross-attention.

    Shape:
        ``encoder (S, S)``, ``decoder (L, T, T)``, ``cross (L, T, S)``, ``cross_residual (L, T)``
        → ``(L, T, S + T)``, ``R_dec`` after each decoder layer.
    """
    S, (L, T, _) = encoder.shape[0], decoder.shape
    if encoder.shape != (S, S) or decoder.shape != (L, T, T) or cross.shape != (L, T, S) or (
            cross_residual.shape != (L, T)):
        raise ValueError(f"expected encoder (S, S), decoder (L, T, T), cross (L, T, S), "
                         f"cross_residual (L, T); got {shape_str(encoder.shape)}, "
                         f"{shape_str(decoder.shape)}, {shape_str(cross.shape)}, "
                         f"{shape_str(cross_residual.shape)}")
    from_source = torch.cat([encoder, encoder.new_zeros(S, T)], dim=1)  # (S, S + T)
    current = torch.cat([encoder.new_zeros(T, S), torch.eye(T, dtype=encoder.dtype)],
                        dim=1)                                          # (T, S + T)
    rolled = []
    for l in range(L):
        current = decoder[l] @ current                                  # (T, S + T)
        current = cross_residual[l, :, None] * current + cross[l] @ from_source
        rolled.append(current)
    return torch.stack(rolled)                                          # (L, T, S + T)


@register("rollout")
def attention_rollout(subject: Subject, *, residual: float = 0.5) -> Attribution:
    """Attention rollout (Abnar & Zuidema, 2020, "Quantifying Attention Flow in
    Transformers"): the target's row of ``R = Â_L ··· Â_1``, ``Â = 0.5·mean_h(A) + 0.5·I``.

    Args:
        subject: what to explain.
        residual: the residual's share of each layer's mixing (the paper's 0.5).

    A translation follows the module's encoder–decoder rule; ``L`` is its decoder layers.

    Shape:
        ``scores (N,)`` = ``layers[-1]``, summing to 1; ``layers (L, N)``, the target's row of
        the rollout up to each layer.

    Example:
        >>> import qkv
        >>> from qkv.explain import subject, attribute
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=16,
        ...     num_heads=2, num_layers=2, d_ff=32))
        >>> result = attribute(subject(model, [1, 5, 6, 7]), "rollout")
        >>> result.layers.shape, round(float(result.scores.sum()), 4)
        (torch.Size([2, 4]), 1.0)
    """
    residual = check_fraction("residual", residual)
    encoder, self_steps, cross_steps = attention_stacks(subject, capture(subject))
    decoder = torch.stack([head_mean(step) for step in self_steps])     # (L, T, T)
    if cross_steps:
        encoder_rollout = rollout(torch.stack([head_mean(step) for step in encoder]),
                                  residual)[-1]                         # (S, S)
        cross = torch.stack([head_mean(step) for step in cross_steps])  # (L, T, S)
        rolled = encoder_decoder_rollout(encoder_rollout, residual_adjusted(decoder, residual),
                                         (1 - residual) * cross,
                                         torch.full(cross.shape[:2], residual,
                                                    dtype=cross.dtype))  # (L, T, N)
    else:
        rolled = rollout(decoder, residual)                             # (L, T, T)
    layers = torch.einsum("t,ltn->ln", readout(subject), rolled).float()   # (L, N)
    return Attribution("rollout", subject, layers[-1], layers, {"residual": residual})
