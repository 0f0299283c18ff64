"""Feed-forward values read in the vocabulary space: the tokens a value promotes and suppresses.

Geva, Caciularu, Wang & Goldberg, 2022, "Transformer Feed-Forward Layers Build Predictions by
Promoting Concepts in the Vocabulary Space". The *value* ``v_i`` of neuron ``i`` is column ``i``
of a layer's second linear (``feed_forward.outer.weight[:, i]``, ``(E,)``;
:mod:`qkv.explain.memories`).

**How a value is read** (one choice, used by every memories module): ``r(v) = W · N(v)``, ``W``
the output matrix — the output layer of a language model or translation (``(V, E)``), the
(tied) token embedding of an encoder such as MiniLM (the masked-LM-style projection of
:mod:`qkv.explain.lens`), the head of a classifier (``(C, E)``; BERT's pooler linearised: at 0
for :func:`value_vocabulary`, at the input for
:func:`~qkv.explain.contributions.neuron_contributions`) — and ``N`` the *linear part* of the
final norm of a pre-norm model: ``LayerNorm(x) = γ ⊙ (x − mean x) / σ(x) + β``; for a given
input ``σ`` is one positive number and ``β`` the same for every neuron, so
``N(v) = γ ⊙ (v − mean v)`` is what a value adds to the normed stream, up to ``1/σ``. Geva et al.
(2022) project by ``W`` alone: ``through_final_norm=False`` does that. Post-norm models (the
paper's, BERT/MiniLM, Marian) have no final norm, so ``r(v) = W v``; their per-layer norms and
the later layers sit between a value and the output, so there it is the value's *direct*
reading, not an exact share of the logit.

Shape letters: ``E`` width, ``F`` = ``d_ff`` neurons per layer, ``V`` vocabulary (``C``
labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from qkv.explain.lens import lens_stack, token_namer
from qkv.explain.neurons import _check_count, _neurons, feed_forward
from qkv.models import EncoderModel, LanguageModel, Transformer

__all__ = ["ValueVocabulary", "value_logits", "value_vocabulary"]


def _output_matrix(model: nn.Module) -> Tensor:
    """``W``, ``(V, E)`` (``(C, E)`` for a classifier, its pooler linearised at 0)."""
    if isinstance(model, (LanguageModel, Transformer)):
        return model.output_layer.weight
    if isinstance(model, EncoderModel):
        return model.embedding.token.weight
    weight = model.classifier.weight                                    # (C, E)
    return weight if model.pooler is None else weight @ model.pooler.weight


def _norm_linear(model: nn.Module, vectors: Tensor, through_final_norm: bool) -> Tensor:
    """``N(v) = γ ⊙ (v − mean v)`` of a pre-norm model's final norm (identity otherwise).

    Shape: ``(..., E)`` → ``(..., E)``"""
    norm = lens_stack(model).final_norm
    if norm is None or not through_final_norm:
        return vectors
    centered = vectors - vectors.mean(-1, keepdim=True)
    return centered if norm.weight is None else centered * norm.weight


def value_logits(model: nn.Module, layer: int, neurons: int | Sequence[int] | None = None, *,
                 through_final_norm: bool = True) -> Tensor:
    """The values of ``layer`` read as logits: ``r(v_i) = W · N(v_i)`` (module docstring).

    Args:
        neurons: which (default all ``F``; for a large vocabulary that is ``F × V`` floats).
        through_final_norm: apply the linear part of a pre-norm model's final norm (``False``:
            Geva et al. 2022's plain ``E v_i``).

    Shape:
        returns ``(n, V)`` (``(n, C)`` for a classifier), ``n`` neurons
    """
    module = feed_forward(model, layer)
    F = module.outer.in_features
    chosen = _neurons(neurons, F, layer)
    with torch.no_grad():
        values = module.outer.weight.T[chosen]                          # (n, E)
        return _norm_linear(model, values, through_final_norm) @ _output_matrix(model).T


@dataclass(frozen=True)
class ValueVocabulary:
    """One value vector in the vocabulary space (Geva et al., 2022).

    Attributes:
        layer, neuron: which value.
        scores: ``(V,)`` (``(C,)`` for a classifier) — :func:`value_logits` of the neuron.
        top: ``(k,)`` ids it promotes most, highest score first.
        bottom: ``(k,)`` ids it suppresses most, lowest score first.
        top_tokens, bottom_tokens: their display strings (``"#id"`` without a tokenizer; label
            names for a classifier).
    """

    layer: int
    neuron: int
    scores: Tensor
    top: Tensor
    bottom: Tensor
    top_tokens: list[str]
    bottom_tokens: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the ids, strings and scores of the promoted and suppressed tokens."""
        return {"layer": self.layer, "neuron": self.neuron,
                "promotes": [{"id": int(i), "token": t, "score": float(self.scores[i])}
                             for i, t in zip(self.top.tolist(), self.top_tokens)],
                "suppresses": [{"id": int(i), "token": t, "score": float(self.scores[i])}
                               for i, t in zip(self.bottom.tolist(), self.bottom_tokens)]}


def value_vocabulary(model: nn.Module, layer: int, neuron: int, k: int = 10, *, tokenizer=None,
                     through_final_norm: bool = True) -> ValueVocabulary:
    """The tokens a feed-forward value promotes and suppresses (Geva, Caciularu, Wang &
    Goldberg, 2022, "Transformer Feed-Forward Layers Build Predictions by Promoting Concepts in
    the Vocabulary Space").

    Args:
        model: a qkv model (a translation: its decoder).
        layer: 0-based layer of the lens' stack.
        neuron: in ``[0, F)``.
        k: tokens listed each way.
        tokenizer: names the tokens (a translation: the target side's).
        through_final_norm: see :func:`value_logits`.

    Example:
        >>> import torch, qkv
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=16,
        ...     num_heads=2, num_layers=2, d_ff=32))
        >>> memory = value_vocabulary(model, layer=1, neuron=3, k=4)
        >>> int(memory.top[0]) == int(memory.scores.argmax()), memory.scores.shape
        (True, torch.Size([20]))
    """
    _check_count("k", k)
    scores = value_logits(model, layer, [neuron], through_final_norm=through_final_norm)[0]
    scores = scores.float().cpu()                                       # (V,)
    k = min(k, scores.shape[0])
    top = scores.topk(k).indices                                        # (k,)
    bottom = (-scores).topk(k).indices                                  # (k,)
    name = token_namer(model, tokenizer)
    return ValueVocabulary(layer, neuron, scores, top, bottom, name(top.tolist()),
                           name(bottom.tolist()))
