"""Per-input neuron contributions: the feed-forward neurons that pushed one prediction most.

Geva, Schuster, Berant & Levy, 2021; Geva, Caciularu, Wang & Goldberg, 2022. For one subject,
neuron ``i`` of a layer writes ``m_i v_i`` (:mod:`qkv.explain.memories`); its contribution is
its activation ``m_i`` times the value's score for the target, the value read as
:mod:`qkv.explain.values` reads it (``r(v) = W · N(v)``).

**Exactness.** For a pre-norm model, ``σ_t`` the final norm's scale at position ``t``, the target
logit decomposes exactly over the residual stream's parts
(``logit = Σ_parts W·N(part)/σ + W·β + bias``), and :func:`neuron_contributions` are the feed-
forward parts' terms split over neurons: per layer, ``Σ_i contribution_i + bias_term`` equals
``W_target · N(FFN output) / σ`` to rounding. For a post-norm model the same sum equals
``W_target · FFN output`` (the direct path).

Shape letters: ``L`` layers of the lens' stack, ``T`` positions, ``E`` width, ``F`` = ``d_ff``
neurons per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from qkv.explain.lens import lens_stack, residual_stream
from qkv.explain.neurons import _check_count, _check_index, feed_forward, ffn_activations
from qkv.explain.subject import Subject
from qkv.explain.targets import Label, Similarity
from qkv.explain.values import _norm_linear
from qkv.models import SequenceClassifier

__all__ = ["NeuronContributions", "neuron_contributions"]


@dataclass(frozen=True)
class NeuronContributions:
    """How much each feed-forward neuron pushed a subject's target (module docstring).

    ``contributions[l, i] = (Σ_t scale_t · m_{l,t,i}) · value_scores[l, i]``: the activation at
    the target's position (weighted over positions where the output pools them) times the
    value's score for the target, over the final norm's ``σ`` for a pre-norm model.

    Attributes:
        activations: ``(L, F)``, ``m_i`` at the target's position (a classifier's ``[CLS]``;
            the mean over tokens for mean pooling or a similarity).
        value_scores: ``(L, F)``, ``d · v_i``, ``d = N(u)`` the target's readout direction
            (``u`` its row of the output matrix, the head's row through the linearised pooler,
            or the unit reference vector of a similarity).
        contributions: ``(L, F)``, signed: > 0 pushed the target up.
        bias: ``(L,)``, the second linear's bias ``b_2`` read the same way.
        scale: ``(T,)``, ``w_t / σ_t``: the pooling weight of each position over the final
            norm's scale there (``σ = 1`` without a final norm).
        readout: what ``W`` is (``"output layer"``, ``"classifier head"``, ``"token
            embedding"``; ``"reference direction"`` for a similarity).
        exact: whether per-layer sums are the feed-forward's exact share of the target logit
            (a pre-norm model, no pooler, not a similarity) rather than its direct reading.
    """

    activations: Tensor
    value_scores: Tensor
    contributions: Tensor
    bias: Tensor
    scale: Tensor
    readout: str
    exact: bool

    def layer_totals(self) -> Tensor:
        """``(L,)``: each layer's neurons and bias together, its feed-forward's reading."""
        return self.contributions.sum(-1) + self.bias

    def top(self, k: int, *, layer: int | None = None,
            largest: bool = True) -> list[tuple[int, int, float]]:
        """The ``k`` neurons that pushed the target most (``largest=False``: pushed it down
        most), overall or in one layer: ``[(layer, neuron, contribution)]``."""
        _check_count("k", k)
        L, F = self.contributions.shape
        if layer is None:
            flat = self.contributions.flatten()
        else:
            _check_index("layer", layer, L, f"the {L} layers")
            flat = self.contributions[layer]
        values, where = (flat if largest else -flat).topk(min(k, flat.shape[0]))
        rows = [(int(w) // F, int(w) % F) if layer is None else (layer, int(w))
                for w in where.tolist()]
        return [(l, i, float(self.contributions[l, i])) for l, i in rows]


def neuron_contributions(subject: Subject) -> NeuronContributions:
    """Each feed-forward neuron's push on the subject's target: activation × value score
    (Geva, Schuster, Berant & Levy, 2021; Geva, Caciularu, Wang & Goldberg, 2022).

    For a language model or a translation the target is a token at the last position; for a
    classifier its label through the head (``[CLS]`` or mean pooling); for an encoder (MiniLM)
    with a :class:`~qkv.explain.Similarity` target, the direction of the reference vector over
    the mean-pooled output.

    Shape:
        see :class:`NeuronContributions` (``L`` layers of the lens' stack, ``F`` neurons)
    """
    model, target = subject.model, subject.target
    stack = lens_stack(model)
    ids = subject.ids[stack.side]
    source = subject.ids.get("source")
    stream = residual_stream(model, ids, source=source)                 # (L + 1, T, E)
    activations = ffn_activations(model, ids, source=source)            # (L, T, F)
    final = stream[-1].float()                                          # (T, E)
    weights = _pooling_weights(subject, ids).to(final.device)           # (T,)
    norm = stack.final_norm
    sigma = torch.ones_like(weights)
    if norm is not None:
        sigma = (final.var(-1, unbiased=False) + norm.eps).sqrt()      # (T,)
    scale = weights / sigma                                             # (T,)
    with torch.no_grad():
        direction = _target_direction(subject, final, weights).float()  # (E,), u
        direction = _norm_linear(model, direction, True)                # (E,), d = N(u)
        value_scores, bias = [], []
        for index in range(len(stack.layers)):
            module = feed_forward(model, index)
            value_scores.append(module.outer.weight.float().T @ direction)      # (F,)
            b2 = module.outer.bias
            bias.append(direction.new_zeros(()) if b2 is None else b2.float() @ direction)
        value_scores = torch.stack(value_scores)                        # (L, F)
        bias = torch.stack(bias) * scale.sum()                          # (L,)
        pooled = torch.einsum("t,ltf->lf", weights, activations.float())        # (L, F)
        scaled = torch.einsum("t,ltf->lf", scale, activations.float())          # (L, F)
        contributions = scaled * value_scores                           # (L, F)
    readout = "reference direction" if isinstance(target, Similarity) else stack.readout
    exact = (norm is not None and not isinstance(target, Similarity)
             and not (isinstance(model, SequenceClassifier) and model.pooler is not None))
    return NeuronContributions(pooled.cpu(), value_scores.cpu(), contributions.cpu(), bias.cpu(),
                               scale.cpu(), readout, exact)


def _pooling_weights(subject: Subject, ids: Tensor) -> Tensor:
    """``(T,)``: how the output reads the positions — one-hot at the last for a token target,
    the classifier's pooling, the mean over non-padding tokens for a similarity."""
    model, target = subject.model, subject.target
    T = ids.shape[0]
    one_hot = torch.zeros(T)
    if isinstance(target, Label) and model.config.pooling == "cls":
        one_hot[0] = 1.0
        return one_hot
    if isinstance(target, (Label, Similarity)):
        pad = model.config.pad_id
        keep = torch.ones(T) if pad is None else (ids != pad).float()
        return keep / keep.sum().clamp(min=1.0)
    one_hot[-1] = 1.0
    return one_hot


def _target_direction(subject: Subject, final: Tensor, weights: Tensor) -> Tensor:
    """``u (E,)``: the target's row of the readout (:mod:`qkv.explain.values`)."""
    model, target = subject.model, subject.target
    if isinstance(target, Similarity):
        reference = target.reference.float().to(final.device)
        return reference / reference.norm().clamp(min=1e-12)
    if isinstance(target, Label):
        row = model.classifier.weight[target.label].float()             # (E,)
        if model.pooler is None:
            return row
        norm = lens_stack(model).final_norm
        normed = final if norm is None else norm(final)                 # (T, E)
        pooled = weights @ normed                                       # (E,)
        slope = 1 - torch.tanh(model.pooler(pooled)).square()          # (E,), tanh' at the input
        return model.pooler.weight.float().T @ (slope * row)            # (E,)
    return model.output_layer.weight[target.token].float()             # (E,)
