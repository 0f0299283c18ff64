"""``qkv.trace``: record what every attention module of a model computes, while it runs.

Inside ``with qkv.trace(model) as t:``, each selected :class:`~qkv.MultiHeadAttention` computes
on the math path (:func:`~qkv.attention.functional.attention_intermediates`) and hands every step
to the trace, which keeps detached copies as :class:`~qkv.trace.record.AttentionRecord`. Outside
it — and for modules the trace did not select — attention takes the fused path as always: a
module checks one attribute (``recorder is None``) per forward, nothing more.

Several calls of one module (decoding steps, repeated forwards) give several records:
``t[name]`` is the last one, ``t[name, i]`` and ``t.records(name)[i]`` the ``i``-th, and
``t.stitch(name)`` joins them into one record aligned by absolute key positions.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from qkv.attention.multi_head import AttentionCall, MultiHeadAttention
from qkv.trace.record import AttentionRecord, stitch
from qkv.trace.selection import Selection, layer_of

__all__ = ["trace", "Trace"]


def trace(
    model: nn.Module,
    modules: str | Sequence[str] | None = None,
    *,
    layers: int | Sequence[int] | None = None,
    heads: int | Sequence[int] | None = None,
    queries: int | Sequence[int] | None = None,
    fields: str | Sequence[str] | None = None,
    device: torch.device | str | None = None,
) -> Trace:
    """Record the attention of ``model`` while it runs: ``with qkv.trace(model) as t: model(...)``.

    Args:
        model: any module containing :class:`~qkv.MultiHeadAttention` (a qkv model, a stack, a
            layer, a converted ``torch.nn`` model), or one attention module (recorded as ``""``).
        modules: dotted names or glob patterns of the attention modules to record, e.g.
            ``"decoder.layers.2.cross_attention"`` or ``"*.self_attention"``; default all.
        layers: record only modules whose name has ``layers.N`` with ``N`` among these.
        heads: keep only these heads in the per-head fields.
        queries: keep only the query rows at these positions (indices in the query sequence;
            with a KV cache, absolute positions). A call with none of them is not recorded.
        fields: keep only these fields (of :data:`~qkv.trace.record.RECORD_FIELDS`); positions
            and metadata are always kept. E.g. ``fields="weights"`` for a long input.
        device: where to keep the records (``"cpu"`` to free accelerator memory); default the
            model's device.

    Returns:
        A :class:`Trace`, to use as a context manager. Recording starts on ``__enter__``.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, a selection or ``device`` has the wrong
            type.
        ValueError: no attention module in ``model``, a selection that matches none, a head
            index out of range, an empty list of heads or queries, an unknown field or device.

    Example:
        >>> import torch, qkv
        >>> from qkv.trace import trace
        >>> config = qkv.TransformerConfig(vocab_size=30, d_model=16, num_heads=2, num_layers=2,
        ...                                d_ff=32, dropout=0.0)
        >>> model = qkv.Transformer(config).eval()
        >>> src, tgt = torch.tensor([[4, 5, 6, 0]]), torch.tensor([[1, 7, 8]])
        >>> with trace(model) as t:
        ...     logits = model(src, tgt)
        >>> t.names()[:3]
        ['encoder.layers.0.self_attention', 'encoder.layers.1.self_attention', \
'decoder.layers.0.self_attention']
        >>> t["decoder.layers.1.cross_attention"].weights.shape            # (B, H, T, S)
        torch.Size([1, 2, 3, 4])
        >>> t["decoder.layers.1.cross_attention"].weights[0, 0, :, 3]       # source padding
        tensor([0., 0., 0.])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    selection = Selection.build(modules, layers=layers, heads=heads, queries=queries,
                                fields=fields)
    return Trace(model, selection, device=device)


