"""ALTI, Aggregation of Layer-wise Token-to-token Interactions: attention, residual and
LayerNorm, decomposed exactly and rolled out.

Ferrando, Gállego & Costa-jussà, 2022, "Measuring the Mixing of Contextual Information in the
Transformer" (EMNLP). Each attention sublayer's output ``y_i`` is written as a sum of one term
per input token plus terms of no token (biases)::

    y_i = Σ_j T_i(x_j) + bias_i

* **post-norm** (``y = LN(x + Attention(x))``, the paper's case): with
  ``z_ij = Σ_h α^h_ij f_h(x_j) + [i = j]·x_i`` (``f_h`` as in :mod:`~qkv.explain.norm`) and the
  LayerNorm split over its (linear, given ``σ_i``) sum,
  ``LN(Σ_j z_ij + b_O) = Σ_j γ ⊙ (z_ij − mean(z_ij)) / σ_i + γ ⊙ (b_O − mean(b_O)) / σ_i + β``,
  ``σ_i`` the standard deviation of the whole sum: ``T_i(x_j) = γ ⊙ (z_ij − mean(z_ij)) / σ_i``.
* **pre-norm** (``y = x + Attention(LN(x))``): ``T_i(x_j) = Σ_h α^h_ij f_h(LN(x_j)) + [i = j]·x_i``
  (the LayerNorm is token-wise, part of ``x_j``'s own transformation), ``bias_i = b_O``.

Token ``j``'s contribution to ``y_i`` is how much closer ``T_i(x_j)`` brings you to ``y_i`` than
nothing does, ``c_ij = max(0, ‖y_i‖₁ − ‖y_i − T_i(x_j)‖₁)``, normalised over ``j``; the layers'
contribution matrices are then rolled out (:func:`~qkv.explain.rollout.rollout`, no extra
residual: it is inside ``c``). Feed-forward sublayers (token-wise) and the final norm are not
decomposed, as in the paper.

**Translation** (ALTI+, Ferrando, Gállego, Alastruey, Escolano & Costa-jussà, 2022, "Towards
Opening the Black Box of Neural Machine Translation: Source and Target Contributions of the
Model"): a cross-attention output is decomposed into the decoder stream's residual term and one
term per source position (``f`` reading the encoder output); their normalised contributions are
the residual share ``r`` and the cross matrix ``C`` of the encoder–decoder rule of
:mod:`~qkv.explain.rollout`, with the encoder's ALTI rollout as ``R_enc``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from qkv.explain.attention_layers import attention_stacks, readout
from qkv.explain.attribution import Attribution, register
from qkv.explain.capture import AttentionStep, capture
from qkv.explain.norm import transformed_values
from qkv.explain.rollout import encoder_decoder_rollout, rollout
from qkv.explain.subject import Subject

__all__ = ["Decomposition", "decompose", "contributions", "alti"]

_ROWS = 64                                          # query rows decomposed at once (memory)


@dataclass(frozen=True)
class Decomposition:
    """An attention sublayer's output split by input token, float64, for query rows ``t``.

    Attributes:
        attention: ``(t, S, E)``, the attended inputs' terms (for self-attention, without the
            residual ``x_i``; add :attr:`residual` at ``j = i`` for ``T_i(x_i)``).
        residual: ``(t, E)``, the residual stream's own term (for post-norm, through the
            LayerNorm's linear map).
        bias: ``(t, E)``, the terms of no token (``b_O``; for post-norm through the LayerNorm,
            plus ``β``).
        output: ``(t, E)``, the sublayer's actual output ``y`` (the residual stream leaving it).

    ``attention.sum(1) + residual + bias == output`` (to float precision).
    """

    attention: Tensor
    residual: Tensor
    bias: Tensor
    output: Tensor


def decompose(step: AttentionStep, rows: slice = slice(None)) -> Decomposition:
    """Decompose one captured attention sublayer's output (see the module docstring).

    Args:
        step: a captured step (:func:`~qkv.explain.capture.capture`), batch of one.
        rows: which query rows (all by default; the memory is ``rows × S × E``).
    """
    alpha = _float64(step.weights[0, :, rows])                          # (H, t, S)
    terms = torch.einsum("hts,hse->tse", alpha, transformed_values(step))   # (t, S, E)
    x = _float64(step.residual_input[0, rows])                          # (t, E)
    output = _float64(step.residual_output[0, rows])                    # (t, E)
    E = x.shape[-1]
    projection = step.call.module.output_proj
    b_O = (torch.zeros(E, dtype=torch.float64) if projection.bias is None
           else _float64(projection.bias))                              # (E,)
    if step.pre_norm:
        return Decomposition(terms, x, b_O.expand_as(x), output)
    norm = step.residual.norm
    total = x + _float64(step.call.output[0, rows])                     # (t, E), before the LN
    sigma = (total.var(-1, unbiased=False) + norm.eps).sqrt()[:, None]  # (t, 1)
    gamma = torch.ones(E, dtype=torch.float64) if norm.weight is None else _float64(norm.weight)
    beta = torch.zeros(E, dtype=torch.float64) if norm.bias is None else _float64(norm.bias)

    def linear_part(v: Tensor, scale: Tensor) -> Tensor:                # LN without β, σ given
        return gamma * (v - v.mean(-1, keepdim=True)) / scale

    return Decomposition(linear_part(terms, sigma[:, None]), linear_part(x, sigma),
                         linear_part(b_O.expand_as(x), sigma) + beta, output)


def contributions(step: AttentionStep) -> Tensor:
    """The normalised contributions ``c_ij`` of one attention sublayer, float64.

    Shape:
        self-attention: ``(T, T)``, the residual inside ``c_ii``; cross-attention:
        ``(T, 1 + S)``, column 0 the decoder stream's residual, then the source positions.
        Rows sum to 1.
    """
    T = step.weights.shape[2]
    rows = []
    for start in range(0, T, _ROWS):
        parts = decompose(step, slice(start, start + _ROWS))
        terms = parts.attention.clone()                                 # (t, S, E)
        t = terms.shape[0]
        if step.cross:
            terms = torch.cat([parts.residual[:, None], terms], dim=1)  # (t, 1 + S, E)
        else:
            positions = torch.arange(t)
            terms[positions, positions + start] += parts.residual
        y = parts.output                                                # (t, E)
        distance = (y[:, None] - terms).abs().sum(-1)                   # (t, S')
        closer = (y.abs().sum(-1, keepdim=True) - distance).clamp(min=0)
        rows.append(closer / closer.sum(-1, keepdim=True).clamp(
            min=torch.finfo(closer.dtype).tiny))
    return torch.cat(rows)                                              # (T, S')


@register("alti")
def alti(subject: Subject) -> Attribution:
    """ALTI (Ferrando, Gállego & Costa-jussà, 2022, "Measuring the Mixing of Contextual
    Information in the Transformer"): the target's row of the rollout of each layer's
    token-to-token contributions (see the module docstring; ALTI+ for a translation).

    Shape:
        ``scores (N,)`` = ``layers[-1]``, non-negative, summing to 1; ``layers (L, N)``, the
        rollout up to each layer (``L`` = decoder layers for a translation).

    Example:
        >>> import qkv
        >>> from qkv.explain import subject, attribute
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=16,
        ...     num_heads=2, num_layers=2, d_ff=32))
        >>> result = attribute(subject(model, [1, 5, 6, 7]), "alti")
        >>> result.layers.shape, round(float(result.scores.sum()), 4)
        (torch.Size([2, 4]), 1.0)
    """
    encoder, self_steps, cross_steps = attention_stacks(subject, capture(subject))
    decoder = torch.stack([contributions(step) for step in self_steps])     # (L, T, T)
    if cross_steps:
        encoder_rollout = rollout(torch.stack([contributions(step) for step in encoder]),
                                  0.0)[-1]                              # (S, S)
        cross = torch.stack([contributions(step) for step in cross_steps])  # (L, T, 1 + S)
        rolled = encoder_decoder_rollout(encoder_rollout, decoder, cross[..., 1:],
                                         cross[..., 0])                 # (L, T, N)
    else:
        rolled = rollout(decoder, 0.0)                                  # (L, T, T)
    layers = torch.einsum("t,ltn->ln", readout(subject), rolled).float()   # (L, N)
    return Attribution("alti", subject, layers[-1], layers)


def _float64(tensor: Tensor) -> Tensor:
    return tensor.detach().cpu().double()
