"""What a view needs of an attention document: validation and look-ups, no rendering.

An *attention document* is the JSON-able dict that :func:`qkv.trace.document.attention_document`
builds from a trace; every view of :mod:`qkv.views` renders one. Its shape::

    {"version": 1, "title": str,
     "sides": {"source": [tokens], "target": [tokens]},      # one side "text" for LM / encoder
     "attentions": [{"name": "encoder.layers.0.self_attention",
                     "kind": "encoder" | "decoder" | "cross", "layer": 0,
                     "query_side": "source", "key_side": "source",
                     "num_heads": H, "head_dim": D,
                     "query_positions": [T ints], "key_positions": [S ints],
                     "weights": [H][T][S],
                     # with detail: "query" [H][T][D], "key" [H][S][D], "value" [H][S][D],
                     # "scores" [H][T][S] (raw Q Kᵀ), "scale", "mask" [T][S] or [H][T][S],
                     # "head_outputs" [H][T][D], "output" [T][E]
                     }, ...]}

``kind`` names the attention: ``"encoder"`` bidirectional self-attention, ``"decoder"`` causal
self-attention, ``"cross"`` decoder queries over encoder keys.

A document may also carry what the model made of the input, from the same forward pass, as an
optional ``"prediction"`` of one of the :data:`PREDICTION_KINDS` (the views show it in a panel
beside the attention)::

    {"kind": "classification",               # a classifier's
     "labels": [C names], "probabilities": [C], "label": the most probable label,
     "logits": [C]}                          # (logits optional)
    {"kind": "translation",                  # an encoder-decoder's
     "text": str,                            # the target side as text, special tokens dropped
     "greedy": bool}                         # (optional) true: the model's greedy output;
                                             # false: a target given to teacher-force
    {"kind": "next_token",                   # a language model's, after the last token
     "tokens": [k token strings], "probabilities": [k],   # most probable first
     "ids": [k ints]}                        # (ids optional)

Probabilities lie in [0, 1]; a classifier's sum to 1, the ``k`` most probable next tokens' to at
most 1 (both within float32 rounding).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "KINDS",
    "PREDICTION_KINDS",
    "check_document",
    "check_prediction",
    "find_attention",
    "kinds",
    "layers_of",
    "ranked_labels",
    "tokens_of",
]

KINDS = ("encoder", "decoder", "cross")
PREDICTION_KINDS = ("classification", "translation", "next_token")
_PREDICTION_FIELDS = {"classification": ("labels", "probabilities", "label"),
                      "translation": ("text",), "next_token": ("tokens", "probabilities")}
_SUM_TOLERANCE = 1e-4  # probabilities sum to 1 within this (float32 softmax, JSON round trips)
_REQUIRED = ("name", "kind", "layer", "query_side", "key_side", "num_heads", "weights")


def _shape(value: Any, depth: int) -> tuple[int, ...]:
    """Lengths of the first element along ``depth`` nested lists (a cheap shape, not a check)."""
    shape = []
    for _ in range(depth):
        if not isinstance(value, Sequence) or isinstance(value, str):
            break
        shape.append(len(value))
        value = value[0] if len(value) else None
    return tuple(shape)


def check_document(document: Any) -> dict:
    """Check that ``document`` is an attention document a view can render; return it.

    Raises a ValueError (TypeError for a non-dict) naming the field, what was expected and what
    came: e.g. the weights of a 4-head attention over 3 queries and 5 keys must be ``(4, 3, 5)``.

    Example:
        >>> doc = {"version": 1, "title": "t", "sides": {"text": ["a", "b"]}, "attentions": [
        ...     {"name": "layers.0.self_attention", "kind": "decoder", "layer": 0,
        ...      "query_side": "text", "key_side": "text", "num_heads": 1, "head_dim": 2,
        ...      "weights": [[[1.0, 0.0], [0.5, 0.5]]]}]}
        >>> check_document(doc) is doc
        True
        >>> doc["attentions"][0]["weights"] = [[[1.0, 0.0]]]
        >>> check_document(doc)
        Traceback (most recent call last):
        ...
        ValueError: attention 'layers.0.self_attention': weights must have shape (H, T, S) = (1, 2, 2), got (1, 1, 2)
    """
    if not isinstance(document, Mapping):
        raise TypeError(f"an attention document must be a dict, got {type(document).__name__}")
    for field in ("sides", "attentions"):
        if field not in document:
            raise ValueError(f"an attention document needs a {field!r} field; got fields "
                             f"{sorted(document)}")
    sides = document["sides"]
    if not isinstance(sides, Mapping) or not sides:
        raise ValueError(f"'sides' must map side names to token lists, got {sides!r:.80}")
    for side, tokens in sides.items():
        if (isinstance(tokens, str) or not isinstance(tokens, Sequence)
                or not all(isinstance(t, str) for t in tokens)):
            raise ValueError(f"side {side!r} must be a list of token strings, got "
                             f"{type(tokens).__name__}")
    attentions = document["attentions"]
    if not isinstance(attentions, Sequence) or not attentions:
        raise ValueError("'attentions' must be a non-empty list of attention records")
    for record in attentions:
        _check_record(record, sides)
    if "prediction" in document:
        check_prediction(document["prediction"])
    return document


def check_prediction(prediction: Any) -> dict:
    """Check the optional ``"prediction"`` of a document (see the module docstring); return it.

    Example:
        >>> p = {"kind": "classification", "labels": ["ham", "spam"],
        ...      "probabilities": [0.25, 0.75], "label": "spam"}
        >>> check_prediction(p) is p
        True
        >>> check_prediction({**p, "label": "ham"})
        Traceback (most recent call last):
        ...
        ValueError: prediction: label must be the most probable label, 'spam' (0.75), got 'ham' (0.25)
        >>> check_prediction({"kind": "next_token", "tokens": ["dog", "cat"],
        ...                   "probabilities": [0.25, 0.5]})
        Traceback (most recent call last):
        ...
        ValueError: prediction: next-token probabilities must be most probable first, got [0.25, 0.5]
    """
    if not isinstance(prediction, Mapping):
        raise TypeError(f"'prediction' must be a dict, got {type(prediction).__name__}")
    if "kind" not in prediction:
        raise ValueError(f"prediction lacks field(s) kind; got fields {sorted(prediction)}")
    if prediction["kind"] not in PREDICTION_KINDS:
        raise ValueError(f"prediction: kind must be one of {PREDICTION_KINDS}, got "
                         f"{prediction['kind']!r}")
    kind = prediction["kind"]
    missing = [f for f in _PREDICTION_FIELDS[kind] if f not in prediction]
    if missing:
        raise ValueError(f"prediction lacks field(s) {', '.join(missing)} (a {kind!r} "
                         f"prediction needs {', '.join(_PREDICTION_FIELDS[kind])}); got fields "
                         f"{sorted(prediction)}")
    {"classification": _check_classification, "translation": _check_translation,
     "next_token": _check_next_token}[kind](prediction)
    return prediction


def _check_classification(prediction: Mapping) -> None:
    labels = prediction["labels"]
    if (isinstance(labels, str) or not isinstance(labels, Sequence) or len(labels) < 2
            or not all(isinstance(label, str) for label in labels)):
        raise ValueError(f"prediction: labels must be a list of at least 2 label names (str), "
                         f"got {labels!r:.80}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"prediction: labels must be distinct, got {list(labels)!r:.80}")
    _check_numbers("probabilities", prediction["probabilities"], len(labels))
    if "logits" in prediction:
        _check_numbers("logits", prediction["logits"], len(labels))
    probabilities = prediction["probabilities"]
    _check_probabilities(probabilities)
    total = sum(probabilities)
    if abs(total - 1.0) > _SUM_TOLERANCE:
        raise ValueError(f"prediction: probabilities must sum to 1, got a sum of {total:.6g}")
    best = max(range(len(labels)), key=lambda i: probabilities[i])
    label = prediction["label"]
    if label not in labels or probabilities[labels.index(label)] < probabilities[best]:
        got = (f"{label!r} ({probabilities[labels.index(label)]:.4g})" if label in labels
               else f"{label!r}, not one of the labels")
        raise ValueError(f"prediction: label must be the most probable label, "
                         f"{labels[best]!r} ({probabilities[best]:.4g}), got {got}")


def _check_translation(prediction: Mapping) -> None:
    if not isinstance(prediction["text"], str):
        raise ValueError(f"prediction: a translation's text must be a str, got "
                         f"{type(prediction['text']).__name__}")
    if "greedy" in prediction and not isinstance(prediction["greedy"], bool):
        raise ValueError(f"prediction: greedy must be true or false, got "
                         f"{prediction['greedy']!r:.80}")


def _check_next_token(prediction: Mapping) -> None:
    tokens = prediction["tokens"]
    if (isinstance(tokens, str) or not isinstance(tokens, Sequence) or not tokens
            or not all(isinstance(token, str) for token in tokens)):
        raise ValueError(f"prediction: tokens must be a non-empty list of token strings, got "
                         f"{tokens!r:.80}")
    probabilities = prediction["probabilities"]
    _check_numbers("probabilities", probabilities, len(tokens), per="token")
    _check_probabilities(probabilities)
    if any(a < b for a, b in zip(probabilities, probabilities[1:])):
        raise ValueError(f"prediction: next-token probabilities must be most probable first, "
                         f"got {list(probabilities)!r:.80}")
    total = sum(probabilities)
    if total > 1.0 + _SUM_TOLERANCE:
        raise ValueError(f"prediction: the next-token probabilities must sum to at most 1, "
                         f"got a sum of {total:.6g}")
    if "ids" in prediction:
        ids = prediction["ids"]
        if (isinstance(ids, str) or not isinstance(ids, Sequence) or len(ids) != len(tokens)
                or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                           for i in ids) or len(set(ids)) != len(ids)):
            raise ValueError(f"prediction: ids must be {len(tokens)} distinct token ids (ints "
                             f">= 0), one per token, got {ids!r:.80}")


def _check_probabilities(probabilities: Sequence[float]) -> None:
    if any(not 0.0 <= p <= 1.0 for p in probabilities):
        raise ValueError(f"prediction: probabilities must lie in [0, 1], got {probabilities}")


def _check_numbers(field: str, values: Any, count: int, *, per: str = "label") -> None:
    """``values`` is a list of ``count`` finite numbers (a bool is no number)."""
    if (isinstance(values, str) or not isinstance(values, Sequence)
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values)):
        raise ValueError(f"prediction: {field} must be a list of numbers, got {values!r:.80}")
    if len(values) != count:
        raise ValueError(f"prediction: {field} must have one number per {per}, {count}, got "
                         f"{len(values)}")
    if not all(math.isfinite(x) for x in values):
        raise ValueError(f"prediction: {field} must be finite, got {list(values)!r:.80}")


def ranked_labels(prediction: Mapping, k: int | None = None) -> list[tuple[str, float]]:
    """``(label, probability)`` pairs, most probable first (ties in label order), the first ``k``.

    The HTML views show this order, at most 10 labels.

    Example:
        >>> ranked_labels({"labels": ["a", "b", "c"], "probabilities": [0.2, 0.5, 0.3]}, k=2)
        [('b', 0.5), ('c', 0.3)]
    """
    pairs = sorted(zip(prediction["labels"], prediction["probabilities"]),
                   key=lambda pair: -pair[1])
    return pairs if k is None else pairs[:k]


def _check_record(record: Any, sides: Mapping[str, Sequence[str]]) -> None:
    if not isinstance(record, Mapping):
        raise TypeError(f"each attention record must be a dict, got {type(record).__name__}")
    missing = [field for field in _REQUIRED if field not in record]
    name = record.get("name", "?")
    if missing:
        raise ValueError(f"attention {name!r} lacks field(s) {', '.join(missing)}")
    if record["kind"] not in KINDS:
        raise ValueError(f"attention {name!r}: kind must be one of {KINDS}, got {record['kind']!r}")
    for field in ("query_side", "key_side"):
        if record[field] not in sides:
            raise ValueError(f"attention {name!r}: {field} {record[field]!r} is not a side of "
                             f"the document (sides: {', '.join(sides)})")
    heads = record["num_heads"]
    if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1:
        raise ValueError(f"attention {name!r}: num_heads must be a positive int, got {heads!r}")
    T = len(record.get("query_positions") or sides[record["query_side"]])
    S = len(record.get("key_positions") or sides[record["key_side"]])
    expected = (record["num_heads"], T, S)
    got = _shape(record["weights"], 3)
    if got != expected:
        raise ValueError(f"attention {name!r}: weights must have shape (H, T, S) = {expected}, "
                         f"got {got}")


def kinds(document: Mapping) -> list[str]:
    """The attention kinds present, in the order encoder, decoder, cross."""
    present = {record["kind"] for record in document["attentions"]}
    return [kind for kind in KINDS if kind in present]


def layers_of(document: Mapping, kind: str) -> list[dict]:
    """The records of one kind, sorted by layer."""
    records = [record for record in document["attentions"] if record["kind"] == kind]
    if not records:
        raise ValueError(f"the document has no {kind!r} attention; it has {kinds(document)}")
    return sorted(records, key=lambda record: record["layer"])


def find_attention(document: Mapping, name: str) -> dict:
    """The record named ``name`` (a ValueError listing the names if there is none)."""
    for record in document["attentions"]:
        if record["name"] == name:
            return record
    names = [record["name"] for record in document["attentions"]]
    raise ValueError(f"no attention named {name!r}; the document has {names}")


def tokens_of(document: Mapping, record: Mapping) -> tuple[list[str], list[str]]:
    """``(query tokens, key tokens)`` of a record, restricted to its recorded positions."""
    query_tokens = list(document["sides"][record["query_side"]])
    key_tokens = list(document["sides"][record["key_side"]])
    if record.get("query_positions") is not None:
        query_tokens = [_at(query_tokens, i) for i in record["query_positions"]]
    if record.get("key_positions") is not None:
        key_tokens = [_at(key_tokens, i) for i in record["key_positions"]]
    return query_tokens, key_tokens


def _at(tokens: Sequence[str], position: int) -> str:
    """The token at ``position``, or ``"#position"`` past the end of the side."""
    return tokens[position] if 0 <= position < len(tokens) else f"#{position}"
