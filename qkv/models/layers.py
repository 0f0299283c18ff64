"""Encoder and decoder layers, assembled from attention, a feed-forward network and residuals.

* :class:`EncoderLayer` (section 3.1): self-attention, then the feed-forward network;
* :class:`DecoderLayer`: *masked* self-attention (no position sees a later one), then attention
  over the encoder output (queries from the decoder, keys and values from the encoder), then the
  feed-forward network. Without cross-attention it is the layer of a decoder-only language model.

Each sublayer sits in a residual wrapper (:mod:`qkv.models.residual`) that decides where the
LayerNorm goes. Masks follow qkv's convention (``True`` = may attend) and broadcast to
``(B, H, T, S)``; shape letters are those of :mod:`qkv.attention.functional`.
"""

from __future__ import annotations

from torch import Tensor, nn

from qkv.attention.cache import AttentionCache
from qkv.attention.multi_head import MultiHeadAttention
from qkv.models.config import ModelConfig
from qkv.models.feed_forward import FeedForward
from qkv.models.residual import PostNorm, PreNorm, residual_from_config

__all__ = ["EncoderLayer", "DecoderLayer"]

Residual = PostNorm | PreNorm


class EncoderLayer(nn.Module):
    """Self-attention and a feed-forward network, each wrapped in a residual + LayerNorm.

    Args:
        self_attention: the layer's attention (queries, keys and values all from its input).
        feed_forward: the position-wise feed-forward network.
        self_attention_residual, feed_forward_residual: the wrappers (:class:`PostNorm` or
            :class:`PreNorm`), one per sublayer, each with its own LayerNorm.

    Example:
        >>> import torch
        >>> from qkv import EncoderLayer, ModelConfig
        >>> layer = EncoderLayer.from_config(ModelConfig(vocab_size=10, d_model=16, num_heads=4,
        ...                                              d_ff=32))
        >>> layer(torch.randn(2, 5, 16)).shape                          # (B, T, E)
        torch.Size([2, 5, 16])
    """

    def __init__(
        self,
        self_attention: MultiHeadAttention,
        feed_forward: nn.Module,
        self_attention_residual: Residual,
        feed_forward_residual: Residual,
    ) -> None:
        super().__init__()
        self.self_attention = self_attention
        self.feed_forward = feed_forward
        self.self_attention_residual = self_attention_residual
        self.feed_forward_residual = feed_forward_residual

    @classmethod
    def from_config(cls, config: ModelConfig, rotary: nn.Module | None = None) -> EncoderLayer:
        """A layer with ``config``'s sizes, norm placement, dropout and activation; ``rotary``
        is the model's :class:`~qkv.models.positions.RotaryPositions`, if it uses them."""
        return cls(
            _attention(config, rotary),
            _feed_forward(config),
            residual_from_config(config),
            residual_from_config(config),
        )

    def forward(
        self, x: Tensor, mask: Tensor | None = None, *, positions: Tensor | None = None
    ) -> Tensor:
        """``x (B, T, E)`` → ``(B, T, E)``; ``mask`` broadcasts to ``(B, H, T, T)``."""
        x = self.self_attention_residual(
            x, lambda h: self.self_attention(h, mask=mask, positions=positions)[0])
        return self.feed_forward_residual(x, self.feed_forward)


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention over the encoder output, and a feed-forward network.

    Args:
        self_attention: attention over the decoder's own positions (causal).
        cross_attention: attention from the decoder (queries) to the encoder output (keys and
            values); ``None`` for a decoder-only language model.
        feed_forward: the position-wise feed-forward network.
        self_attention_residual, cross_attention_residual, feed_forward_residual: the residual
            wrappers, one per sublayer (``cross_attention_residual`` is ``None`` with
            ``cross_attention``).

    Example:
        >>> import torch
        >>> from qkv import DecoderLayer, ModelConfig
        >>> config = ModelConfig(vocab_size=10, d_model=16, num_heads=4, d_ff=32)
        >>> layer = DecoderLayer.from_config(config)
        >>> target, memory = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
        >>> layer(target, memory).shape                                 # (B, T, E)
        torch.Size([2, 5, 16])
    """

    def __init__(
        self,
        self_attention: MultiHeadAttention,
        cross_attention: MultiHeadAttention | None,
        feed_forward: nn.Module,
        self_attention_residual: Residual,
        cross_attention_residual: Residual | None,
        feed_forward_residual: Residual,
    ) -> None:
        super().__init__()
        if (cross_attention is None) != (cross_attention_residual is None):
            raise ValueError("cross_attention and cross_attention_residual go together: give "
                             "both or neither")
        self.self_attention = self_attention
        self.cross_attention = cross_attention
        self.feed_forward = feed_forward
        self.self_attention_residual = self_attention_residual
        self.cross_attention_residual = cross_attention_residual
        self.feed_forward_residual = feed_forward_residual

    @classmethod
    def from_config(
        cls, config: ModelConfig, rotary: nn.Module | None = None, *, cross_attention: bool = True
    ) -> DecoderLayer:
        """A layer with ``config``'s sizes, norm placement, dropout and activation; without
        cross-attention for a decoder-only model. ``rotary`` as in
        :meth:`EncoderLayer.from_config` (self-attention only)."""
        return cls(
            _attention(config, rotary),
            _attention(config, None) if cross_attention else None,
            _feed_forward(config),
            residual_from_config(config),
            residual_from_config(config) if cross_attention else None,
            residual_from_config(config),
        )

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None = None,
        *,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        causal: bool = True,
        positions: Tensor | None = None,
        cache: tuple[AttentionCache, AttentionCache] | None = None,
    ) -> Tensor:
        """Decode ``x`` given the encoder output ``memory``.

        Args:
            x: the target-side representations.
            memory: the encoder output; required iff the layer has cross-attention.
            tgt_mask: which target positions may be attended (with ``causal``, also no later one).
            memory_mask: which encoder positions may be attended (source padding).
            causal: no position attends to a later one (always, inside qkv's models).
            positions: of ``x``'s positions, for rotary self-attention.
            cache: ``(self_attention_cache, cross_attention_cache)`` for step-by-step decoding.

        Shape:
            - x: ``(B, T, E)``; memory: ``(B, S, E)``
            - tgt_mask: broadcastable to ``(B, H, T, T)`` (``(B, H, T, cached + T)`` with a cache)
            - memory_mask: broadcastable to ``(B, H, T, S)``
            - returns: ``(B, T, E)``
        """
        if (memory is None) != (self.cross_attention is None):
            raise ValueError(
                "this decoder layer has no cross-attention: pass no memory"
                if memory is not None else
                "this decoder layer attends to an encoder output: pass memory (B, S, E)"
            )
        self_cache, cross_cache = (None, None) if cache is None else cache
        x = self.self_attention_residual(x, lambda h: self.self_attention(
            h, mask=tgt_mask, causal=causal, positions=positions, cache=self_cache)[0])
        if self.cross_attention is not None:
            x = self.cross_attention_residual(x, lambda h: self.cross_attention(
                h, memory, mask=memory_mask, cache=cross_cache)[0])
        return self.feed_forward_residual(x, self.feed_forward)


def _attention(config: ModelConfig, rotary: nn.Module | None) -> MultiHeadAttention:
    return MultiHeadAttention(config.d_model, config.num_heads, bias=config.bias,
                              dropout=config.attention_dropout, rotary=rotary)


def _feed_forward(config: ModelConfig) -> FeedForward:
    return FeedForward(config.d_model, config.d_ff, config.activation, bias=config.bias)
