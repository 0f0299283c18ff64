"""Conversion from ``torch.nn`` modules to qkv modules, and PyTorch masks to qkv masks.

This is one of the edges where other conventions meet qkv's:

* qkv modules are always batch-first; a converted module takes ``(B, T, E)`` whatever the
  PyTorch module's ``batch_first`` was.
* ``torch.nn.MultiheadAttention`` and the ``torch.nn.Transformer*`` modules read a boolean
  ``*key_padding_mask`` / ``*_mask`` as ``True`` = *masked out*; qkv reads ``True`` = *may
  attend*. :func:`mask_from_torch` converts.
* ``torch.nn.TransformerDecoder`` attends to later positions unless given a causal ``tgt_mask``;
  qkv's decoder self-attention is causal unless called with ``causal=False``.

Each supported module type has one converter, registered in ``_CONVERTERS``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qkv._checks import check_positive_int, check_tensor, shape_str
from qkv.attention.masks import combine_masks
from qkv.attention.multi_head import MultiHeadAttention
from qkv.models.feed_forward import FeedForward
from qkv.models.layers import DecoderLayer, EncoderLayer
from qkv.models.residual import PostNorm, PreNorm
from qkv.models.stacks import Decoder, Encoder, EncoderDecoder

__all__ = ["from_torch", "mask_from_torch"]


def from_torch(module: nn.Module) -> nn.Module:
    """Convert a ``torch.nn`` module into the equivalent qkv module, with copied weights.

    Supported (``batch_first`` either way, with or without bias):

    ==================================  ==============================================
    ``torch.nn.MultiheadAttention``     :class:`qkv.MultiHeadAttention` (any ``kdim``/``vdim``)
    ``torch.nn.TransformerEncoderLayer``  :class:`qkv.EncoderLayer`
    ``torch.nn.TransformerDecoderLayer``  :class:`qkv.DecoderLayer`
    ``torch.nn.TransformerEncoder``     :class:`qkv.Encoder`
    ``torch.nn.TransformerDecoder``     :class:`qkv.Decoder`
    ``torch.nn.Transformer``            :class:`qkv.EncoderDecoder`
    ==================================  ==============================================

    Layers keep their norm placement (``norm_first`` → :class:`qkv.PreNorm`, else
    :class:`qkv.PostNorm`), LayerNorm epsilon, dropout and activation (ReLU, GELU or GELU-tanh,
    as a string, a function of ``torch.nn.functional`` or a module).

    Args:
        module: the PyTorch module (or an instance of a subclass of a supported type).

    Shape:
        The converted module is batch-first whatever ``module.batch_first`` was: it takes
        ``(B, T, E)`` where a ``batch_first=False`` source took ``(T, B, E)``.

    Returns:
        A new qkv module (independent of the source) with the source's weights, dtype, device
        and training/eval mode. With masks converted by :func:`mask_from_torch`, its outputs and
        per-head weights equal PyTorch's (``need_weights=True, average_attn_weights=False``) to
        float tolerance — except where a query has no key left at all: PyTorch gives NaN there,
        qkv gives zeros. One default differs: a converted decoder (layer, stack or the decoder
        of ``nn.Transformer``) is causal unless called with ``causal=False``, where PyTorch's
        attends to later positions unless given a causal ``tgt_mask``.

    Raises:
        TypeError: for a module type that has no converter.
        ValueError: for options qkv does not implement (``add_bias_kv``, ``add_zero_attn``, an
            activation other than ReLU or GELU, a custom final norm).

    Example:
        >>> import torch, qkv
        >>> reference = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
        >>> attention = qkv.from_torch(reference)
        >>> x = torch.randn(2, 5, 16)
        >>> torch.allclose(attention(x)[0], reference(x, x, x)[0], atol=1e-6)
        True
    """
    converter = next((_CONVERTERS[t] for t in type(module).__mro__ if t in _CONVERTERS), None)
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

    PyTorch's boolean masks mean ``True`` = masked out; they are inverted. Its float masks are
    added to the scores, as in qkv, and kept. If either mask is float, the result is float (the
    boolean one contributing ``-inf`` where it masks); otherwise it is boolean.

    Args:
        key_padding_mask: ``True`` (or ``-inf``) at padding keys.
        attn_mask: which query may attend which key, for all heads or per head.
        num_heads: H, needed to unflatten a 3-D ``attn_mask``.

    Shape:
        - key_padding_mask: ``(B, S)``
        - attn_mask: ``(T, S)`` or ``(B·H, T, S)``
        - returns: ``(B, 1, 1, S)``, ``(T, S)``, ``(B, H, T, S)`` or their broadcast, which
          broadcasts to ``(B, H, T, S)``

    Returns:
        The mask in qkv's convention (boolean ``True`` = may attend, or additive float), or
        ``None`` if both inputs are ``None``.

    Example:
        >>> import torch
        >>> padding = torch.tensor([[False, False, True]])              # PyTorch: True = pad
        >>> mask_from_torch(key_padding_mask=padding)[0, 0]
        tensor([[ True,  True, False]])
    """
    parts = []
    if key_padding_mask is not None:
        if _checked_mask("key_padding_mask", key_padding_mask).dim() != 2:
            raise ValueError(
                f"key_padding_mask must have shape (B, S), got {shape_str(key_padding_mask.shape)}"
            )
        parts.append(_inverted(key_padding_mask)[:, None, None, :])    # (B, 1, 1, S)
    if attn_mask is not None:
        if _checked_mask("attn_mask", attn_mask).dim() == 3:
            attn_mask = _unflatten_heads(attn_mask, num_heads)          # (B, H, T, S)
        elif attn_mask.dim() != 2:
            raise ValueError(
                f"attn_mask must have shape (T, S) or (B·H, T, S), got {shape_str(attn_mask.shape)}"
            )
        parts.append(_inverted(attn_mask))                              # (T, S) | (B, H, T, S)
    floats = [p for p in parts if p.is_floating_point()]
    if not floats:
        return combine_masks(*parts)
    dtype = floats[0].dtype
    additive = [p if p.is_floating_point() else _additive(p, dtype) for p in parts]
    return additive[0] if len(additive) == 1 else additive[0] + additive[1]


