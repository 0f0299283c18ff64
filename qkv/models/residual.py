"""Residual connection + LayerNorm around a sublayer: where the norm goes is a strategy.

* :class:`PostNorm`, the paper's (section 3.1): ``LayerNorm(x + Dropout(Sublayer(x)))``;
* :class:`PreNorm`, used by most later models: ``x + Dropout(Sublayer(LayerNorm(x)))`` — a stack
  of pre-norm layers ends with one more LayerNorm (see :mod:`qkv.models.stacks`).

Both take the sublayer as a callable, so a layer reads as the paper's description:
``x = self.self_attention_residual(x, lambda h: self.self_attention(h)[0])``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from qkv._checks import check_positive_int, check_probability

__all__ = ["PostNorm", "PreNorm", "residual_from_config", "final_norm_from_config"]


class _Residual(nn.Module):
    def __init__(self, d_model: int, dropout: float = 0.0, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(check_positive_int("d_model", d_model), eps=eps)
        self.dropout = nn.Dropout(check_probability("dropout", dropout))


class PostNorm(_Residual):
    """``LayerNorm(x + Dropout(sublayer(x)))``, the paper's placement. Shape ``(B, T, E)``.

    Example:
        >>> import torch
        >>> residual = PostNorm(d_model=4).eval()
        >>> x = torch.randn(2, 3, 4)
        >>> torch.allclose(residual(x, lambda h: 2 * h), residual.norm(3 * x))
        True
    """

    def forward(self, x: Tensor, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        return self.norm(x + self.dropout(sublayer(x)))


class PreNorm(_Residual):
    """``x + Dropout(sublayer(LayerNorm(x)))``, the pre-norm placement. Shape ``(B, T, E)``.

    Example:
        >>> import torch
        >>> residual = PreNorm(d_model=4).eval()
        >>> x = torch.randn(2, 3, 4)
        >>> torch.allclose(residual(x, lambda h: 2 * h), x + 2 * residual.norm(x))
        True
    """

    def forward(self, x: Tensor, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        return x + self.dropout(sublayer(self.norm(x)))


def final_norm_from_config(config) -> nn.LayerNorm | None:
    """The LayerNorm that ends a stack of pre-norm layers (their residual stream is never
    normalised otherwise); ``None`` for post-norm layers, whose output is normalised already."""
    return nn.LayerNorm(config.d_model, eps=config.norm_eps) if config.norm_first else None


def residual_from_config(config) -> _Residual:
    """A residual wrapper with the config's norm placement, dropout and epsilon."""
    placement = PreNorm if config.norm_first else PostNorm
    return placement(config.d_model, config.dropout, config.norm_eps)
