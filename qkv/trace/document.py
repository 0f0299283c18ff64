"""A trace as data for the views: a pure function from records and tokens to a JSON-able dict.

Rendering (:mod:`qkv.views`) reads only this document, never the model or the trace, so the same
document can be written to a file, sent by the live explorer, or embedded in a notebook. The
format, version 1::

    {"version": 1, "title": str,
     "sides": {side name: [token strings]},      # "source"/"target", or "text" for one stack
     "attentions": [                               # in the model's module order
       {"name": "decoder.layers.0.cross_attention",
        "kind": "encoder" | "decoder" | "cross",   # bidirectional self, causal self, cross
        "layer": int, "query_side": str, "key_side": str,
        "num_heads": H, "head_dim": D, "heads": [H model head indices],
        "query_positions": [T ints], "key_positions": [S ints],
        "weights": [H][T][S],
        # with detail=True, every recorded one of:
        "query": [H][T][D], "key": [H][S][D], "value": [H][S][D],
        "scores": [H][T][S] (raw Q Kᵀ), "scale": float (1/√D),
        "mask": [T][S] or [H][T][S] of 0/1 (1 = may attend),
        "head_outputs": [H][T][D], "output": [T][E]}, ...]}

Floats keep 6 significant digits; a non-finite number (a key a decoding step never saw) is
``null``, so the document is strict JSON. :func:`qkv.views.explore` adds what the model made
of the input in the same forward pass, an optional ``"prediction"``: a classifier's labels and
probabilities (``"classification"``), a translation's target text (``"translation"``), a
language model's most probable next tokens (``"next_token"``); see :mod:`qkv.views.contract`.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor

from qkv.trace.record import AttentionRecord
from qkv.trace.recorder import Trace

__all__ = ["attention_document", "document_to_json", "DEFAULT_SIDES"]

VERSION = 1
# (query side, key side) of each kind of attention, for an encoder–decoder's tokens.
DEFAULT_SIDES = {"encoder": ("source", "source"), "decoder": ("target", "target"),
                 "cross": ("target", "source")}


def attention_document(
    trace: Trace,
    tokens: Mapping[str, Sequence[str]],
    *,
    title: str = "",
    detail: bool = True,
    batch_index: int = 0,
    sides: Mapping[str, tuple[str, str]] | None = None,
) -> dict:
    """The records of ``trace`` for one sequence of the batch, as a JSON-able dict.

    Decoding steps of one module are joined first (:meth:`Trace.stitch`), so a document shows
    one ``T × S`` matrix per module and head, rows and columns at absolute positions. Calls
    that do not continue one another (several full forwards in one trace) are not joined: the
    document shows the last.

    Args:
        trace: a finished :func:`~qkv.trace.recorder.trace`, with ``weights`` recorded.
        tokens: the token strings of each side, e.g. ``{"source": [...], "target": [...]}``, or
            ``{"text": [...]}`` for a one-stack model. With one side, every attention uses it.
        title: shown by the views.
        detail: also include queries, keys, values, scores, scale, mask, head outputs and
            output (those the trace recorded); the neuron and step views need them.
        batch_index: which sequence of the batch.
        sides: ``(query side, key side)`` by module name or by kind (``"encoder"``,
            ``"decoder"``, ``"cross"``), overriding :data:`DEFAULT_SIDES`; a name wins.

    Returns:
        The document described in :mod:`qkv.trace.document`.

    Raises:
        TypeError: ``trace`` is not a :class:`~qkv.trace.recorder.Trace`, or ``tokens`` is not a
            mapping of lists of strings.
        ValueError: an empty trace, no recorded weights, a side missing from ``tokens``, a token
            count that differs from the keys ``S`` (or the queries ``T``), ``batch_index``
            out of range, or NaN or ±inf in the weights (other fields keep their non-finite
            values as ``None``, JSON having no NaN).

    Example:
        >>> import torch, qkv
        >>> from qkv.trace import trace
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=16,
        ...     num_heads=2, num_layers=1, d_ff=32, dropout=0.0)).eval()
        >>> with trace(model) as t:
        ...     _ = model(torch.tensor([[3, 4, 5]]))
        >>> doc = attention_document(t, {"text": ["I", "love", "dogs"]}, detail=False)
        >>> entry = doc["attentions"][0]
        >>> entry["name"], entry["kind"], entry["query_side"], entry["num_heads"]
        ('layers.0.self_attention', 'decoder', 'text', 2)
        >>> entry["weights"][0][0]                                      # the first token: itself
        [1.0, 0.0, 0.0]
    """
    if not isinstance(trace, Trace):
        raise TypeError(f"trace must be a qkv.trace.Trace, got {type(trace).__name__}")
    tokens = _check_tokens(tokens)
    if not trace.names():
        raise ValueError("the trace holds no records: run the model inside `with qkv.trace(...)`")
    attentions = []
    with _collection_paused():
        for name in trace.names():
            record = _joined(trace, name)
            query_side, key_side = _sides(record, tokens, sides)
            _check_counts(record, trace, tokens, query_side, key_side)
            attentions.append(_attention(record, query_side, key_side, detail, batch_index))
    return {"version": VERSION, "title": str(title),
            "sides": {side: list(strings) for side, strings in tokens.items()},
            "attentions": attentions}


def document_to_json(document: dict) -> str:
    """``document`` as compact, strict JSON (no NaN or Infinity), safe to embed in an HTML
    ``<script>`` element: ``<``, ``>``, ``&`` and the line separators U+2028/U+2029 are escaped.

    Example:
        >>> document_to_json({"version": 1, "sides": {"text": ["</script>"]}})
        '{"version":1,"sides":{"text":["\\\\u003c/script\\\\u003e"]}}'
    """
    text = json.dumps(document, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def _attention(record: AttentionRecord, query_side: str, key_side: str, detail: bool,
               b: int) -> dict:
    """One entry of ``"attentions"``, for batch row ``b``."""
    if record.weights is None:
        raise ValueError(f"{record.name!r} has no weights: trace with fields including 'weights'")
    B = record.weights.shape[0]
    if not -B <= b < B:
        raise ValueError(f"batch_index must be in [0, {B}) for a batch of {B}, got {b}")
    if not bool(torch.isfinite(record.weights[b]).all()):
        raise ValueError(f"{record.name!r} has NaN or infinite attention weights (batch row "
                         f"{b}): the model's input or parameters hold NaN or ±inf. A view would "
                         f"draw them as zero attention, so no document is made")
    head_dim = record.head_dim
    entry = {
        "name": record.name,
        "kind": record.kind,
        "layer": 0 if record.layer is None else record.layer,
        "query_side": query_side,
        "key_side": key_side,
        "num_heads": len(record.heads),
        "head_dim": head_dim,
        "heads": record.heads.tolist(),
        "query_positions": record.query_positions.tolist(),
        "key_positions": record.key_positions.tolist(),
        "weights": _floats(record.weights[b]),                          # [H][T][S]
    }
    if not detail:
        return entry
    for field in ("query", "key", "value", "scores"):
        if getattr(record, field) is not None:
            entry[field] = _floats(getattr(record, field)[b])           # [H][·][·]
    entry["scale"] = _round_scalar(record.scale)
    if record.mask is not None:
        mask = record.mask[b if record.mask.shape[0] > 1 else 0]        # (H|1, T, S)
        entry["mask"] = (mask[0] if mask.shape[0] == 1 else mask).int().tolist()
    if record.head_outputs is not None:
        entry["head_outputs"] = _floats(record.head_outputs[b])         # [H][T][D]
    if record.output is not None:
        entry["output"] = _floats(record.output[b])                     # [T][E]
    return entry


@contextlib.contextmanager
def _collection_paused() -> Iterator[None]:
    """No cyclic garbage collection while the document's millions of floats are made.

    Each new list is an object the collector tracks, and every few hundred of them it walks all
    the tracked objects of the process (in a server: the model's too); that took longer than
    making the lists (a 128-token MiniLM document: 0.8 s → 0.3 s). The lists hold no cycles;
    reference counting frees them as always.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _joined(trace: Trace, name: str) -> AttentionRecord:
    """The records of ``name`` stitched if they are steps of one sequence, else the last one."""
    records = trace.records(name)
    ends = [r.query_positions[-1].item() for r in records[:-1]]
    starts = [r.query_positions[0].item() for r in records[1:]]
    if all(start > end for start, end in zip(starts, ends)):
        return trace.stitch(name)
    return records[-1]


def _sides(record: AttentionRecord, tokens: dict[str, list[str]],
           sides: Mapping[str, tuple[str, str]] | None) -> tuple[str, str]:
    """The (query side, key side) of ``record``: an override, the only side, or by kind."""
    if sides is not None and record.name in sides:
        chosen = sides[record.name]
    elif sides is not None and record.kind in sides:
        chosen = sides[record.kind]
    elif len(tokens) == 1:
        (only,) = tokens
        chosen = (only, only)
    else:
        chosen = DEFAULT_SIDES[record.kind]
    if (not isinstance(chosen, (tuple, list)) or len(chosen) != 2
            or not all(isinstance(side, str) for side in chosen)):
        raise TypeError(f"sides must map to (query side, key side) pairs of str, got "
                        f"{chosen!r} for {record.name!r}")
    for side in chosen:
        if side not in tokens:
            raise ValueError(
                f"{record.name!r} ({record.kind} attention) reads side {side!r}, but tokens has "
                f"only {', '.join(map(repr, tokens))}; name the sides {DEFAULT_SIDES[record.kind]}"
                f" or pass sides={{{record.kind!r}: (query side, key side)}}")
    return chosen[0], chosen[1]


def _check_tokens(tokens: object) -> dict[str, list[str]]:
    if not isinstance(tokens, Mapping) or not tokens:
        raise TypeError(f"tokens must be a non-empty mapping of side name → list of token "
                        f"strings, e.g. {{'text': ['I', 'love']}}, got {type(tokens).__name__}")
    checked = {}
    for side, strings in tokens.items():
        if isinstance(strings, str) or not isinstance(strings, Sequence):
            raise TypeError(f"tokens[{side!r}] must be a list of token strings, got "
                            f"{type(strings).__name__}")
        for token in strings:
            if not isinstance(token, str):
                raise TypeError(f"tokens[{side!r}] must hold strings, got "
                                f"{type(token).__name__} ({token!r})")
        checked[str(side)] = list(strings)
    return checked


def _check_counts(record: AttentionRecord, trace: Trace, tokens: dict[str, list[str]],
                  query_side: str, key_side: str) -> None:
    """Keys: one token per key position. Queries: a token for each query position (exactly T
    tokens when every row from position 0 was recorded)."""
    S = len(record.key_positions)
    if len(tokens[key_side]) != S:
        raise ValueError(f"{record.name!r} has S = {S} keys but tokens[{key_side!r}] has "
                         f"{len(tokens[key_side])} tokens")
    positions = record.query_positions.tolist()
    count = len(tokens[query_side])
    complete = trace.selection.queries is None and positions[:1] == [0]
    if (complete and count != len(positions)) or (positions and max(positions) >= count):
        raise ValueError(f"{record.name!r} has T = {len(positions)} queries (positions "
                         f"{positions[0]}…{positions[-1]}) but tokens[{query_side!r}] has "
                         f"{count} tokens")


# 10⁰ … 10³⁰⁸, each the double nearest to it: the scale factors of _floats, looked up rather than
# computed (a power per element was most of the time of turning a trace into a document).
_POWERS_OF_TEN = torch.tensor([10.0 ** k for k in range(309)], dtype=torch.float64)


def _floats(x: Tensor, digits: int = 6) -> list:
    """``x`` as nested lists of floats with ``digits`` significant digits; non-finite → None."""
    a = x.detach().to("cpu", torch.float64)
    finite = torch.isfinite(a)
    all_finite = bool(finite.all())
    safe = a if all_finite else torch.where(finite, a, 0.0)
    magnitude = safe.abs().clamp_min_(1e-300).log10_().floor_()
    shift = (digits - 1 - magnitude).long()                             # decimals to keep
    power = _POWERS_OF_TEN[shift.abs().clamp_max_(308)]
    # Multiply or divide by an exact power of ten, so that the result prints as its digits.
    up = shift >= 0
    values = torch.where(up, safe * power, safe / power).round_()
    values = torch.where(up, values / power, values * power)
    if all_finite:
        return values.tolist()
    return _none_where(values.tolist(), finite.tolist())


def _none_where(values: list, finite: list) -> list:
    return [_none_where(v, f) if isinstance(v, list) else (v if f else None)
            for v, f in zip(values, finite)]


def _round_scalar(value: float, digits: int = 6) -> float:
    return float(f"{value:.{digits}g}")
