"""Stacks of N layers: the encoder, the decoder, and the two together.

These take and return hidden states ``(B, T, E)``, not token ids; the models of
:mod:`qkv.models` put embeddings before them and the output layer after. ``torch.nn``'s
``TransformerEncoder``/``TransformerDecoder``/``Transformer`` convert to them
(:func:`qkv.from_torch`). Masks are in qkv's convention (``True`` = may attend) and broadcast to
``(B, H, T, S)``: ``mask`` for the encoder, ``tgt_mask`` and ``memory_mask`` for the decoder.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from qkv.models.cache import KVCache
from qkv.models.layers import DecoderLayer, EncoderLayer

__all__ = ["Encoder", "Decoder", "EncoderDecoder"]


class Encoder(nn.Module):
    """N encoder layers, then an optional LayerNorm (needed after pre-norm layers).

    Shape:
        ``x (B, S, E)`` → ``(B, S, E)``; ``mask`` broadcastable to ``(B, H, S, S)``, typically the
        source padding mask ``(B, 1, 1, S)``.

    Example:
        >>> import torch, qkv
        >>> config = qkv.ModelConfig(vocab_size=1, d_model=16, num_heads=4, d_ff=32)
        >>> encoder = qkv.Encoder([qkv.EncoderLayer.from_config(config) for _ in range(2)])
        >>> encoder(torch.randn(2, 5, 16), qkv.length_mask(torch.tensor([5, 3]))).shape
        torch.Size([2, 5, 16])
    """

    def __init__(self, layers: Sequence[EncoderLayer], norm: nn.LayerNorm | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = norm

    def forward(
        self, x: Tensor, mask: Tensor | None = None, *, positions: Tensor | None = None
    ) -> Tensor:
        for layer in self.layers:
            x = layer(x, mask, positions=positions)                     # (B, S, E)
        return x if self.norm is None else self.norm(x)


class Decoder(nn.Module):
    """N decoder layers, then an optional LayerNorm (needed after pre-norm layers).

    Self-attention is causal (``causal=True``, the default and the only choice inside qkv's
    models); ``causal=False`` exists for converted ``torch.nn`` decoders used without a causal
    mask.

    Shape:
        - x: ``(B, T, E)``; memory: ``(B, S, E)``; returns ``(B, T, E)``
        - tgt_mask: broadcastable to ``(B, H, T, T)``, e.g. target padding ``(B, 1, 1, T)``
          (with a cache, ``(B, H, T, cached + T)``)
        - memory_mask: broadcastable to ``(B, H, T, S)``, e.g. source padding ``(B, 1, 1, S)``

    Example:
        >>> import torch, qkv
        >>> config = qkv.ModelConfig(vocab_size=1, d_model=16, num_heads=4, d_ff=32,
        ...                          norm_first=True)
        >>> decoder = qkv.Decoder([qkv.DecoderLayer.from_config(config) for _ in range(2)],
        ...                       torch.nn.LayerNorm(16))                # pre-norm: a final norm
        >>> decoder(torch.randn(2, 3, 16), torch.randn(2, 5, 16)).shape
        torch.Size([2, 3, 16])
    """

    def __init__(self, layers: Sequence[DecoderLayer], norm: nn.LayerNorm | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = norm

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None = None,
        *,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        causal: bool = True,
        positions: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        for index, layer in enumerate(self.layers):
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask, causal=causal,
                      positions=positions,
                      cache=None if cache is None else cache.layer(index))   # (B, T, E)
        return x if self.norm is None else self.norm(x)


class EncoderDecoder(nn.Module):
    """An encoder and a decoder on hidden states: ``torch.nn.Transformer``'s counterpart.

    Shape:
        ``src (B, S, E)``, ``tgt (B, T, E)`` → ``(B, T, E)``; ``src_mask`` broadcastable to
        ``(B, H, S, S)`` (the encoder's self-attention), ``tgt_mask`` to ``(B, H, T, T)``,
        ``memory_mask`` to ``(B, H, T, S)``.

    Example:
        >>> import torch, qkv
        >>> reference = torch.nn.Transformer(16, 4, 1, 1, 32, batch_first=True)
        >>> model = qkv.from_torch(reference)                           # an EncoderDecoder
        >>> model(torch.randn(2, 5, 16), torch.randn(2, 3, 16)).shape
        torch.Size([2, 3, 16])
    """

    def __init__(self, encoder: Encoder, decoder: Decoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(
        self,
        src: Tensor,
        tgt: Tensor,
        *,
        src_mask: Tensor | None = None,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        causal: bool = True,
    ) -> Tensor:
        memory = self.encoder(src, src_mask)                            # (B, S, E)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            causal=causal)                              # (B, T, E)
