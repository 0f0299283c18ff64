"""Conversion from ``torch.nn`` modules to qkv modules, and PyTorch masks to qkv masks.

This is one of the edges where other conventions meet qkv's:

* qkv modules are always batch-first; a converted module takes ``(B, T, E)`` whatever the
  PyTorch module's ``batch_first`` was.
* ``torch.nn.MultiheadAttention`` reads a boolean ``key_padding_mask`` / ``attn_mask`` as
  ``True`` = *masked out*; qkv reads ``True`` = *may attend*. :func:`mask_from_torch` converts.

Each supported module type has one converter, registered in ``_CONVERTERS``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from qkv._checks import check_tensor, shape_str
from qkv.attention.masks import combine_masks
from qkv.attention.multi_head import MultiHeadAttention

__all__ = ["from_torch", "mask_from_torch"]


def from_torch(module: nn.Module) -> nn.Module:
    """Convert a ``torch.nn`` module into the equivalent qkv module, with copied weights.

    Supported: ``torch.nn.MultiheadAttention`` (any ``kdim``/``vdim``, ``batch_first`` either
    way, with or without bias) → :class:`qkv.MultiHeadAttention`. The result has the source's
    training/eval mode and its parameters' dtype and device.

    With masks converted by :func:`mask_from_torch`, the outputs and per-head weights equal
    PyTorch's (``need_weights=True, average_attn_weights=False``) to float tolerance.

    Raises:
        TypeError: for a module type that has no converter.
        ValueError: for options qkv does not implement (``add_bias_kv``, ``add_zero_attn``).

    Example:
        >>> import torch, qkv
        >>> reference = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
        >>> attention = qkv.from_torch(reference)
        >>> x = torch.randn(2, 5, 16)
        >>> torch.allclose(attention(x)[0], reference(x, x, x)[0], atol=1e-6)
        True
    """
    converter = _CONVERTERS.get(type(module))
    if converter is None:
        supported = ", ".join(f"torch.nn.{t.__name__}" for t in _CONVERTERS)
        raise TypeError(f"from_torch cannot convert {type(module).__name__}; supported: {supported}")
    converted = converter(module)
    reference = next(module.parameters(), None)
    if reference is not None:
        converted = converted.to(dtype=reference.dtype, device=reference.device)
    return converted.train(module.training)


def mask_from_torch(
    key_padding_mask: Tensor | None = None,
    attn_mask: Tensor | None = None,
    *,
    num_heads: int | None = None,
) -> Tensor | None:
    """Turn ``torch.nn.MultiheadAttention``'s masks into one qkv mask for ``(B, H, T, S)``.

    Boolean PyTorch masks mean ``True`` = masked out; they are inverted. A float ``attn_mask`` is
    additive in both libraries and kept; padding then becomes ``-inf`` in it.

    Args:
        key_padding_mask: ``(B, S)``, ``True`` = padding.
        attn_mask: ``(T, S)`` or ``(B·H, T, S)`` (the latter needs ``num_heads``).
        num_heads: H, to unflatten a 3-D ``attn_mask``.

    Returns:
        A boolean mask (``True`` = may attend), or a float one if ``attn_mask`` is float, that
        broadcasts to ``(B, H, T, S)``; ``None`` if both are ``None``.

    Example:
        >>> import torch
        >>> padding = torch.tensor([[False, False, True]])              # PyTorch: True = pad
        >>> mask_from_torch(key_padding_mask=padding)[0, 0]
        tensor([[ True,  True, False]])
    """
    padding = None
    if key_padding_mask is not None:
        check_tensor("key_padding_mask", key_padding_mask)
        if key_padding_mask.dim() != 2:
            raise ValueError(
                f"key_padding_mask must have shape (B, S), got {shape_str(key_padding_mask.shape)}"
            )
        if key_padding_mask.dtype != torch.bool:
            raise TypeError(
                f"key_padding_mask must be boolean (True = padding), got {key_padding_mask.dtype}"
            )
        padding = ~key_padding_mask[:, None, None, :]                   # (B, 1, 1, S)
    attention = None
    if attn_mask is not None:
        check_tensor("attn_mask", attn_mask)
        if attn_mask.dim() == 3:
            if num_heads is None:
                raise ValueError("a 3-D attn_mask (B·H, T, S) needs num_heads to unflatten it")
            attn_mask = attn_mask.unflatten(0, (-1, num_heads))         # (B, H, T, S)
        elif attn_mask.dim() != 2:
            raise ValueError(
                f"attn_mask must have shape (T, S) or (B·H, T, S), got {shape_str(attn_mask.shape)}"
            )
        attention = ~attn_mask if attn_mask.dtype == torch.bool else attn_mask
    if attention is not None and attention.is_floating_point() and padding is not None:
        return torch.where(padding, attention, float("-inf"))           # (B, ·, T, S)
    if attention is not None and attention.is_floating_point():
        return attention
    return combine_masks(padding, attention)


def _convert_multihead_attention(source: nn.MultiheadAttention) -> MultiHeadAttention:
    if source.bias_k is not None or source.add_zero_attn:
        raise ValueError(
            "from_torch does not support MultiheadAttention with add_bias_kv=True or "
            "add_zero_attn=True (extra key/value positions are not part of the paper's attention)"
        )
    has_bias = source.out_proj.bias is not None
    target = MultiHeadAttention(
        source.embed_dim,
        source.num_heads,
        kv_dim=source.kdim,
        value_dim=source.vdim,
        bias=has_bias,
        dropout=source.dropout,
    )
    if source._qkv_same_embed_dim:
        w_q, w_k, w_v = source.in_proj_weight.chunk(3)
    else:
        w_q, w_k, w_v = source.q_proj_weight, source.k_proj_weight, source.v_proj_weight
    with torch.no_grad():
        target.query_proj.weight.copy_(w_q)
        target.key_proj.weight.copy_(w_k)
        target.value_proj.weight.copy_(w_v)
        target.output_proj.weight.copy_(source.out_proj.weight)
        if has_bias:
            b_q, b_k, b_v = source.in_proj_bias.chunk(3)
            target.query_proj.bias.copy_(b_q)
            target.key_proj.bias.copy_(b_k)
            target.value_proj.bias.copy_(b_v)
            target.output_proj.bias.copy_(source.out_proj.bias)
    return target


_CONVERTERS: dict[type[nn.Module], Callable[[nn.Module], nn.Module]] = {
    nn.MultiheadAttention: _convert_multihead_attention,
}
