"""What a trace records: which attention modules, layers, heads, query rows and fields.

:class:`Selection` validates the choices of :func:`qkv.trace` once, then answers two questions:
which modules of a model to record (:meth:`Selection.select`), and which heads and query rows of
a call to keep (:meth:`Selection.head_index`, :meth:`Selection.row_index`).
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

import torch
from torch import Tensor, nn

from qkv.attention.multi_head import MultiHeadAttention
from qkv.trace.record import RECORD_FIELDS

__all__ = ["Selection", "layer_of"]

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)(?:\.|$)")


def layer_of(name: str) -> int | None:
    """The layer index in a dotted module name: ``"decoder.layers.2.cross_attention"`` → 2.

    Example:
        >>> layer_of("decoder.layers.2.cross_attention"), layer_of("attention")
        (2, None)
    """
    found = _LAYER.findall(name)
    return int(found[-1]) if found else None


@dataclass(frozen=True)
class Selection:
    """The choices of a trace; ``None`` everywhere means "everything".

    Args:
        modules: module names or glob patterns (``"decoder.*"``, ``"*.cross_attention"``).
        layers: layer indices (the ``N`` of ``layers.N`` in a name).
        heads: head indices.
        queries: query positions (indices in the query sequence; with a KV cache, absolute).
        fields: the record fields to keep, out of :data:`~qkv.trace.record.RECORD_FIELDS`.

    Example:
        >>> import qkv
        >>> model = qkv.EncoderModel(qkv.EncoderModelConfig(vocab_size=10, d_model=16,
        ...                                                 num_heads=2, num_layers=3, d_ff=32))
        >>> [name for name, _ in Selection.build(layers=[0, 2]).select(model)]
        ['layers.0.self_attention', 'layers.2.self_attention']
    """

    modules: tuple[str, ...] | None = None
    layers: frozenset[int] | None = None
    heads: tuple[int, ...] | None = None
    queries: frozenset[int] | None = None
    fields: frozenset[str] = frozenset(RECORD_FIELDS)

    @classmethod
    def build(cls, modules=None, *, layers=None, heads=None, queries=None,
              fields=None) -> Selection:
        """A selection from user arguments, checked: a name or a list for ``modules``, an int
        or a list of ints for ``layers``, ``heads`` and ``queries``, a name or a list for
        ``fields``."""
        if isinstance(modules, str):
            modules = (modules,)
        if modules is not None:
            if not isinstance(modules, Iterable):
                raise TypeError(f"modules must be names or glob patterns (str) or a list of them, "
                                f"got {type(modules).__name__}")
            modules = tuple(modules)
            for pattern in modules:
                if not isinstance(pattern, str):
                    raise TypeError(f"modules must be names or glob patterns (str), got "
                                    f"{type(pattern).__name__}")
        if isinstance(fields, str):
            fields = (fields,)
        if fields is None:
            fields = RECORD_FIELDS
        if not isinstance(fields, Iterable):
            raise TypeError(f"fields must be a field name (str) or a list of them, got "
                            f"{type(fields).__name__}")
        fields = frozenset(fields)
        unknown = sorted(field for field in fields if field not in RECORD_FIELDS)
        if unknown:
            raise ValueError(f"fields must be among {', '.join(RECORD_FIELDS)}; got unknown "
                             f"{', '.join(map(repr, unknown))}")
        heads, queries = _indices("heads", heads), _indices("queries", queries)
        for name, chosen in (("heads", heads), ("queries", queries)):
            if chosen == []:                    # would keep nothing: a slip, not a selection
                raise ValueError(f"{name} must name at least one index (None: all of them), "
                                 f"got none")
        return cls(
            modules=modules,
            layers=None if layers is None else frozenset(_indices("layers", layers)),
            heads=None if heads is None else tuple(sorted(set(heads))),
            queries=None if queries is None else frozenset(queries),
            fields=fields,
        )

    def modules_of(self, model: nn.Module) -> list[tuple[str, MultiHeadAttention]]:
        """Every attention module of ``model`` with its dotted name, selected or not."""
        return [(name, module) for name, module in model.named_modules()
                if isinstance(module, MultiHeadAttention)]

    def select(self, model: nn.Module) -> list[tuple[str, MultiHeadAttention]]:
        """The selected attention modules of ``model`` with their dotted names, in model order.

        Raises:
            ValueError: ``model`` has no attention module, a pattern matches none, nothing is
                selected, or a head index is out of range for a selected module.
        """
        available = self.modules_of(model)
        if not available:
            raise ValueError(f"{type(model).__name__} contains no qkv.MultiHeadAttention to trace")
        names = [name for name, _ in available]
        for pattern in self.modules or ():
            if not any(fnmatchcase(name, pattern) for name in names):
                raise ValueError(f"modules: {pattern!r} matches no attention module; the "
                                 f"attention modules are {', '.join(map(repr, names))}")
        chosen = [(name, module) for name, module in available
                  if (self.modules is None or any(fnmatchcase(name, p) for p in self.modules))
                  and (self.layers is None or layer_of(name) in self.layers)]
        if not chosen:
            raise ValueError(f"the selection (modules={self.modules}, layers="
                             f"{None if self.layers is None else sorted(self.layers)}) matches no "
                             f"attention module; the attention modules are "
                             f"{', '.join(map(repr, names))}")
        for name, module in chosen:
            if self.heads is not None and self.heads[-1] >= module.num_heads:
                raise ValueError(f"heads must be below num_heads = {module.num_heads} of "
                                 f"{name!r}, got {list(self.heads)}")
        return chosen

    def head_index(self, num_heads: int, device: torch.device) -> Tensor:
        """``(H,)``: the heads to keep, as indices."""
        heads = range(num_heads) if self.heads is None else self.heads
        return torch.tensor(list(heads), dtype=torch.long, device=device)

    def row_index(self, query_positions: Tensor) -> Tensor | None:
        """``(T',)``: the rows of ``query_positions (T,)`` to keep; ``None`` for all of them."""
        if self.queries is None:
            return None
        keep = [row for row, position in enumerate(query_positions.tolist())
                if position in self.queries]
        return torch.tensor(keep, dtype=torch.long, device=query_positions.device)


def _indices(name: str, value: object) -> list[int] | None:
    """``None``, an int, or an iterable of ints ≥ 0 (a list, a range) → a list of ints."""
    if value is None:
        return None
    values = [value] if isinstance(value, numbers.Integral) else value
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be an int or a list of ints, got {type(value).__name__}")
    values = list(values)
    for item in values:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral):
            raise TypeError(f"{name} must hold ints, got {type(item).__name__} ({item!r})")
        if item < 0:
            raise ValueError(f"{name} must be ≥ 0, got {item}")
    return [int(item) for item in values]
