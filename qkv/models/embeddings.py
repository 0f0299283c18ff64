"""Input embeddings: token ids → vectors, scaled, plus positions, with dropout (section 3.4–3.5).

Optionally (BERT) a learned vector per token type is added and the sum is layer-normalised.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from qkv._checks import (
    check_index_range,
    check_int,
    check_integer_tensor,
    check_probability,
    shape_str,
)
from qkv.models.config import ModelConfig
from qkv.models.positions import positions_from_config

__all__ = ["Embeddings"]


class Embeddings(nn.Module):
    """``Dropout(token_embedding(ids) · scale + PE(positions))``; with token types and a norm,
    ``Dropout(LayerNorm(token_embedding(ids) · scale + PE(positions) + type_embedding(types)))``.

    Args:
        token: the embedding matrix ``(V, E)``; may be shared with another :class:`Embeddings`
            (source and target) and tied to the output layer.
        positions: the positional strategy (:mod:`qkv.models.positions`); rotary leaves the sum
            unchanged here and acts inside attention.
        scale: the multiplier of the token embeddings, √d_model in the paper.
        dropout: on the sum.
        token_type: an embedding ``(type_vocab_size, E)`` of token types (BERT's segments), or
            ``None`` (default) for none.
        norm: a LayerNorm on the sum, before dropout (BERT), or ``None`` (default).

    Shape:
        ``ids (B, T)`` integer, ``positions (T,)`` or ``(B, T)``, ``token_types (B, T)`` integer
        (default: type 0 everywhere) → ``(B, T, E)``. The ids are not validated here: the models
        check them once (:func:`check_token_ids`).

    Example:
        >>> import torch
        >>> from qkv.models.positions import SinusoidalPositions
        >>> embeddings = Embeddings(torch.nn.Embedding(10, 4), SinusoidalPositions(4, 16), scale=2.0)
        >>> embeddings(torch.tensor([[3, 3]]), torch.arange(2)).shape    # same id, two positions
        torch.Size([1, 2, 4])
    """

    def __init__(self, token: nn.Embedding, positions: nn.Module, *, scale: float = 1.0,
                 dropout: float = 0.0, token_type: nn.Embedding | None = None,
                 norm: nn.LayerNorm | None = None) -> None:
        super().__init__()
        self.token = token
        self.positions = positions
        self.scale = float(scale)
        self.token_type = token_type
        self.norm = norm
        self.dropout = nn.Dropout(check_probability("dropout", dropout))

    @classmethod
    def from_config(
        cls,
        config: ModelConfig,
        token: nn.Embedding | None = None,
        positions: nn.Module | None = None,
        *,
        type_vocab_size: int = 0,
        norm: bool = False,
    ) -> Embeddings:
        """Embeddings for ``config``: a new ``(vocab_size, d_model)`` matrix unless ``token`` is
        given, and the config's positional strategy unless ``positions`` is given (a model passes
        its one :class:`~qkv.models.positions.RotaryPositions`, shared with its attentions);
        ``type_vocab_size`` token-type vectors and a LayerNorm (``config.norm_eps``) if asked."""
        if token is None:
            token = new_token_embedding(config.vocab_size, config.d_model)
        if positions is None:
            positions = positions_from_config(config)
        token_type = None
        if check_int("type_vocab_size", type_vocab_size, minimum=0):
            token_type = nn.Embedding(type_vocab_size, config.d_model)
            nn.init.normal_(token_type.weight, std=0.02)
        layer_norm = nn.LayerNorm(config.d_model, eps=config.norm_eps) if norm else None
        scale = math.sqrt(config.d_model) if config.scale_embeddings else 1.0
        return cls(token, positions, scale=scale, dropout=config.dropout, token_type=token_type,
                   norm=layer_norm)

    def forward(self, ids: Tensor, positions: Tensor, token_types: Tensor | None = None) -> Tensor:
        x = self.token(ids) * self.scale                                # (B, T, E)
        x = self.positions.encode(x, positions)                         # (B, T, E)
        if self.token_type is not None:
            if token_types is None:
                token_types = torch.zeros_like(ids)                     # (B, T), all type 0
            x = x + self.token_type(token_types)                        # (B, T, E)
        elif token_types is not None:
            raise ValueError("token_types given, but these embeddings have no token types "
                             "(type_vocab_size = 0)")
        if self.norm is not None:
            x = self.norm(x)
        return self.dropout(x)                                          # (B, T, E)

    def extra_repr(self) -> str:
        return f"scale={self.scale:g}"


def new_token_embedding(vocab_size: int, d_model: int) -> nn.Embedding:
    """A ``(V, E)`` embedding with N(0, 1/d_model) entries: unit-variance vectors after the
    √d_model scale, and unit-variance logits when tied to the output layer."""
    embedding = nn.Embedding(vocab_size, d_model)
    nn.init.normal_(embedding.weight, std=d_model ** -0.5)
    return embedding


def check_token_ids(name: str, ids: object, vocab_size: int, *,
                    device: torch.device | None = None) -> Tensor:
    """``ids`` must be a ``(B, T)`` integer tensor of ids in ``[0, vocab_size)``, on ``device``
    (the model's) if given. The models call it once per input at their boundary;
    :class:`Embeddings` does not repeat it."""
    check_integer_tensor(name, ids, "integer tensor of token ids")
    if ids.dim() != 2:
        raise ValueError(f"{name} must have shape (B, T), got {shape_str(ids.shape)}")
    if device is not None and ids.device != device:
        raise ValueError(f"{name} is on {ids.device} but the model is on {device}; move them to "
                         f"the same device")
    check_index_range(name, ids, "vocab_size", vocab_size, what="ids")
    return ids


def check_length(name: str, length: int, max_len: int, *, cached: int = 0) -> None:
    """``cached + length`` positions must fit in the model's ``max_len``, whatever its positions
    (a rotary model has no table to overflow, but its config promises no more). Arithmetic
    only: no data is read. Skipped while ``torch.export`` traces, whose sequence axis may be
    declared longer for a rotary model."""
    if cached + length > max_len and not torch.compiler.is_exporting():
        after = f" after {cached} cached ones" if cached else ""
        raise ValueError(f"{name} has {length} positions{after}, more than the model's max_len = "
                         f"{max_len}: the sequence is longer than the model's max_len")
