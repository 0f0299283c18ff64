"""A decoder-only language model (GPT-style): causal self-attention, no encoder, no cross-attention."""

from __future__ import annotations

from torch import Tensor, nn

from qkv._checks import check_tensor, shape_str
from qkv.models.cache import (
    KVCache,
    cache_step,
    cached_length,
    next_positions,
    self_attention_mask,
)
from qkv.models.config import LanguageModelConfig
from qkv.models.embeddings import Embeddings, check_length, check_token_ids
from qkv.models.layers import DecoderLayer
from qkv.models.positions import rotary_from_config
from qkv.models.residual import final_norm_from_config

__all__ = ["LanguageModel"]


class LanguageModel(nn.Module):
    """Token ids → next-token logits, each position seeing only itself and earlier positions.

    Args:
        config: a :class:`~qkv.models.config.LanguageModelConfig`.

    Attributes:
        embedding: :class:`~qkv.models.embeddings.Embeddings`.
        layers: N :class:`~qkv.models.layers.DecoderLayer` without cross-attention.
        final_norm: a LayerNorm after pre-norm layers, else ``None``.
        output_layer: ``E → vocab_size``, tied to the token embedding when ``tie_output``.

    Example:
        >>> import torch, qkv
        >>> config = qkv.LanguageModelConfig(vocab_size=50, d_model=32, num_heads=4, num_layers=2,
        ...                                  d_ff=64, positions="rotary", norm_first=True)
        >>> model = qkv.LanguageModel(config)
        >>> model(torch.tensor([[3, 4, 5, 6]])).shape                    # (B, T, V)
        torch.Size([1, 4, 50])
    """

    def __init__(self, config: LanguageModelConfig) -> None:
        super().__init__()
        if not isinstance(config, LanguageModelConfig):
            raise TypeError(f"config must be a LanguageModelConfig, got {type(config).__name__}")
        self.config = config
        rotary = rotary_from_config(config)
        self.embedding = Embeddings.from_config(config, positions=rotary)
        self.layers = nn.ModuleList(
            DecoderLayer.from_config(config, rotary, cross_attention=False)
            for _ in range(config.num_layers))
        self.final_norm = final_norm_from_config(config)
        self.output_layer = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_output:
            self.output_layer.weight = self.embedding.token.weight

    def forward(
        self, ids: Tensor, *, positions: Tensor | None = None, cache: KVCache | None = None
    ) -> Tensor:
        """Next-token logits.

        Args:
            ids: token ids: a whole sequence, or (with ``cache``) the tokens after the cached ones.
            positions: the position of each token; default ``cached, …, cached + T - 1``. Give
                them for left-padded batches, so that each row's first real token is at 0.
                Learned and sinusoidal tables take positions in ``[0, max_len)``; rotary ones
                are not limited (they have no table), only the sequence's length is.
            cache: a :class:`~qkv.models.cache.KVCache` for step-by-step generation.

        Shape:
            ``ids (B, T)``, ``positions (T,)`` or ``(B, T)`` → logits ``(B, T, vocab_size)``

        Raises:
            TypeError: ids or positions that are not integer tensors, a cache that is not a
                :class:`~qkv.models.cache.KVCache`.
            ValueError: ids not ``(B, T)``, outside ``[0, vocab_size)`` or on another device
                than the model; without ``positions``, more than ``max_len`` positions (cached
                ones counted); positions of another shape than ``(T,)`` or ``(B, T)``, or
                outside ``[0, max_len)`` for a learned or sinusoidal table.
        """
        check_token_ids("ids", ids, self.config.vocab_size,
                        device=self.output_layer.weight.device)
        cached = cached_length(cache)
        if positions is None:
            check_length("ids", ids.shape[1], self.config.max_len, cached=cached)
        else:                           # given positions may leave padding out: not the width
            B, T = ids.shape
            if check_tensor("positions", positions).shape not in ((T,), (B, T)):
                raise ValueError(f"positions must have shape (T,) = ({T},) or (B, T) = ({B}, {T})"
                                 f" for ids {shape_str(ids.shape)}, got "
                                 f"{shape_str(positions.shape)}")
        with cache_step(cache, ids.shape[0]):
            if positions is None:
                positions = next_positions(ids, cache)                  # (T,)
            x = self.embedding(ids, positions)                          # (B, T, E)
            mask = self_attention_mask(ids, self.config.pad_id, cache)  # (B, 1, 1, S)
            for index, layer in enumerate(self.layers):
                x = layer(x, tgt_mask=mask, positions=positions,
                          cache=None if cache is None else cache.layer(index))   # (B, T, E)
            if self.final_norm is not None:
                x = self.final_norm(x)
            return self.output_layer(x)                                 # (B, T, V)
