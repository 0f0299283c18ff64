"""What a trace keeps of one attention call: :class:`AttentionRecord`, and :func:`stitch` to join
the records of step-by-step decoding into one.

Shape letters are those of :mod:`qkv.attention.functional`; ``H`` below is the number of
*recorded* heads (all of them unless the trace chose some), ``T`` the number of recorded query
rows (all of them unless the trace chose some).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["AttentionRecord", "RECORD_FIELDS", "stitch"]

# The tensor fields a trace may keep, in the order of the computation.
RECORD_FIELDS = ("query", "key", "value", "scores", "scaled_scores", "mask", "weights",
                 "head_outputs", "concat", "output")
# Fields with a query-row dim, and where it is; the others (key, value) have none.
_ROW_DIM = {"query": 2, "scores": 2, "scaled_scores": 2, "mask": 2, "bias": 2, "weights": 2,
            "head_outputs": 2, "concat": 1, "output": 1}


@dataclass
class AttentionRecord:
    """Everything one call of a :class:`~qkv.MultiHeadAttention` computed, as plain tensors.

    The tensors are detached copies (on the model's device, or the trace's ``device``): save them
    with ``torch.save``, change them freely. A field the trace was told not to keep is ``None``.

    Attributes:
        name: the module's dotted name in the traced model, e.g.
            ``"decoder.layers.2.cross_attention"`` (``""`` when the traced model is the attention).
        call: which call of that module this was, counting from 0 within the trace (the decoding
            step, with a KV cache).
        layer: the ``N`` of a ``layers.N`` in the name, else ``None``.
        self_attention: keys and values came from the query sequence (else: cross-attention).
        causal: no query attended to a later position.
        num_heads: the module's number of heads (all of them, recorded or not).
        head_dim: D, the width of each head.
        heads: ``(H,)``, which heads the per-head fields hold (``0 … num_heads-1`` by default).
        scale: the scores' multiplier, ``1 / √D``.
        query_positions: ``(T,)``, the index in its sequence of each recorded query row.
        key_positions: ``(S,)``, the index in its sequence of each key. With a KV cache the keys
            are all the cached ones (``0 … S-1``) and a step's queries the last of them.
        query: ``(B, H, T, D)``, per-head queries ``Q W^Q``, after the rotary rotation if any.
        key: ``(B, H, S, D)``, per-head keys, after rotation, including cached keys, and repeated
            to every query head under grouped-query attention.
        value: ``(B, H, S, D)``, per-head values, likewise.
        scores: ``(B, H, T, S)``, raw ``Q Kᵀ``.
        scaled_scores: ``(B, H, T, S)``, ``scores · scale``, before any mask.
        mask: ``(B or 1, H or 1, T, S)`` boolean, ``True`` = may attend: padding, causal and any
            given mask combined. A row with no allowed key got zero weights and a zero output.
        bias: ``(B or 1, H or 1, T, S)``, the finite part of a floating (additive) mask, added to
            ``scaled_scores``; ``None`` for boolean masks (all of qkv's models).
        weights: ``(B, H, T, S)``, the softmax of the masked scaled scores, as applied (after
            attention dropout, in training).
        head_outputs: ``(B, H, T, D)``, ``weights @ value``, one output per head.
        concat: ``(B, T, E)``, all heads merged, ``Concat(head_1, …, head_h)``, before W^O.
        output: ``(B, T, E)``, the module's output, ``concat`` through W^O.

        ``concat`` and ``output`` always mix every head, also when only some were recorded.

    Example:
        >>> import torch, qkv
        >>> from qkv.trace import trace
        >>> attention = qkv.MultiHeadAttention(d_model=16, num_heads=4)
        >>> with trace(attention) as t:
        ...     _ = attention(torch.randn(2, 5, 16))
        >>> record = t[""]                                              # the module itself
        >>> record.weights.shape, record.query.shape, record.output.shape
        (torch.Size([2, 4, 5, 5]), torch.Size([2, 4, 5, 4]), torch.Size([2, 5, 16]))
        >>> record.kind
        'encoder'
    """

    name: str
    call: int
    layer: int | None
    self_attention: bool
    causal: bool
    num_heads: int
    head_dim: int
    heads: Tensor
    scale: float
    query_positions: Tensor
    key_positions: Tensor
    query: Tensor | None = None
    key: Tensor | None = None
    value: Tensor | None = None
    scores: Tensor | None = None
    scaled_scores: Tensor | None = None
    mask: Tensor | None = None
    bias: Tensor | None = None
    weights: Tensor | None = None
    head_outputs: Tensor | None = None
    concat: Tensor | None = None
    output: Tensor | None = None

    @property
    def kind(self) -> str:
        """``"cross"`` (cross-attention), ``"decoder"`` (causal self-attention) or ``"encoder"``
        (bidirectional self-attention)."""
        if not self.self_attention:
            return "cross"
        return "decoder" if self.causal else "encoder"

    def fields(self) -> list[str]:
        """The names of the tensor fields this record holds (those that are not ``None``)."""
        return [name for name in (*RECORD_FIELDS, "bias") if getattr(self, name) is not None]

    def logits(self) -> Tensor:
        """The softmax's input: ``scaled_scores`` (+ ``bias``), ``-inf`` where masked.

        Shape:
            ``(B, H, T, S)``
        """
        if self.scaled_scores is None or self.mask is None:
            raise ValueError(f"record {self.name!r} holds no scaled_scores and mask: trace them "
                             f"with fields including 'scaled_scores' and 'mask'")
        logits = self.scaled_scores if self.bias is None else self.scaled_scores + self.bias
        return logits.masked_fill(~self.mask, float("-inf"))            # (B, H, T, S)

    def to(self, device: torch.device | str) -> AttentionRecord:
        """A copy with every tensor on ``device``."""
        changes = {field.name: value.to(device) for field in dataclasses.fields(self)
                   if isinstance(value := getattr(self, field.name), Tensor)}
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{name}={tuple(getattr(self, name).shape)}" for name in self.fields())
        return (f"AttentionRecord(name={self.name!r}, call={self.call}, kind={self.kind!r}, "
                f"heads={self.heads.tolist()}, {shapes})")


def stitch(records: Sequence[AttentionRecord]) -> AttentionRecord:
    """Join the records of several calls of one module (decoding steps) into one record.

    Query rows are concatenated in call order; key columns are aligned by absolute key position,
    so that step ``t``'s weights sit in the row and columns a full forward pass would give them.
    Keys a step never saw (later positions) get weight 0, ``mask`` ``False`` and NaN scores.
    ``key``/``value`` are those of the call with the most keys (the last one, with a cache).

    Args:
        records: calls of the same module, with the same batch size and heads.

    Shape:
        step ``i`` with ``T_i`` rows and ``S_i`` keys → ``(B, H, ΣT_i, S_total)``, ``S_total`` =
        the largest key position + 1.

    Returns:
        An :class:`AttentionRecord` whose ``call`` is the first record's.

    Example:
        >>> import torch, qkv
        >>> from qkv.trace import trace
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=16,
        ...     num_heads=2, num_layers=1, d_ff=32, dropout=0.0)).eval()
        >>> cache = qkv.KVCache()
        >>> with trace(model) as t:
        ...     for step in range(3):
        ...         _ = model(torch.tensor([[5 + step]]), cache=cache)
        >>> [tuple(r.weights.shape) for r in t.records("layers.0.self_attention")]
        [(1, 2, 1, 1), (1, 2, 1, 2), (1, 2, 1, 3)]
        >>> stitch(t.records("layers.0.self_attention")).weights.shape
        torch.Size([1, 2, 3, 3])
    """
    if not records:
        raise ValueError("stitch needs at least one record, got none")
    first = records[0]
    if len(records) == 1:
        return first
    for record in records[1:]:
        if record.name != first.name or not torch.equal(record.heads, first.heads):
            raise ValueError(
                f"stitch joins calls of one module with the same heads: got {first.name!r} heads "
                f"{first.heads.tolist()} and {record.name!r} heads {record.heads.tolist()}")
    widest = max(records, key=lambda record: int(record.key_positions.max()) + 1
                 if record.key_positions.numel() else 0)
    S = int(widest.key_positions.max()) + 1 if widest.key_positions.numel() else 0
    changes: dict[str, object] = {
        "query_positions": torch.cat([r.query_positions for r in records]),      # (ΣT,)
        "key_positions": torch.arange(S, device=first.key_positions.device),     # (S_total,)
        "key": widest.key, "value": widest.value,
    }
    fill = {"scores": float("nan"), "scaled_scores": float("nan"), "mask": False, "bias": 0.0,
            "weights": 0.0}
    for name, dim in _ROW_DIM.items():
        parts = [getattr(r, name) for r in records]
        if any(part is None for part in parts):
            changes[name] = None
            continue
        if name in fill:
            parts = [_spread_keys(part, r.key_positions, S, fill[name])
                     for part, r in zip(parts, records)]
            parts = _common_leading(parts)
        changes[name] = torch.cat(parts, dim=dim)
    return dataclasses.replace(first, **changes)


def _spread_keys(x: Tensor, key_positions: Tensor, S: int, fill: object) -> Tensor:
    """``x (…, T, S_i)`` → ``(…, T, S)``: column ``j`` moved to ``key_positions[j]``."""
    spread = torch.full((*x.shape[:-1], S), fill, dtype=x.dtype, device=x.device)
    spread[..., key_positions.to(x.device)] = x
    return spread


def _common_leading(parts: list[Tensor]) -> list[Tensor]:
    """Expand broadcast dims (B or 1, H or 1) so that the parts concatenate along T."""
    B = max(part.shape[0] for part in parts)
    H = max(part.shape[1] for part in parts)
    return [part.expand(B, H, *part.shape[2:]) for part in parts]
