"""Input embeddings: token ids → vectors, scaled, plus positions, with dropout (section 3.4–3.5)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from qkv._checks import check_index_range, check_integer_tensor, check_probability, shape_str
from qkv.models.config import ModelConfig
from qkv.models.positions import positions_from_config

__all__ = ["Embeddings"]


class Embeddings(nn.Module):
    """``Dropout(token_embedding(ids) · scale + PE(positions))``.

    Args:
        token: the embedding matrix ``(V, E)``; may be shared with another :class:`Embeddings`
            (source and target) and tied to the output layer.
        positions: the positional strategy (:mod:`qkv.models.positions`); rotary leaves the sum
            unchanged here and acts inside attention.
        scale: the multiplier of the token embeddings, √d_model in the paper.
        dropout: on the sum.

    Shape:
        ``ids (B, T)`` integer, ``positions (T,)`` or ``(B, T)`` → ``(B, T, E)``. The ids are
        not validated here: the models check them once (:func:`check_token_ids`).

    Example:
        >>> import torch
        >>> from qkv.models.positions import SinusoidalPositions
        >>> embeddings = Embeddings(torch.nn.Embedding(10, 4), SinusoidalPositions(4, 16), scale=2.0)
        >>> embeddings(torch.tensor([[3, 3]]), torch.arange(2)).shape    # same id, two positions
        torch.Size([1, 2, 4])
    """

    def __init__(self, token: nn.Embedding, positions: nn.Module, *, scale: float = 1.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.token = token
        self.positions = positions
        self.scale = float(scale)
        self.dropout = nn.Dropout(check_probability("dropout", dropout))

    @classmethod
    def from_config(
        cls,
        config: ModelConfig,
        token: nn.Embedding | None = None,
        positions: nn.Module | None = None,
    ) -> Embeddings:
        """Embeddings for ``config``: a new ``(vocab_size, d_model)`` matrix unless ``token`` is
        given, and the config's positional strategy unless ``positions`` is given (a model passes
        its one :class:`~qkv.models.positions.RotaryPositions`, shared with its attentions)."""
        if token is None:
            token = new_token_embedding(config.vocab_size, config.d_model)
        if positions is None:
            positions = positions_from_config(config)
        scale = math.sqrt(config.d_model) if config.scale_embeddings else 1.0
        return cls(token, positions, scale=scale, dropout=config.dropout)

    def forward(self, ids: Tensor, positions: Tensor) -> Tensor:
        x = self.token(ids) * self.scale                                # (B, T, E)
        return self.dropout(self.positions.encode(x, positions))        # (B, T, E)

    def extra_repr(self) -> str:
        return f"scale={self.scale:g}"


def new_token_embedding(vocab_size: int, d_model: int) -> nn.Embedding:
    """A ``(V, E)`` embedding with N(0, 1/d_model) entries: unit-variance vectors after the
    √d_model scale, and unit-variance logits when tied to the output layer."""
    embedding = nn.Embedding(vocab_size, d_model)
    nn.init.normal_(embedding.weight, std=d_model ** -0.5)
    return embedding


def check_token_ids(name: str, ids: object, vocab_size: int) -> Tensor:
    """``ids`` must be a ``(B, T)`` integer tensor of ids in ``[0, vocab_size)``. The models call
    it once per input at their boundary; :class:`Embeddings` does not repeat it."""
    check_integer_tensor(name, ids, "integer tensor of token ids")
    if ids.dim() != 2:
        raise ValueError(f"{name} must have shape (B, T), got {shape_str(ids.shape)}")
    check_index_range(name, ids, "vocab_size", vocab_size, what="ids")
    return ids
