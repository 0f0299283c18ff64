"""The key/value cache of one attention module, for step-by-step decoding.

When a decoder produces one token at a time, the keys and values of the tokens before it do not
change: recomputing them every step would make generating ``T`` tokens cost ``O(T²)`` projections.
An :class:`AttentionCache` keeps them, per head, as ``(B, Hkv, S, D)`` tensors:

* a **self-attention** cache *grows*: each call appends the new positions' keys and values;
* a **cross-attention** cache is *static*: the keys and values of the encoder output are computed
  on the first call and reused on every later one.

Model-level bookkeeping (one cache per layer, the key padding so far) is
:class:`qkv.models.cache.KVCache`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["AttentionCache"]


class AttentionCache:
    """Keys and values already computed by one attention module.

    Args:
        static: ``False`` for self-attention (each call appends), ``True`` for cross-attention
            (the first call's keys and values are kept and reused).

    Attributes:
        key: ``(B, Hkv, S, D)`` or ``None`` before the first call.
        value: ``(B, Hkv, S, D)`` or ``None`` before the first call.
        queries: how many query positions have attended through this cache so far — for a
            cross-attention cache, the target position of the next call's first query.
    """

    def __init__(self, *, static: bool = False) -> None:
        self.static = static
        self.key: Tensor | None = None
        self.value: Tensor | None = None
        self.queries = 0

    @property
    def length(self) -> int:
        """S, the number of cached positions."""
        return 0 if self.key is None else self.key.shape[-2]

    @property
    def filled(self) -> bool:
        """Whether a static cache holds its keys and values already."""
        return self.key is not None

    def update(self, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """Store the new positions' keys and values; return all of them.

        Shape:
            - key, value: ``(B, Hkv, T, D)``, the positions of this call
            - returns: ``(B, Hkv, S, D)`` twice, ``S`` = cached + ``T`` (``T`` for a static cache)
        """
        if self.key is not None and not self.static:
            key = torch.cat([self.key, key], dim=-2)                    # (B, Hkv, S, D)
            value = torch.cat([self.value, value], dim=-2)              # (B, Hkv, S, D)
        self.key, self.value = key, value
        return key, value

    def reorder(self, indices: Tensor) -> None:
        """Keep batch rows ``indices`` (in that order), e.g. the surviving hypotheses of a beam."""
        if self.key is not None:
            self.key = self.key.index_select(0, indices)
            self.value = self.value.index_select(0, indices)

    def __repr__(self) -> str:
        shape = None if self.key is None else tuple(self.key.shape)
        return f"AttentionCache(static={self.static}, key={shape})"
