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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["KINDS", "check_document", "find_attention", "kinds", "layers_of", "tokens_of"]

KINDS = ("encoder", "decoder", "cross")
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
        if not isinstance(tokens, Sequence) or not all(isinstance(t, str) for t in tokens):
            raise ValueError(f"side {side!r} must be a list of token strings")
    attentions = document["attentions"]
    if not isinstance(attentions, Sequence) or not attentions:
        raise ValueError("'attentions' must be a non-empty list of attention records")
    for record in attentions:
        _check_record(record, sides)
    return document


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
