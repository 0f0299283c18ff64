"""Multi-head attention: h attentions in parallel on learned projections, concatenated.

"Attention Is All You Need", section 3.2.2:

    MultiHead(Q, K, V) = Concat(head_1, …, head_h) W^O,   head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

Each of Q, K and V has one projection of width ``d_model``; its output is split into ``H`` heads of
width ``D = d_model / H`` — ``(B, T, E) → (B, T, H, D) → (B, H, T, D)`` — attention runs on every
head at once, and the heads are merged back ``(B, H, T, D) → (B, T, E)`` before ``W^O``.
Shape letters are those of :mod:`qkv.attention.functional`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from einops import rearrange, repeat
from torch import Tensor, nn

from qkv._checks import (
    broadcasts_to,
    check_floating,
    check_positive_int,
    check_probability,
    check_tensor,
    shape_str,
)
from qkv.attention.cache import AttentionCache
from qkv.attention.functional import (
    AttentionIntermediates,
    attention_intermediates,
    scaled_dot_product_attention,
)

__all__ = ["MultiHeadAttention", "AttentionCall"]


class Rotation(Protocol):
    """What attention needs of a relative position scheme applied to queries and keys (RoPE)."""

    def rotate(self, x: Tensor, positions: Tensor) -> Tensor:
        """``x (B, H, T, D)`` at ``positions`` ``(T,)`` or ``(B, T)`` → rotated, same shape."""
        ...


@dataclass(frozen=True)
class AttentionCall:
    """What one recorded call of a :class:`MultiHeadAttention` computed, given to its recorder.

    The tensors are the live ones (not detached): a recorder copies what it keeps.

    Attributes:
        module: the attention module that was called.
        query: per-head queries ``(B, H, T, D)``, after the rotary rotation if any.
        key: per-head keys ``(B, H, S, D)``: after rotation, with the cached keys of earlier calls,
            and repeated to ``H`` heads under grouped-query attention.
        value: per-head values ``(B, H, S, D)``, likewise.
        steps: the math path's intermediates (:class:`~qkv.attention.functional.
            AttentionIntermediates`): scores ``(B, H, T, S)``, effective mask, weights, and the
            per-head outputs as ``steps.output`` ``(B, H, T, D)``.
        concat: the heads merged, ``Concat(head_1, …, head_h)``, ``(B, T, E)``, before W^O.
        output: the module's output ``(B, T, E)``, after W^O.
        self_attention: whether keys and values came from the query sequence.
        causal: whether the call was causal (queries are the last ``T`` of the ``S`` positions).
        cache: the call's cache, or ``None``.
        query_start: the position of the first query in its sequence (cached calls before this
            one counted), so the queries are ``query_start … query_start + T - 1``.
    """

    module: MultiHeadAttention
    query: Tensor
    key: Tensor
    value: Tensor
    steps: AttentionIntermediates
    concat: Tensor
    output: Tensor
    self_attention: bool
    causal: bool
    cache: AttentionCache | None
    query_start: int


class MultiHeadAttention(nn.Module):
    r"""Multi-head attention over batch-first tensors.

    Self-attention when only ``query`` is given; cross-attention (queries from one sequence, keys
    and values from another) when ``key``/``value`` are given too. With ``num_kv_heads < num_heads``
    several query heads share one key/value head: grouped-query attention, or multi-query
    attention when ``num_kv_heads == 1``.

    Args:
        d_model: E, width of the queries and of the output.
        num_heads: H, number of heads; must divide ``d_model``. Head dim ``D = d_model // H``.
        kv_dim: width of the key and value inputs; default ``d_model``.
        value_dim: width of the value input when it differs from the key's; default ``kv_dim``.
        num_kv_heads: number of key/value heads; must divide ``num_heads``; default ``num_heads``.
        bias: whether the four projections have biases.
        dropout: dropout on the attention weights, active in training mode only.
        rotary: a position scheme that rotates queries and keys by their positions after the
            projections (:class:`qkv.models.positions.RotaryPositions`); self-attention only.

    Attributes:
        query_proj, key_proj, value_proj: W^Q ``(E → E)``, W^K ``(kv_dim → Hkv·D)``,
            W^V ``(value_dim → Hkv·D)``.
        output_proj: W^O ``(E → E)``.
        recorder: ``None`` (the default, set on the class): the module computes on the fused
            path. A callable set on an instance (by :func:`qkv.trace`) makes the module compute on
            the math path and call it with an :class:`AttentionCall` after every forward.

    Example:
        >>> import torch, qkv
        >>> attention = qkv.MultiHeadAttention(d_model=16, num_heads=4)
        >>> x = torch.randn(2, 5, 16)                                   # (B, T, E)
        >>> output, weights = attention(x, need_weights=True)
        >>> output.shape, weights.shape                                 # (B, T, E), (B, H, T, S)
        (torch.Size([2, 5, 16]), torch.Size([2, 4, 5, 5]))
    """

    recorder: Callable[[AttentionCall], None] | None = None

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        *,
        kv_dim: int | None = None,
        value_dim: int | None = None,
        num_kv_heads: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        rotary: Rotation | None = None,
    ) -> None:
        super().__init__()
        d_model = check_positive_int("d_model", d_model)
        num_heads = check_positive_int("num_heads", num_heads)
        if d_model % num_heads:
            raise ValueError(
                f"d_model ({d_model}) must be divisible by num_heads ({num_heads}) so that every "
                f"head gets d_model / num_heads dims"
            )
        kv_dim = d_model if kv_dim is None else check_positive_int("kv_dim", kv_dim)
        value_dim = kv_dim if value_dim is None else check_positive_int("value_dim", value_dim)
        num_kv_heads = (
            num_heads if num_kv_heads is None else check_positive_int("num_kv_heads", num_kv_heads)
        )
        if num_heads % num_kv_heads:
            raise ValueError(
                f"num_kv_heads ({num_kv_heads}) must divide num_heads ({num_heads}) so that each "
                f"key/value head serves the same number of query heads"
            )
        self.d_model = d_model
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = d_model // num_heads
        self.kv_dim = kv_dim
        self.value_dim = value_dim
        self.dropout = check_probability("dropout", dropout)
        self.rotary = rotary

        kv_width = num_kv_heads * self.head_dim
        self.query_proj = nn.Linear(d_model, d_model, bias=bias)       # W^Q, all heads
        self.key_proj = nn.Linear(kv_dim, kv_width, bias=bias)          # W^K, all kv heads
        self.value_proj = nn.Linear(value_dim, kv_width, bias=bias)     # W^V, all kv heads
        self.output_proj = nn.Linear(d_model, d_model, bias=bias)       # W^O
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights and zero biases, each projection on its own.

        (``torch.nn.MultiheadAttention`` applies Xavier to its fused ``(3E, E)`` in-projection and
        the default ``Linear`` init to W^O, so its initial weights are spread a little less.)
        """
        for projection in (self.query_proj, self.key_proj, self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(projection.weight)
            if projection.bias is not None:
                nn.init.zeros_(projection.bias)

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        *,
        mask: Tensor | None = None,
        causal: bool = False,
        need_weights: bool = False,
        positions: Tensor | None = None,
        cache: AttentionCache | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` to ``key``/``value`` (to ``query`` itself if they are omitted).

        Args:
            query: the sequence that asks.
            key: the sequence that is looked at; default ``query`` (self-attention).
            value: what is read out; default ``key``.
            mask: boolean (``True`` = may attend) or floating additive mask. A 2-D ``(T, S)`` or
                4-D mask broadcasts to ``(B, H, T, S)`` as is; a 3-D mask is read as
                ``(B, T, S)``, shared by all heads. Helpers: :mod:`qkv.attention.masks`.
            causal: no query attends to a later position (combined with ``mask``).
            need_weights: also return the per-head attention weights (takes the math path).
            positions: the queries' (and, in self-attention, the keys') positions, used by a
                ``rotary`` scheme only; default ``cached, …, cached + T - 1``.
            cache: keys and values of earlier calls (step-by-step decoding). A growing cache
                (self-attention) appends this call's keys and values and attends to all of them
                — with ``causal``, the queries are the last ``T`` of the ``S`` positions. A static
                cache (cross-attention) projects ``key``/``value`` on the first call only.

        Shape:
            - query: ``(B, T, E)``
            - key: ``(B, S, kv_dim)``
            - value: ``(B, S, value_dim)``
            - positions: ``(T,)`` or ``(B, T)``
            - output: ``(B, T, E)``
            - weights: ``(B, H, T, S)``, per head, never averaged

        Returns:
            ``(output, weights)``; ``weights`` is ``None`` unless ``need_weights``. NaN and
            ``±inf`` in the inputs propagate as in :func:`~qkv.scaled_dot_product_attention`.

        Raises:
            TypeError: a non-floating input, an input whose dtype is not the parameters' (outside
                autocast), a ``cache`` that is not an :class:`AttentionCache`, an integer mask.
            ValueError: an input of the wrong shape or on another device than the parameters,
                a mask that does not broadcast to ``(B, H, T, S)``, a cache of another batch size
                or of the wrong kind (growing for self-attention, static for cross-attention).

        Example:
            >>> import torch, qkv
            >>> attention = qkv.MultiHeadAttention(d_model=16, num_heads=4, kv_dim=6)
            >>> target, memory = torch.randn(2, 3, 16), torch.randn(2, 7, 6)
            >>> padding = qkv.length_mask(torch.tensor([7, 5]))         # (B, 1, 1, S)
            >>> output, weights = attention(target, memory, mask=padding, need_weights=True)
            >>> output.shape, weights.shape
            (torch.Size([2, 3, 16]), torch.Size([2, 4, 3, 7]))
        """
        self_attention = key is None
        key = query if key is None else key
        value = key if value is None else value
        self._check_inputs(query, key, value)
        if self.rotary is not None and not self_attention:
            raise ValueError("rotary positions apply to self-attention only: pass no key/value")
        if cache is not None and not isinstance(cache, AttentionCache):
            raise TypeError(f"cache must be an AttentionCache or None, got {type(cache).__name__}")
        if cache is not None and cache.key is not None and cache.key.shape[0] != query.shape[0]:
            raise ValueError(
                f"the cache holds {cache.key.shape[0]} sequences but query has batch size "
                f"{query.shape[0]}; use a new AttentionCache for a new batch (or reorder() it)"
            )
        if cache is not None and cache.static == self_attention:
            raise ValueError(
                "self-attention needs a growing cache, AttentionCache(), and cross-attention a "
                f"static one, AttentionCache(static=True); got static={cache.static} for "
                f"{'self' if self_attention else 'cross'}-attention"
            )

        q = rearrange(self.query_proj(query), "b t (h d) -> b h t d", h=self.num_heads)
        if cache is not None and cache.static and cache.filled:         # cross-attention, later
            k, v = cache.key, cache.value                               # (B, Hkv, S, D)
        else:
            k = rearrange(self.key_proj(key), "b s (h d) -> b h s d", h=self.num_kv_heads)
            v = rearrange(self.value_proj(value), "b s (h d) -> b h s d", h=self.num_kv_heads)
            if self.rotary is not None:
                positions = self._positions(positions, query, cache)
                q = self.rotary.rotate(q, positions)                    # (B, H, T, D)
                k = self.rotary.rotate(k, positions)                    # (B, Hkv, T, D)
            if cache is not None:
                k, v = cache.update(k, v)                               # (B, Hkv, S, D)
        mask = self._check_mask(mask, query.shape[0], query.shape[1], k.shape[-2])
        group = self.num_heads // self.num_kv_heads
        if group > 1:  # grouped-query: query head j reads key/value head j // group
            k = repeat(k, "b h s d -> b (h g) s d", g=group)             # (B, H, S, D)
            v = repeat(v, "b h s d -> b (h g) s d", g=group)             # (B, H, S, D)

        query_start = 0
        if cache is not None:                           # counted whether traced or not
            query_start, cache.queries = cache.queries, cache.queries + query.shape[1]
        dropout_p = self.dropout if self.training else 0.0
        if self.recorder is not None:                                   # traced: the math path
            return self._recorded(q, k, v, mask, causal, dropout_p, need_weights,
                                  self_attention, cache, query_start)
        heads, weights = scaled_dot_product_attention(
            q, k, v, mask,                                              # (B, H, T|S, D)
            causal=causal,
            dropout_p=dropout_p,
            need_weights=need_weights,
        )                                                               # (B, H, T, D)
        merged = rearrange(heads, "b h t d -> b t (h d)")               # (B, T, E)
        return self.output_proj(merged), weights

    def _recorded(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None,
        causal: bool,
        dropout_p: float,
        need_weights: bool,
        self_attention: bool,
        cache: AttentionCache | None,
        query_start: int,
    ) -> tuple[Tensor, Tensor | None]:
        """The attention on the math path, every step handed to :attr:`recorder`."""
        steps = attention_intermediates(q, k, v, mask, causal=causal,
                                        dropout_p=dropout_p)            # (B, H, T, ·)
        concat = rearrange(steps.output, "b h t d -> b t (h d)")        # (B, T, E)
        output = self.output_proj(concat)                               # (B, T, E)
        self.recorder(AttentionCall(
            module=self, query=q, key=k, value=v, steps=steps, concat=concat, output=output,
            self_attention=self_attention, causal=causal, cache=cache, query_start=query_start))
        return output, steps.weights if need_weights else None

    @staticmethod
    def _positions(positions: Tensor | None, query: Tensor, cache: AttentionCache | None) -> Tensor:
        """The query positions: given ones, or the ``T`` positions after the cached ones."""
        T = query.shape[1]
        if positions is None:
            start = 0 if cache is None else cache.length
            return torch.arange(start, start + T, device=query.device)  # (T,)
        check_tensor("positions", positions)
        if positions.shape not in ((T,), (query.shape[0], T)):
            raise ValueError(
                f"positions must have shape (T,) = ({T},) or (B, T) = ({query.shape[0]}, {T}), "
                f"got {shape_str(positions.shape)}"
            )
        return positions

    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor) -> None:
        expected = (("query", query, self.d_model, "(B, T, E)", self.query_proj),
                    ("key", key, self.kv_dim, "(B, S, kv_dim)", self.key_proj),
                    ("value", value, self.value_dim, "(B, S, value_dim)", self.value_proj))
        for name, tensor, width, layout, projection in expected:
            check_floating(name, tensor)
            if tensor.dim() != 3 or tensor.shape[-1] != width:
                raise ValueError(
                    f"{name} must have shape {layout} with last dim {width}, "
                    f"got {shape_str(tensor.shape)}"
                )
            weight = getattr(projection, "weight", None)
            if not isinstance(weight, Tensor) or not weight.is_floating_point():
                continue                                                # e.g. a quantized Linear
            if tensor.device != weight.device:
                raise ValueError(f"{name} is on {tensor.device} but the module's parameters are "
                                 f"on {weight.device}; move them to the same device")
            if tensor.dtype != weight.dtype and not torch.is_autocast_enabled(tensor.device.type):
                raise TypeError(f"{name} must have the dtype of the module's parameters "
                                f"({weight.dtype}), got {tensor.dtype}; convert the input or "
                                f"the module (module.to({tensor.dtype}))")
        if not query.shape[0] == key.shape[0] == value.shape[0]:
            raise ValueError(
                f"query, key and value must have the same batch size B: got query "
                f"{shape_str(query.shape)}, key {shape_str(key.shape)}, value {shape_str(value.shape)}"
            )
        if key.shape[1] != value.shape[1]:
            raise ValueError(
                f"key and value must have the same number of positions S: got key "
                f"{shape_str(key.shape)}, value {shape_str(value.shape)}"
            )

    def _check_mask(self, mask: Tensor | None, B: int, T: int, S: int) -> Tensor | None:
        """The mask, shaped to broadcast to ``(B, H, T, S)``; a 3-D mask is ``(B, T, S)``."""
        if mask is None:
            return None
        check_tensor("mask", mask)
        shaped = mask[:, None] if mask.dim() == 3 else mask             # (B, 1, T, S)
        expected = (B, self.num_heads, T, S)
        if broadcasts_to(shaped.shape, expected):
            return shaped
        hint = ""
        if mask.dim() == 3 and mask.shape[0] == B * self.num_heads:
            hint = (f"; for a PyTorch-style (B·H, T, S) mask use "
                    f"qkv.mask_from_torch(attn_mask=mask, num_heads={self.num_heads})")
        raise ValueError(
            f"mask of shape {shape_str(mask.shape)} does not broadcast to (B, H, T, S) = "
            f"{shape_str(expected)} (a 3-D mask is read as (B, T, S)){hint}"
        )

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, num_heads={self.num_heads}, "
            f"num_kv_heads={self.num_kv_heads}, head_dim={self.head_dim}, dropout={self.dropout}"
        )
