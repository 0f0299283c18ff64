"""The Transformer of "Attention Is All You Need": an encoder–decoder over token ids.

Assembled as the paper describes it (figure 1): source embeddings and an encoder of N layers;
target embeddings and a decoder of N layers, whose first attention is masked and whose second
attends to the encoder output; a final linear layer whose softmax is the next-token distribution.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from qkv._checks import check_floating, shape_str
from qkv.attention.masks import padding_mask
from qkv.models.cache import (
    KVCache,
    cache_step,
    cached_length,
    next_positions,
    self_attention_mask,
)
from qkv.models.config import TransformerConfig
from qkv.models.embeddings import Embeddings, check_length, check_token_ids, new_token_embedding
from qkv.models.layers import DecoderLayer, EncoderLayer
from qkv.models.positions import rotary_from_config
from qkv.models.residual import final_norm_from_config
from qkv.models.stacks import Decoder, Encoder

__all__ = ["Transformer"]


class Transformer(nn.Module):
    """Encoder–decoder Transformer: ``(src ids, tgt ids) → next-token logits``.

    Padding (``config.pad_id``) is masked everywhere: in the encoder's self-attention, the
    decoder's self-attention (which is also causal) and the cross-attention.

    Every entry point checks its ids (integer, ``(B, T)``, in the vocabulary, on the model's
    device, no longer than ``config.max_len``) and raises a TypeError or ValueError that names
    the argument. An empty batch, source or target (``B``, ``S`` or ``T`` = 0) is allowed: the
    logits are empty, or — for an empty source — computed from a cross-attention that reads
    nothing (zeros, the all-masked rule of :func:`~qkv.scaled_dot_product_attention`).

    Args:
        config: the sizes and choices; :meth:`TransformerConfig.base` is the paper's base model.

    Attributes:
        src_embedding, tgt_embedding: :class:`~qkv.models.embeddings.Embeddings` (one token matrix
            when ``share_embeddings``).
        encoder, decoder: the stacks, :class:`~qkv.models.stacks.Encoder` and ``Decoder``.
        output_layer: the pre-softmax linear layer ``E → tgt_vocab_size`` (tied to the target
            embedding when ``tie_output``).

    Example:
        >>> import torch, qkv
        >>> config = qkv.TransformerConfig(vocab_size=100, d_model=32, num_heads=4, num_layers=2,
        ...                                d_ff=64)
        >>> model = qkv.Transformer(config)
        >>> src = torch.tensor([[5, 6, 7, 0], [8, 9, 10, 11]])          # 0 = padding
        >>> tgt = torch.tensor([[1, 12, 13], [1, 14, 0]])
        >>> model(src, tgt).shape                                       # (B, T, V)
        torch.Size([2, 3, 100])
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"config must be a TransformerConfig, got {type(config).__name__}")
        self.config = config
        rotary = rotary_from_config(config)
        self.src_embedding = Embeddings.from_config(config, positions=rotary)
        tgt_token = (self.src_embedding.token if config.share_embeddings
                     else new_token_embedding(config.target_vocab_size, config.d_model))
        self.tgt_embedding = Embeddings.from_config(config, tgt_token, rotary)
        self.encoder = Encoder(
            [EncoderLayer.from_config(config, rotary) for _ in range(config.num_layers)],
            final_norm_from_config(config))
        self.decoder = Decoder(
            [DecoderLayer.from_config(config, rotary) for _ in range(config.num_layers)],
            final_norm_from_config(config))
        self.output_layer = nn.Linear(config.d_model, config.target_vocab_size, bias=False)
        if config.tie_output:
            self.output_layer.weight = self.tgt_embedding.token.weight

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Teacher-forced logits: ``src (B, S)``, ``tgt (B, T)`` ids → ``(B, T, tgt_vocab_size)``."""
        src_mask = self.source_mask(src)                                # checks src
        if isinstance(tgt, Tensor) and tgt.dim() == 2 and tgt.shape[0] != src.shape[0]:
            raise ValueError(f"src and tgt must have the same batch size B: got src "
                             f"{shape_str(src.shape)}, tgt {shape_str(tgt.shape)}")
        return self.decode(tgt, self._encode(src, src_mask), src_mask)

    def encode(self, src: Tensor, src_mask: Tensor | None = None) -> Tensor:
        """The encoder output ("memory").

        Args:
            src: source token ids.
            src_mask: which source positions may be attended; default :meth:`source_mask`.

        Shape:
            ``src (B, S)`` → ``(B, S, E)``; ``src_mask`` broadcastable to ``(B, H, S, S)``
        """
        self._check_source(src)
        return self._encode(src, self._padding(src) if src_mask is None else src_mask)

    def _encode(self, src: Tensor, src_mask: Tensor | None) -> Tensor:
        """:meth:`encode` for checked ``src``."""
        positions = torch.arange(src.shape[1], device=src.device)       # (S,)
        x = self.src_embedding(src, positions)                          # (B, S, E)
        return self.encoder(x, src_mask, positions=positions)           # (B, S, E)

    def decode(
        self,
        tgt: Tensor,
        memory: Tensor,
        memory_mask: Tensor | None = None,
        *,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Next-token logits for the target ``tgt`` given the encoder output ``memory``.

        Args:
            tgt: target token ids: the whole prefix, or (with ``cache``) the tokens after it.
            memory: the encoder output, :meth:`encode`.
            memory_mask: which source positions may be attended: the encoder's ``src_mask``
                (:meth:`source_mask`). Required when the config has a ``pad_id``.
            cache: a :class:`~qkv.models.cache.KVCache` for step-by-step decoding.

        Shape:
            ``tgt (B, T)``, ``memory (B, S, E)``, ``memory_mask`` broadcastable to
            ``(B, H, T, S)`` → logits ``(B, T, tgt_vocab_size)``
        """
        check_token_ids("tgt", tgt, self.config.target_vocab_size, device=self._device)
        check_length("tgt", tgt.shape[1], self.config.max_len, cached=cached_length(cache))
        self._check_memory(memory, tgt)
        if memory_mask is None and self.config.pad_id is not None:
            raise ValueError(
                "decode needs memory_mask, the source padding mask: pass "
                "memory_mask=model.source_mask(src), or source padding leaks into the decoder"
            )
        with cache_step(cache, tgt.shape[0]):
            positions = next_positions(tgt, cache)                      # (T,)
            x = self.tgt_embedding(tgt, positions)                      # (B, T, E)
            tgt_mask = self_attention_mask(tgt, self.config.pad_id, cache)   # (B, 1, 1, S)
            x = self.decoder(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                             positions=positions, cache=cache)          # (B, T, E)
            return self.output_layer(x)                                 # (B, T, V)

    def source_mask(self, src: Tensor) -> Tensor | None:
        """``(B, S)`` source ids → padding mask ``(B, 1, 1, S)`` (``None`` without a pad id)."""
        self._check_source(src)
        return self._padding(src)

    @property
    def _device(self) -> torch.device:
        return self.output_layer.weight.device

    def _check_source(self, src: Tensor) -> None:
        check_token_ids("src", src, self.config.vocab_size, device=self._device)
        check_length("src", src.shape[1], self.config.max_len)

    def _check_memory(self, memory: Tensor, tgt: Tensor) -> None:
        """``memory`` must be what :meth:`encode` gives for ``tgt``'s batch: ``(B, S, E)``."""
        check_floating("memory", memory)
        if memory.dim() != 3 or memory.shape[-1] != self.config.d_model:
            raise ValueError(f"memory must have shape (B, S, E) with E = d_model = "
                             f"{self.config.d_model} (the output of encode), got "
                             f"{shape_str(memory.shape)}")
        if memory.shape[0] != tgt.shape[0]:
            raise ValueError(f"memory and tgt must have the same batch size B: got memory "
                             f"{shape_str(memory.shape)}, tgt {shape_str(tgt.shape)}")
        weight = self.tgt_embedding.token.weight                       # float, even if quantized
        if memory.device != weight.device:
            raise ValueError(f"memory is on {memory.device} but the model is on {weight.device}; "
                             f"move them to the same device")
        if memory.dtype != weight.dtype and not torch.is_autocast_enabled(memory.device.type):
            raise TypeError(f"memory must have the model's dtype ({weight.dtype}), got "
                            f"{memory.dtype}")

    def _padding(self, src: Tensor) -> Tensor | None:
        return None if self.config.pad_id is None else padding_mask(src, self.config.pad_id)
