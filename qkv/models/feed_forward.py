"""The position-wise feed-forward network (the paper, section 3.3).

``FFN(x) = max(0, x W_1 + b_1) W_2 + b_2``: two linear layers with an activation between them,
applied to every position separately and identically (``E → d_ff → E``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from qkv._checks import check_positive_int, check_probability

__all__ = ["FeedForward"]

_ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}


class FeedForward(nn.Module):
    """Two linear layers with ReLU (the paper) or GELU between them, position by position.

    Args:
        d_model: E, input and output width.
        d_ff: inner width (2048 in the paper's base model).
        activation: ``"relu"``, ``"gelu"``, ``"gelu_tanh"`` or ``"silu"`` (swish).
        dropout: on the inner activations (not in the paper, which drops only sublayer outputs;
            ``torch.nn.TransformerEncoderLayer`` does).
        bias: whether both layers have biases.

    Shape:
        ``(B, T, E) → (B, T, E)``

    Example:
        >>> import torch
        >>> FeedForward(d_model=8, d_ff=32)(torch.randn(2, 5, 8)).shape
        torch.Size([2, 5, 8])
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        activation: str = "relu",
        *,
        dropout: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {', '.join(map(repr, _ACTIVATIONS))}, got {activation!r}"
            )
        self.activation = activation
        self.inner = nn.Linear(check_positive_int("d_model", d_model),
                               check_positive_int("d_ff", d_ff), bias=bias)      # W_1
        self.outer = nn.Linear(d_ff, d_model, bias=bias)                         # W_2
        self.dropout = nn.Dropout(check_probability("dropout", dropout))

    def forward(self, x: Tensor) -> Tensor:
        hidden = _ACTIVATIONS[self.activation](self.inner(x))           # (B, T, d_ff)
        return self.outer(self.dropout(hidden))                         # (B, T, E)

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"
