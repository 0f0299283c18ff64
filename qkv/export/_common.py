"""What the family exporters share: refusing with a reason, absolute position tables, and
``nn.Linear`` weights with a zero bias where qkv's layer has none."""

from __future__ import annotations

from torch import Tensor, nn

from qkv.models.positions import LearnedPositions, SinusoidalPositions

__all__ = ["refusal", "position_table", "weight_and_bias", "HF_ACTIVATIONS"]

# qkv's activation → the name transformers' ACT2FN runs with the same function.
HF_ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh",
                  "silu": "silu"}


def refusal(family: str, field: str, value: object, reason: str) -> ValueError:
    """The error for a config field whose value ``family`` cannot express, naming both.

    Example:
        >>> raise refusal("GPT-2", "norm_first", False, "GPT-2's layers are pre-norm")
        Traceback (most recent call last):
        ...
        ValueError: cannot export to GPT-2: norm_first=False; GPT-2's layers are pre-norm
    """
    return ValueError(f"cannot export to {family}: {field}={value!r}; {reason}")


def position_table(positions: nn.Module, family: str) -> Tensor:
    """The ``(max_len, E)`` vectors that absolute positions add to the token embeddings: the
    sinusoids of :class:`~qkv.models.positions.SinusoidalPositions` or the trained rows of
    :class:`~qkv.models.positions.LearnedPositions`; a family with a learned table takes either.

    Raises:
        ValueError: rotary positions, which add nothing to the embeddings (they rotate queries
            and keys inside attention).
    """
    if isinstance(positions, SinusoidalPositions):
        return positions.encodings                                      # (max_len, E)
    if isinstance(positions, LearnedPositions):
        return positions.embedding.weight                               # (max_len, E)
    raise refusal(family, "positions", "rotary", f"{family} adds one vector per absolute position "
                  f"to the embeddings; it cannot rotate queries and keys")


def weight_and_bias(layer: nn.Linear | nn.LayerNorm) -> tuple[Tensor, Tensor]:
    """The weight and bias of a ``Linear`` (``(out, in)``, ``(out,)``) or ``LayerNorm``
    (``(E,)``, ``(E,)``); zeros for a layer without bias (``config.bias=False``), which computes
    the same as a bias of zeros.

    Example:
        >>> import torch
        >>> weight, bias = weight_and_bias(torch.nn.Linear(3, 2, bias=False))
        >>> tuple(weight.shape), bias.tolist()
        ((2, 3), [0.0, 0.0])
    """
    weight = layer.weight
    bias = layer.bias if layer.bias is not None else weight.new_zeros(weight.shape[0])
    return weight, bias
