"""Feed-forward layers as key–value memories: what a neuron detects and what it writes.

Geva, Schuster, Berant & Levy, 2021, "Transformer Feed-Forward Layers Are Key-Value Memories";
Geva, Caciularu, Wang & Goldberg, 2022, "Transformer Feed-Forward Layers Build Predictions by
Promoting Concepts in the Vocabulary Space".

``FFN(x) = f(x K^T) V + b_2``: the *key* ``k_i`` is row ``i`` of the first linear
(``feed_forward.inner.weight[i]``, ``(E,)``), the *value* ``v_i`` column ``i`` of the second
(``feed_forward.outer.weight[:, i]``, ``(E,)``), and the *activation* ``m_i = f(x · k_i + b_i)``
(the second linear's input) weighs the value: ``FFN(x) = Σ_i m_i v_i + b_2``. Neuron ``i`` of a
layer is the pair ``(k_i, v_i)``.

One module per job:

* :mod:`qkv.explain.neurons` — where the memories are: a layer's feed-forward
  (:func:`~qkv.explain.neurons.feed_forward`) and every neuron's activation
  (:func:`~qkv.explain.neurons.ffn_activations`);
* :mod:`qkv.explain.contexts` — :func:`~qkv.explain.contexts.top_activating_contexts`, the
  inputs whose key matches best (Geva 2021): a streaming top-k over a corpus with bounded memory
  (:class:`~qkv.explain.contexts.RunningTopK`), the corpus read by :mod:`qkv.explain.corpus`;
* :mod:`qkv.explain.values` — :func:`~qkv.explain.values.value_vocabulary`, the value projected
  onto the vocabulary: the tokens it promotes and those it suppresses (Geva 2022), and how a
  value is read (through the linear part of a pre-norm model's final norm);
* :mod:`qkv.explain.contributions` — :func:`~qkv.explain.contributions.neuron_contributions`,
  for one subject, activation × the value's score for the target: the neurons that pushed the
  prediction most, and when that is an exact share of the target logit.

This module puts them together for one subject: :func:`memories_report`, the registered
``"memories"`` analysis. Layers are numbered from 0 (``layers[0]``) within the stack the lens
reads (a translation's decoder). Shape letters: ``L`` layers, ``F`` = ``d_ff`` neurons per
layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from qkv.explain.analysis import register_analysis
from qkv.explain.contexts import _stream_contexts
from qkv.explain.contributions import neuron_contributions
from qkv.explain.lens import lens_stack, subject_tokenizer
from qkv.explain.neurons import _check_count
from qkv.explain.subject import Subject
from qkv.explain.values import value_vocabulary
from qkv.models import Transformer
from qkv.views.memories import memories_html, save_memories_png

__all__ = ["memories_report"]


def memories_report(subject: Subject, *, k: int = 10, per_layer: int = 3, vocabulary: int = 6,
                    corpus: Iterable | None = None, contexts: int = 5, tokenizer=None,
                    target_tokenizer=None, batch_size: int = 16, window: int = 6,
                    through_final_norm: bool = True) -> dict[str, Any]:
    """Feed-forward memories of one subject as a JSON-able report (what ``"memories"`` runs).

    Args:
        subject: a subject of any family.
        k: neurons listed overall (those that pushed the target up most, and as many that
            pushed it down most).
        per_layer: neurons listed per layer.
        vocabulary: tokens listed per value, promoted and suppressed
            (:func:`~qkv.explain.values.value_vocabulary`, for the ``k`` top neurons).
        corpus: texts (or ids; pairs for a translation) to find each top neuron's
            top-activating contexts in (:func:`~qkv.explain.contexts.top_activating_contexts`);
            none without it. A translation's decoder reads ``(source, target)`` pairs.
        contexts: contexts kept per neuron.
        tokenizer, target_tokenizer: name tokens and encode the corpus (a translation's
            vocabulary is its target side's: ``target_tokenizer``, default ``tokenizer``);
            default the subject's own (:attr:`Subject.tokenizers`).

    Returns:
        ``{"kind": "memories", "target", "readout", "exact", "pre_norm", "stack",
        "num_layers", "d_ff", "layer_totals" (L), "bias" (L), "top" and "against" (k neuron
        entries: ``{"layer", "neuron", "activation", "value_score", "contribution",
        "promotes", "suppresses", "contexts"?}``), "per_layer" (L lists of entries without
        vocabulary), "contexts_searched": bool}``.
    """
    for name, value in (("k", k), ("per_layer", per_layer), ("vocabulary", vocabulary),
                        ("contexts", contexts)):
        _check_count(name, value)
    model = subject.model
    stack = lens_stack(model)
    found = neuron_contributions(subject)
    translation = isinstance(model, Transformer)
    tokenizer = tokenizer or subject_tokenizer(subject, "source" if translation else "text")
    target_tokenizer = target_tokenizer or subject_tokenizer(subject, "target")
    vocabulary_tokenizer = (target_tokenizer or tokenizer) if translation else tokenizer

    def entry(layer: int, neuron: int) -> dict[str, Any]:
        return {"layer": layer, "neuron": neuron,
                "activation": float(found.activations[layer, neuron]),
                "value_score": float(found.value_scores[layer, neuron]),
                "contribution": float(found.contributions[layer, neuron])}

    top = [entry(l, i) for l, i, _ in found.top(k)]
    against = [entry(l, i) for l, i, _ in found.top(k, largest=False)]
    for row in top + against:
        memory = value_vocabulary(model, row["layer"], row["neuron"], vocabulary,
                                  tokenizer=vocabulary_tokenizer,
                                  through_final_norm=through_final_norm).to_dict()
        row["promotes"], row["suppresses"] = memory["promotes"], memory["suppresses"]
    if corpus is not None:
        corpus = list(corpus)
        wanted: dict[int, list[int]] = {}
        for row in top + against:
            if row["neuron"] not in wanted.setdefault(row["layer"], []):
                wanted[row["layer"]].append(row["neuron"])
        searched = _stream_contexts(model, wanted, corpus, tokenizer, k=contexts,
                                    batch_size=batch_size, window=window, stack=None,
                                    target_tokenizer=target_tokenizer)
        for row in top + against:
            row["contexts"] = [c.to_dict() for c in searched[(row["layer"], row["neuron"])]]
    L, F = found.contributions.shape
    return {
        "kind": "memories",
        "target": subject.target_name,
        "readout": found.readout,
        "exact": found.exact,
        "pre_norm": stack.pre_norm,
        "through_final_norm": bool(through_final_norm and stack.pre_norm),
        "stack": stack.name,
        "num_layers": L,
        "d_ff": F,
        "layer_totals": found.layer_totals().tolist(),
        "bias": found.bias.tolist(),
        "top": top,
        "against": against,
        "per_layer": [[entry(l, i) for l, i, _ in found.top(per_layer, layer=layer)]
                      for layer in range(L)],
        "contexts_searched": corpus is not None,
    }


@register_analysis("memories", html=memories_html, png=save_memories_png)
def _run_memories(subject: Subject, **options: Any) -> dict[str, Any]:
    """Feed-forward layers as key–value memories (Geva, Schuster, Berant & Levy, 2021; Geva,
    Caciularu, Wang & Goldberg, 2022): see :func:`memories_report`."""
    return memories_report(subject, **options)