def _checked_mask(name: str, mask: Tensor) -> Tensor:
    check_tensor(name, mask)
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(f"{name} must be boolean (True = masked out) or float, got {mask.dtype}")
    return mask


def _inverted(mask: Tensor) -> Tensor:
    """PyTorch's boolean ``True`` = masked out becomes qkv's ``True`` = may attend."""
    return ~mask if mask.dtype == torch.bool else mask


def _additive(allowed: Tensor, dtype: torch.dtype) -> Tensor:
    """A boolean qkv mask as an additive one: 0 where allowed, -inf where masked."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed, float("-inf"))


def _unflatten_heads(attn_mask: Tensor, num_heads: int | None) -> Tensor:
    """``(B·H, T, S)`` → ``(B, H, T, S)``."""
    if num_heads is None:
        raise ValueError("a 3-D attn_mask (B·H, T, S) needs num_heads to unflatten it")
    num_heads = check_positive_int("num_heads", num_heads)
    if attn_mask.shape[0] % num_heads:
        raise ValueError(
            f"attn_mask of shape {shape_str(attn_mask.shape)} is not (B·H, T, S) for "
            f"num_heads={num_heads}: {attn_mask.shape[0]} is not a multiple of {num_heads}"
        )
    return attn_mask.unflatten(0, (-1, num_heads))


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


def _convert_encoder_layer(source: nn.TransformerEncoderLayer) -> EncoderLayer:
    return EncoderLayer(
        _convert_multihead_attention(source.self_attn),
        _convert_feed_forward(source),
        _convert_residual(source, source.norm1, source.dropout1),
        _convert_residual(source, source.norm2, source.dropout2),
    )


def _convert_decoder_layer(source: nn.TransformerDecoderLayer) -> DecoderLayer:
    return DecoderLayer(
        _convert_multihead_attention(source.self_attn),
        _convert_multihead_attention(source.multihead_attn),
        _convert_feed_forward(source),
        _convert_residual(source, source.norm1, source.dropout1),
        _convert_residual(source, source.norm2, source.dropout2),
        _convert_residual(source, source.norm3, source.dropout3),
    )


def _convert_encoder(source: nn.TransformerEncoder) -> Encoder:
    return Encoder([_convert_encoder_layer(layer) for layer in source.layers],
                   _convert_norm(source.norm))


def _convert_decoder(source: nn.TransformerDecoder) -> Decoder:
    return Decoder([_convert_decoder_layer(layer) for layer in source.layers],
                   _convert_norm(source.norm))


def _convert_transformer(source: nn.Transformer) -> EncoderDecoder:
    return EncoderDecoder(_convert_encoder(source.encoder), _convert_decoder(source.decoder))


def _convert_feed_forward(layer: nn.Module) -> FeedForward:
    """``linear1 → activation → dropout → linear2`` of a PyTorch Transformer layer."""
    feed_forward = FeedForward(
        layer.linear1.in_features,
        layer.linear1.out_features,
        _activation_name(layer.activation),
        dropout=layer.dropout.p,
        bias=layer.linear1.bias is not None,
    )
    feed_forward.inner.load_state_dict(layer.linear1.state_dict())
    feed_forward.outer.load_state_dict(layer.linear2.state_dict())
    return feed_forward


def _convert_residual(layer: nn.Module, norm: nn.LayerNorm, dropout: nn.Dropout) -> nn.Module:
    placement = PreNorm if layer.norm_first else PostNorm
    residual = placement(norm.normalized_shape[0], dropout.p, norm.eps)
    residual.norm = _convert_norm(norm)
    return residual


def _convert_norm(norm: nn.Module | None) -> nn.LayerNorm | None:
    if norm is None:
        return None
    if type(norm) is not nn.LayerNorm or len(norm.normalized_shape) != 1:
        raise ValueError(f"from_torch supports a LayerNorm over the last dim as norm, got {norm}")
    converted = nn.LayerNorm(norm.normalized_shape, eps=norm.eps,
                             elementwise_affine=norm.elementwise_affine,
                             bias=norm.bias is not None)
    converted.load_state_dict(norm.state_dict())
    return converted


def _activation_name(activation: object) -> str:
    """PyTorch layers hold their activation as a function or a module; qkv names it."""
    if activation in (F.relu, torch.relu) or isinstance(activation, nn.ReLU):
        return "relu"
    if activation is F.gelu or (isinstance(activation, nn.GELU) and activation.approximate == "none"):
        return "gelu"
    if isinstance(activation, nn.GELU) and activation.approximate == "tanh":
        return "gelu_tanh"
    raise ValueError(
        f"from_torch supports the feed-forward activations ReLU (F.relu, torch.relu, nn.ReLU) "
        f"and GELU (F.gelu, nn.GELU), got {activation!r}"
    )


_CONVERTERS: dict[type[nn.Module], Callable[[nn.Module], nn.Module]] = {
    nn.MultiheadAttention: _convert_multihead_attention,
    nn.TransformerEncoderLayer: _convert_encoder_layer,
    nn.TransformerDecoderLayer: _convert_decoder_layer,
    nn.TransformerEncoder: _convert_encoder,
    nn.TransformerDecoder: _convert_decoder,
    nn.Transformer: _convert_transformer,
}