class Trace:
    """The records of a :func:`trace`, by module name; also the context manager that makes them.

    Access:
        - ``t.names()``: the names of the modules recorded so far, in model order.
        - ``t[name]``: the last record of that module (the only one after a plain forward).
        - ``t[name, i]`` or ``t.records(name)[i]``: the ``i``-th recorded call (decoding step).
        - ``t.stitch(name)``: all calls joined into one record, aligned by absolute positions.
        - ``name in t``, ``len(t)`` (number of modules recorded), ``iter(t)`` (their names).

    The records stay available after the ``with`` block; the modules are back on the fused path.
    """

    def __init__(self, model: nn.Module, selection: Selection, *,
                 device: torch.device | str | None = None) -> None:
        self.model = model
        self.selection = selection
        self.device = None if device is None else _device(device)
        self._modules = selection.select(model)
        self._order = {name: index for index, (name, _) in enumerate(self._modules)}
        self._records: dict[str, list[AttentionRecord]] = {}
        self._calls: dict[str, int] = {}
        self._saved: list[tuple[MultiHeadAttention, object]] | None = None

    def __enter__(self) -> Trace:
        if self._saved is not None:
            raise RuntimeError("this trace is already recording; make a new qkv.trace(...)")
        self._saved = []
        for name, module in self._modules:
            previous = module.__dict__.get("recorder")
            self._saved.append((module, previous))
            module.recorder = functools.partial(self._record, name, previous)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for module, previous in reversed(self._saved or []):
            if previous is None:
                module.__dict__.pop("recorder", None)
            else:
                module.recorder = previous
        self._saved = None

    # Access --------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The names of the modules that have records, in the order of the model's modules."""
        return sorted(self._records, key=self._order.__getitem__)

    def records(self, name: str) -> list[AttentionRecord]:
        """Every record of module ``name``, in call order."""
        if name not in self._records:
            raise KeyError(self._missing(name))
        return list(self._records[name])

    def stitch(self, name: str) -> AttentionRecord:
        """The records of module ``name`` joined into one (:func:`~qkv.trace.record.stitch`):
        decoding steps become the rows of one ``(B, H, T_total, S_total)`` matrix."""
        return stitch(self.records(name))

    def __getitem__(self, key: str | tuple[str, int]) -> AttentionRecord:
        if isinstance(key, tuple):
            name, index = key
            records = self.records(name)
            if not -len(records) <= index < len(records):
                raise IndexError(f"{name!r} has {len(records)} record(s), asked for index {index}")
            return records[index]
        return self.records(key)[-1]

    def __contains__(self, name: object) -> bool:
        return name in self._records

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._records)

    def clear(self) -> None:
        """Drop every record (e.g. between training steps); recording goes on."""
        self._records.clear()
        self._calls.clear()

    def __repr__(self) -> str:
        counts = ", ".join(f"{name!r}: {len(self._records[name])}" for name in self.names())
        return f"Trace({{{counts}}})"

    def _missing(self, name: str) -> str:
        if name in self._order:
            return f"{name!r} was selected but has not been called inside the trace"
        return (f"no records for {name!r}; recorded: {', '.join(map(repr, self.names())) or 'none'}"
                f" (names are those of model.named_modules())")

    # Recording -----------------------------------------------------------------------------

    def _record(self, name: str, previous, call: AttentionCall) -> None:
        """The recorder installed on module ``name``: keep what the selection asks for."""
        if previous is not None:                                        # a trace around this one
            previous(call)
        index = self._calls.get(name, 0)
        self._calls[name] = index + 1
        # Only the outermost trace may keep the call's own scores without a copy: a trace
        # inside it sees the same call after it, and copies.
        record = self._make_record(name, index, call, owner=previous is None)
        if record is not None:
            self._records.setdefault(name, []).append(record)

    def _make_record(self, name: str, index: int, call: AttentionCall, *,
                     owner: bool) -> AttentionRecord | None:
        _, H, T, _ = call.query.shape
        S = call.key.shape[-2]
        device = call.query.device
        query_positions, key_positions = _positions(call, T, S)        # (T,), (S,)
        rows = self.selection.row_index(query_positions)                # (T',) or None
        if rows is not None and rows.numel() == 0:
            return None
        heads = self.selection.head_index(H, device)                    # (H',)
        all_heads = self.selection.heads is None or self.selection.heads == tuple(range(H))
        steps, fields = call.steps, self.selection.fields

        def keep(field: str, tensor: Tensor | None, row_dim: int | None,
                 per_head: bool = True, fresh: bool = False) -> Tensor | None:
            """A detached copy of ``tensor``'s selected heads and rows; no second copy of a
            tensor that is one already (``fresh``: no one else holds it)."""
            if tensor is None or (field not in fields):
                return None
            tensor = tensor.detach()
            if per_head and tensor.shape[1] == H and not all_heads:
                tensor, fresh = tensor.index_select(1, heads), True
            if rows is not None and row_dim is not None:
                tensor, fresh = tensor.index_select(row_dim, rows), True
            target = self.device or tensor.device
            if fresh and tensor.device == target:
                return tensor
            return tensor.to(device=target, copy=True)

        # The scores exist only for the recorder (the weights and outputs also reach the caller).
        unshared = {field: owner and _unshared(getattr(steps, field))
                    for field in ("scores", "scaled_scores")}
        mask = _four_dims(steps.mask, T, S)                             # (B|1, H|1, T, S)
        bias = None if steps.bias is None else _four_dims(steps.bias, T, S)
        if rows is not None:
            query_positions = query_positions.index_select(0, rows)
        return AttentionRecord(
            name=name, call=index, layer=layer_of(name),
            self_attention=call.self_attention, causal=call.causal,
            num_heads=H, head_dim=call.query.shape[-1], heads=heads.to(self.device or device),
            scale=steps.scale,
            query_positions=query_positions.to(self.device or device),
            key_positions=key_positions.to(self.device or device),
            query=keep("query", call.query, 2),                         # (B, H, T, D)
            key=keep("key", call.key, None),                            # (B, H, S, D)
            value=keep("value", call.value, None),                      # (B, H, S, D)
            scores=keep("scores", steps.scores, 2,                      # (B, H, T, S)
                        fresh=unshared["scores"]),
            scaled_scores=keep("scaled_scores", steps.scaled_scores, 2,
                               fresh=unshared["scaled_scores"]),
            mask=keep("mask", mask, 2),                                 # (B|1, H|1, T, S)
            bias=keep("mask", bias, 2),
            weights=keep("weights", steps.weights, 2),                  # (B, H, T, S)
            head_outputs=keep("head_outputs", steps.output, 2),         # (B, H, T, D)
            concat=keep("concat", call.concat, 1, per_head=False),      # (B, T, E)
            output=keep("output", call.output, 1, per_head=False),      # (B, T, E)
        )


