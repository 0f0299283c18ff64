"""Positional encodings: how a model that attends to a *set* learns the *order* of its tokens.

Three strategies, each a small module with the same two methods, chosen by
``ModelConfig.positions``:

* ``encode(x, positions)`` — applied once to the token embeddings;
* ``rotate(x, positions)`` — applied to queries and keys inside self-attention.

Absolute encodings (:class:`SinusoidalPositions`, :class:`LearnedPositions`) add a vector per
position in ``encode`` and leave ``rotate`` alone; :class:`RotaryPositions` does the opposite.

Shapes: ``x`` is ``(B, T, E)`` in ``encode`` and ``(B, H, T, D)`` in ``rotate``; ``positions`` is
``(T,)`` (the same for every sequence) or ``(B, T)``, integer.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from qkv._checks import check_index_range, check_integer_tensor, check_positive_int, shape_str
from qkv.models.config import ModelConfig

__all__ = [
    "SinusoidalPositions",
    "LearnedPositions",
    "RotaryPositions",
    "sinusoidal_table",
    "positions_from_config",
]


def sinusoidal_table(max_len: int, d_model: int) -> Tensor:
    r"""The paper's encodings (section 3.5): ``PE(pos, 2i) = sin(pos / 10000^(2i / d_model))``,
    ``PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))``.

    Shape:
        returns ``(max_len, d_model)``, float32; row ``pos`` is the encoding of position ``pos``.

    Example:
        >>> table = sinusoidal_table(50, 4)
        >>> table[0].tolist()                                   # sin(0), cos(0), sin(0), cos(0)
        [0.0, 1.0, 0.0, 1.0]
    """
    position = torch.arange(max_len, dtype=torch.float64)[:, None]     # (max_len, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)            # (⌈E/2⌉,)
    angle = position / 10000.0 ** (two_i / d_model)                     # (max_len, ⌈E/2⌉)
    table = torch.empty(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return table.float()


class _AbsolutePositions(nn.Module):
    """A vector per position, added to the token embeddings; attention is left alone."""

    max_len: int

    def encode(self, x: Tensor, positions: Tensor) -> Tensor:
        """``x (B, T, E)`` plus the encodings of ``positions`` → ``(B, T, E)``."""
        return x + self.table(_checked(positions, self.max_len)).to(x.dtype)

    def rotate(self, x: Tensor, positions: Tensor) -> Tensor:
        return x

    def table(self, positions: Tensor) -> Tensor:
        raise NotImplementedError


class SinusoidalPositions(_AbsolutePositions):
    """The paper's fixed sin/cos encodings (no parameters).

    Example:
        >>> import torch
        >>> positions = SinusoidalPositions(d_model=8, max_len=16)
        >>> positions.encode(torch.zeros(1, 3, 8), torch.arange(3)).shape
        torch.Size([1, 3, 8])
    """

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        self.d_model = check_positive_int("d_model", d_model)
        self.max_len = check_positive_int("max_len", max_len)
        # Not saved in checkpoints: it is a function of (max_len, d_model).
        self.register_buffer("encodings", sinusoidal_table(max_len, d_model), persistent=False)

    def table(self, positions: Tensor) -> Tensor:
        return self.encodings[positions]                                # (…, T, E)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}"


class LearnedPositions(_AbsolutePositions):
    """A trained embedding per absolute position (BERT, GPT-2).

    Example:
        >>> import torch
        >>> positions = LearnedPositions(d_model=8, max_len=16)
        >>> x = torch.zeros(1, 3, 8)
        >>> torch.equal(positions.encode(x, torch.arange(3))[0], positions.embedding.weight[:3])
        True
    """

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        self.max_len = check_positive_int("max_len", max_len)
        self.embedding = nn.Embedding(max_len, check_positive_int("d_model", d_model))
        nn.init.normal_(self.embedding.weight, std=0.02)

    def table(self, positions: Tensor) -> Tensor:
        return self.embedding(positions)                                # (…, T, E)


class RotaryPositions(nn.Module):
    r"""Rotary position embedding (RoPE, Su et al. 2021): queries and keys are rotated by angles
    proportional to their positions, so ``q_m · k_n`` depends on ``m - n`` only.

    Dim ``j`` and dim ``j + D/2`` of a head form a pair rotated by ``pos · base^(-2j/D)`` (the
    "rotate half" layout of GPT-NeoX and LLaMA). Token embeddings are left alone; positions are
    not limited by a table.

    Args:
        head_dim: D, even.
        base: the wavelength base, 10000 as for the sinusoidal encodings.

    Example:
        >>> import torch
        >>> rotary = RotaryPositions(head_dim=4)
        >>> q = torch.randn(1, 1, 1, 4)
        >>> at_3, at_5 = rotary.rotate(q, torch.tensor([3])), rotary.rotate(q, torch.tensor([5]))
        >>> at_7, at_9 = rotary.rotate(q, torch.tensor([7])), rotary.rotate(q, torch.tensor([9]))
        >>> bool(torch.isclose((at_3 * at_5).sum(), (at_7 * at_9).sum(), atol=1e-5))
        True
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        self.head_dim = check_positive_int("head_dim", head_dim)
        if head_dim % 2:
            raise ValueError(f"rotary positions need an even head_dim, got {head_dim}")
        if not (isinstance(base, (int, float)) and base > 1 and math.isfinite(base)):
            raise ValueError(f"base must be a finite number > 1, got {base!r}")
        self.base = float(base)

    def encode(self, x: Tensor, positions: Tensor) -> Tensor:
        return x

    def rotate(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotate ``x (B, H, T, D)`` at ``positions`` ``(T,)`` or ``(B, T)`` → ``(B, H, T, D)``."""
        positions = _checked(positions, None)
        # Computed in float32 on every call (cheap), so that casting the model to bf16/fp16 never
        # rounds the frequencies: a buffer would be cast with the model.
        two_j = torch.arange(0, self.head_dim, 2, device=x.device, dtype=torch.float32)
        frequencies = self.base ** (-two_j / self.head_dim)             # (D/2,)
        angle = positions[..., None].float() * frequencies              # (…, T, D/2)
        angle = torch.cat([angle, angle], dim=-1)                       # (…, T, D)
        if angle.dim() == 3:
            angle = angle[:, None]                                      # (B, 1, T, D)
        first, second = x.chunk(2, dim=-1)                              # (B, H, T, D/2) each
        rotated_half = torch.cat([-second, first], dim=-1)              # (B, H, T, D)
        return (x * angle.cos() + rotated_half * angle.sin()).to(x.dtype)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base:g}"


def rotary_from_config(config: ModelConfig) -> RotaryPositions | None:
    """The one :class:`RotaryPositions` a model shares among its embeddings and self-attentions,
    or ``None`` if the config's positions are absolute."""
    return RotaryPositions(config.head_dim) if config.positions == "rotary" else None


def positions_from_config(config: ModelConfig) -> nn.Module:
    """The positional strategy a config names."""
    if config.positions == "sinusoidal":
        return SinusoidalPositions(config.d_model, config.max_len)
    if config.positions == "learned":
        return LearnedPositions(config.d_model, config.max_len)
    return RotaryPositions(config.head_dim)


def _checked(positions: Tensor, max_len: int | None) -> Tensor:
    check_integer_tensor("positions", positions)
    if positions.dim() not in (1, 2):
        raise ValueError(f"positions must have shape (T,) or (B, T), got {shape_str(positions.shape)}")
    if max_len is not None:
        check_index_range("positions", positions, "max_len", max_len, what="values",
                          hint=": a sequence longer than the model's max_len, or a negative "
                               "position")
    return positions
