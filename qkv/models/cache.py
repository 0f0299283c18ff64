"""The key/value cache of a whole decoder, for step-by-step decoding.

Feeding a decoder (or language model) one token at a time with a :class:`KVCache` gives the same
logits as running it on the whole prefix, at the cost of one position per step: every layer's
self-attention appends the new keys and values to its cache, and cross-attention computes the keys
and values of the encoder output once, on the first step.

    >>> import torch, qkv
    >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=16, num_heads=2,
    ...                                                   num_layers=2, d_ff=32)).eval()
    >>> ids = torch.tensor([[5, 6, 7, 8]])
    >>> cache = qkv.KVCache()
    >>> steps = [model(ids[:, t:t + 1], cache=cache) for t in range(4)]     # (B, 1, V) each
    >>> torch.allclose(torch.cat(steps, dim=1), model(ids), atol=1e-5)
    True
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import Tensor

from qkv.attention.cache import AttentionCache

__all__ = ["KVCache"]


class KVCache:
    """Per layer, the self-attention and cross-attention caches; and which cached keys are padding.

    Create it empty and pass it to every call of the same sequence batch; the model fills it.

    Args:
        capacity: positions to reserve in every layer's self-attention cache on the first call
            (e.g. prompt + new tokens), so that no step has to grow them; default: grown as
            needed (by doubling).

    Attributes:
        layers: one ``(self_attention, cross_attention)`` pair of
            :class:`~qkv.attention.cache.AttentionCache` per decoder layer, made on first use.
        mask: ``(B, S)``, ``True`` where a cached position holds a real token (not padding);
            ``None`` for a model without a pad id.
        length: S, the number of positions seen so far.
    """

    def __init__(self, *, capacity: int | None = None) -> None:
        self.capacity = capacity
        self.layers: list[tuple[AttentionCache, AttentionCache]] = []
        self.mask: Tensor | None = None
        self.length = 0

    def layer(self, index: int) -> tuple[AttentionCache, AttentionCache]:
        """The caches of decoder layer ``index``."""
        while len(self.layers) <= index:
            self.layers.append((AttentionCache(capacity=self.capacity),
                                AttentionCache(static=True)))
        return self.layers[index]

    def extend(self, valid: Tensor | None, length: int) -> Tensor | None:
        """Record ``length`` new positions, ``valid (B, T)`` marking the real tokens among them.

        Returns the mask of all positions so far, ``(B, S)``, or ``None`` without padding.
        """
        self.length += length
        if valid is not None:
            self.mask = valid if self.mask is None else torch.cat([self.mask, valid], dim=1)
        return self.mask

    @property
    def batch_size(self) -> int | None:
        """B of the cached rows, ``None`` while the cache is empty."""
        for self_cache, _ in self.layers:
            if self_cache.key is not None:
                return self_cache.key.shape[0]
        return None if self.mask is None else self.mask.shape[0]

    @contextmanager
    def step(self, batch_size: int) -> Iterator[None]:
        """One model call: checks its batch size, and undoes every change if the call fails, so
        that a cache is never left half-updated (some layers a position ahead of others)."""
        if self.batch_size not in (None, batch_size):
            raise ValueError(
                f"the cache holds {self.batch_size} sequences but this call has batch size "
                f"{batch_size}; use a new KVCache for a new batch (or reorder() this one)"
            )
        saved = (self.length, self.mask,
                 [(s.snapshot(), c.snapshot()) for s, c in self.layers])
        try:
            yield
        except BaseException:
            self.length, self.mask, states = saved
            del self.layers[len(states):]
            for (self_cache, cross_cache), (own, cross) in zip(self.layers, states):
                self_cache.restore(own)
                cross_cache.restore(cross)
            raise

    def reorder(self, indices: Tensor) -> None:
        """Keep batch rows ``indices`` (in that order) in every cache: a beam search's survivors.

        Shape:
            indices: ``(B',)``, integer; the cache then holds ``B'`` rows.
        """
        for self_cache, cross_cache in self.layers:
            self_cache.reorder(indices)
            cross_cache.reorder(indices)
        if self.mask is not None:
            self.mask = self.mask.index_select(0, indices)

    def __repr__(self) -> str:
        return f"KVCache(layers={len(self.layers)}, length={self.length})"


def next_positions(ids: Tensor, cache: KVCache | None) -> Tensor:
    """The positions of ``ids``, the tokens after the cached ones: ``(B, T)`` → ``(T,)``."""
    start = 0 if cache is None else cache.length
    return torch.arange(start, start + ids.shape[1], device=ids.device)


def cached_length(cache: KVCache | None) -> int:
    """The positions ``cache`` holds (0 without one); a TypeError for anything but a KVCache."""
    if cache is None:
        return 0
    if not isinstance(cache, KVCache):
        raise TypeError(f"cache must be a qkv.KVCache or None, got {type(cache).__name__}")
    return cache.length


def cache_step(cache: KVCache | None, batch_size: int):
    """``cache.step(batch_size)``, or a context that does nothing without a cache."""
    cached_length(cache)                                                # checks its type
    return nullcontext() if cache is None else cache.step(batch_size)


def self_attention_mask(ids: Tensor, pad_id: int | None, cache: KVCache | None) -> Tensor | None:
    """Which keys the self-attention of ``ids`` may see (the non-padding ones, cached included);
    records ``ids``' positions in ``cache``.

    Shape:
        ``ids (B, T)`` → ``(B, 1, 1, S)``, ``S`` = cached + ``T``; ``None`` without ``pad_id``
    """
    valid = None if pad_id is None else ids != pad_id                   # (B, T)
    if cache is not None:
        valid = cache.extend(valid, ids.shape[1])                       # (B, S)
    return None if valid is None else valid[:, None, None, :]           # (B, 1, 1, S)
