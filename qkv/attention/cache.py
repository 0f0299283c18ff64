"""The key/value cache of one attention module, for step-by-step decoding.

When a decoder produces one token at a time, the keys and values of the tokens before it do not
change: recomputing them every step would make generating ``T`` tokens cost ``O(T²)`` projections.
An :class:`AttentionCache` keeps them, per head, as ``(B, Hkv, S, D)`` tensors:

* a **self-attention** cache *grows*: each call appends the new positions' keys and values;
* a **cross-attention** cache is *static*: the keys and values of the encoder output are computed
  on the first call and reused on every later one.

A growing cache writes the new positions into preallocated storage, in place, instead of
concatenating (which would copy all ``S`` cached positions on every step): the storage grows
by doubling, or holds ``capacity`` positions from the start when the caller knows how many will
come. ``key`` and ``value`` are views of its first ``S`` positions. A write never touches the
positions of an earlier view, so the tensors handed to a recorder stay as they were. While
autograd records (keys that require gradients), it concatenates as before: an in-place write
would change a tensor that the backward pass of an earlier step still needs.

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
        capacity: positions to reserve on the first write (growing cache); more are made room
            for by doubling. Default: what the first write needs, rounded up.

    Attributes:
        key: ``(B, Hkv, S, D)`` or ``None`` before the first call.
        value: ``(B, Hkv, S, D)`` or ``None`` before the first call.
        queries: how many query positions have attended through this cache so far — for a
            cross-attention cache, the target position of the next call's first query.

    Example:
        >>> cache = AttentionCache(capacity=8)
        >>> k = v = torch.zeros(1, 2, 3, 4)                              # (B, Hkv, T, D)
        >>> cache.update(k, v)[0].shape, cache.update(k[:, :, :1], v[:, :, :1])[0].shape
        (torch.Size([1, 2, 3, 4]), torch.Size([1, 2, 4, 4]))
        >>> cache.length, cache.capacity
        (4, 8)
    """

    def __init__(self, *, static: bool = False, capacity: int | None = None) -> None:
        self.static = static
        self.queries = 0
        self.reserve = capacity
        self._key_storage: Tensor | None = None                        # (B, Hkv, C, D)
        self._value_storage: Tensor | None = None                      # (B, Hkv, C, D)
        self._length = 0

    @property
    def key(self) -> Tensor | None:
        """The cached keys ``(B, Hkv, S, D)``, a view of the storage; ``None`` before a call."""
        storage = self._key_storage
        if storage is None or storage.shape[-2] == self._length:
            return storage
        return storage[:, :, :self._length]

    @key.setter
    def key(self, key: Tensor | None) -> None:
        self._key_storage = key
        self._length = 0 if key is None else key.shape[-2]

    @property
    def value(self) -> Tensor | None:
        """The cached values ``(B, Hkv, S, D)``, a view of the storage; ``None`` before a call."""
        storage = self._value_storage
        if storage is None or storage.shape[-2] == self._length:
            return storage
        return storage[:, :, :self._length]

    @value.setter
    def value(self, value: Tensor | None) -> None:
        self._value_storage = value

    @property
    def length(self) -> int:
        """S, the number of cached positions."""
        return self._length if self._key_storage is not None else 0

    @property
    def capacity(self) -> int:
        """Positions the storage holds before it must grow."""
        return 0 if self._key_storage is None else self._key_storage.shape[-2]

    @property
    def filled(self) -> bool:
        """Whether a static cache holds its keys and values already."""
        return self._key_storage is not None

    def update(self, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """Store the new positions' keys and values; return all of them.

        Shape:
            - key, value: ``(B, Hkv, T, D)``, the positions of this call
            - returns: ``(B, Hkv, S, D)`` twice, ``S`` = cached + ``T`` (``T`` for a static cache)
        """
        if self.static or self._key_storage is None and _records_gradients(key, value):
            self.key, self.value = key, value
            return key, value
        if _records_gradients(key, value, self._key_storage, self._value_storage):
            key = torch.cat([self.key, key], dim=-2)                    # (B, Hkv, S, D)
            value = torch.cat([self.value, value], dim=-2)              # (B, Hkv, S, D)
            self.key, self.value = key, value
            return key, value
        start, end = self.length, self.length + key.shape[-2]
        if not self._fits(key, value, end):
            self._grow(key, value, end)
        self._key_storage[:, :, start:end] = key                        # in place: no copy of
        self._value_storage[:, :, start:end] = value                    # the S cached positions
        self._length = end
        return self.key, self.value                                     # (B, Hkv, S, D)

    def _fits(self, key: Tensor, value: Tensor, end: int) -> bool:
        storage = self._key_storage
        return (storage is not None and end <= storage.shape[-2]
                and storage.shape[:2] == key.shape[:2] and storage.shape[-1] == key.shape[-1]
                and self._value_storage.shape[-1] == value.shape[-1]
                and storage.dtype == key.dtype and storage.device == key.device
                and storage.is_contiguous() and self._value_storage.is_contiguous()
                and (torch.is_inference_mode_enabled() or not storage.is_inference()))

    def _grow(self, key: Tensor, value: Tensor, end: int) -> None:
        """New storage for at least ``end`` positions (the reserve, or double), the cache copied."""
        if self._key_storage is None and self.reserve:
            capacity = max(end, self.reserve)
        else:
            capacity = max(end, 2 * self.capacity, 16)
        B, Hkv = key.shape[:2]
        new_key = key.new_empty(B, Hkv, capacity, key.shape[-1])        # (B, Hkv, C, D)
        new_value = value.new_empty(B, Hkv, capacity, value.shape[-1])  # (B, Hkv, C, Dv)
        if self.length:
            new_key[:, :, :self.length] = self.key
            new_value[:, :, :self.length] = self.value
        self._key_storage, self._value_storage = new_key, new_value

    def snapshot(self) -> tuple:
        """The cache's state, for :meth:`restore` after a failed call (later in-place writes go
        past its length, so the snapshot stays valid)."""
        return self._key_storage, self._value_storage, self._length

    def restore(self, snapshot: tuple) -> None:
        """Go back to a :meth:`snapshot`."""
        self._key_storage, self._value_storage, self._length = snapshot

    def reorder(self, indices: Tensor) -> None:
        """Keep batch rows ``indices`` (in that order), e.g. the surviving hypotheses of a beam."""
        if self._key_storage is not None:
            length = self.length
            self._key_storage = self._key_storage.index_select(0, indices)
            self._value_storage = self._value_storage.index_select(0, indices)
            self._length = length

    def __repr__(self) -> str:
        shape = None if self.key is None else tuple(self.key.shape)
        return f"AttentionCache(static={self.static}, key={shape})"


def _records_gradients(*tensors: Tensor | None) -> bool:
    """Whether autograd records through any of ``tensors`` (then nothing is written in place)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
