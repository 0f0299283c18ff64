"""An encoder-only model (BERT-style): every position attends to every other, no decoder."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from qkv._checks import check_index_range, check_integer_tensor, shape_str
from qkv.attention.masks import padding_mask
from qkv.models.config import EncoderModelConfig
from qkv.models.embeddings import Embeddings, check_length, check_token_ids
from qkv.models.layers import EncoderLayer
from qkv.models.positions import rotary_from_config
from qkv.models.residual import final_norm_from_config

__all__ = ["EncoderModel"]


class EncoderModel(nn.Module):
    """Token ids → contextual hidden states, one per token.

    Args:
        config: an :class:`~qkv.models.config.EncoderModelConfig`.

    Attributes:
        embedding: :class:`~qkv.models.embeddings.Embeddings`.
        layers: N :class:`~qkv.models.layers.EncoderLayer`.
        final_norm: a LayerNorm after pre-norm layers, else ``None``.

    Example:
        >>> import torch, qkv
        >>> config = qkv.EncoderModelConfig(vocab_size=50, d_model=32, num_heads=4, num_layers=2,
        ...                                 d_ff=64, positions="learned", activation="gelu")
        >>> model = qkv.EncoderModel(config)
        >>> model(torch.tensor([[3, 4, 5, 0]])).shape                    # (B, T, E)
        torch.Size([1, 4, 32])
    """

    def __init__(self, config: EncoderModelConfig) -> None:
        super().__init__()
        if not isinstance(config, EncoderModelConfig):
            raise TypeError(f"config must be an EncoderModelConfig, got {type(config).__name__}")
        self.config = config
        rotary = rotary_from_config(config)
        self.embedding = Embeddings.from_config(config, positions=rotary,
                                                type_vocab_size=config.type_vocab_size,
                                                norm=config.embedding_norm)
        self.layers = nn.ModuleList(
            EncoderLayer.from_config(config, rotary) for _ in range(config.num_layers))
        self.final_norm = final_norm_from_config(config)

    def forward(
        self, ids: Tensor, mask: Tensor | None = None, token_types: Tensor | None = None
    ) -> Tensor:
        """Hidden states of the last layer.

        Args:
            ids: token ids.
            mask: which positions may be attended (``True`` = may attend); default: every
                non-padding one.
            token_types: the type (segment) of each token, for a config with
                ``type_vocab_size``; default: type 0 everywhere.

        Shape:
            ``ids (B, T)``, ``token_types (B, T)`` → ``(B, T, E)``; ``mask`` broadcastable to
            ``(B, H, T, T)``

        Raises:
            TypeError: ids or token types that are not integer tensors, a mask that is neither
                boolean nor floating.
            ValueError: ids not ``(B, T)``, outside ``[0, vocab_size)``, on another device than
                the model or longer than ``max_len``; token types of another shape or outside
                ``[0, type_vocab_size)``; a mask that does not broadcast to ``(B, H, T, T)``.
        """
        check_token_ids("ids", ids, self.config.vocab_size,
                        device=self.embedding.token.weight.device)
        check_length("ids", ids.shape[1], self.config.max_len)
        if token_types is not None:
            self._check_token_types(token_types, ids)
        if mask is None and self.config.pad_id is not None:
            mask = padding_mask(ids, self.config.pad_id)                # (B, 1, 1, T)
        positions = torch.arange(ids.shape[1], device=ids.device)       # (T,)
        x = self.embedding(ids, positions, token_types)                 # (B, T, E)
        for layer in self.layers:
            x = layer(x, mask, positions=positions)                     # (B, T, E)
        return x if self.final_norm is None else self.final_norm(x)

    def _check_token_types(self, token_types: Tensor, ids: Tensor) -> None:
        if not self.config.type_vocab_size:
            raise ValueError("token_types given, but the config has no token types "
                             "(type_vocab_size = 0)")
        check_integer_tensor("token_types", token_types)
        if token_types.shape != ids.shape:
            raise ValueError(f"token_types must have the shape of ids {shape_str(ids.shape)}, "
                             f"got {shape_str(token_types.shape)}")
        check_index_range("token_types", token_types, "type_vocab_size",
                          self.config.type_vocab_size, what="types")