def _unshared(tensor: Tensor) -> bool:
    """Whether ``tensor`` can be kept as it is: outside autograd (no graph saved it, so changing
    a record cannot break a backward pass) and the whole of its own memory (not a view of a
    larger tensor, not expanded)."""
    return (not tensor.requires_grad and tensor.is_contiguous()
            and tensor.storage_offset() == 0
            and tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size())


def _device(device: object) -> torch.device:
    """``device`` as a :class:`torch.device`, or an error that names the argument."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a torch.device, a str such as 'cpu', or None, got "
                        f"{type(device).__name__} {device!r}")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device {device!r} is not a device: {error}") from None


def _positions(call: AttentionCall, T: int, S: int) -> tuple[Tensor, Tensor]:
    """Indices in their sequences of the call's queries ``(T,)`` and keys ``(S,)``.

    Self-attention: the queries are the last ``T`` of the ``S`` keys (all of them without a
    cache). Cross-attention: the keys are the encoder positions; the queries follow those the
    cache has served before, traced or not (step-by-step decoding).
    """
    device = call.query.device
    start = S - T if call.self_attention else call.query_start
    query_positions = torch.arange(start, start + T, device=device)    # (T,)
    key_positions = torch.arange(S, device=device)                      # (S,)
    return query_positions, key_positions


def _four_dims(mask: Tensor, T: int, S: int) -> Tensor:
    """A mask broadcastable to ``(B, H, T, S)`` → ``(B|1, H|1, T, S)`` (a view)."""
    while mask.dim() < 4:
        mask = mask.unsqueeze(0)
    return mask.expand(*mask.shape[:2], T, S)
