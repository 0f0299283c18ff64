"""Scaled dot-product attention: ``softmax(Q Kᵀ / √d_k) · V``, as a pure function.

Shape legend, used in every docstring and comment of qkv:

    B  batch                    T  query positions          S  key (and value) positions
    H  heads                    D  head dim (d_k)           Dv value head dim (d_v)
    E  model dim (d_model)      ...  any leading dims (often B, H), possibly none

Mask convention (the one convention everywhere in qkv): a boolean mask is ``True`` where a query
*may attend* to a key. A floating-point mask is added to the scaled scores; ``-inf`` in it means
"masked". Masks broadcast to ``(..., T, S)``.

Two paths compute the same function:

* the **math path** (``need_weights=True``) spells out the formula step by step and returns the
  attention weights; :func:`attention_intermediates` returns all of its steps (scores, scaled
  scores, effective mask, weights, output), which is what :func:`qkv.trace` records;
* the **fused path** (``need_weights=False``) calls PyTorch's
  ``torch.nn.functional.scaled_dot_product_attention`` kernel.

They agree to float tolerance (1e-5 in fp32); the test suite proves it under every kind of mask.

Without autograd and dropout (inference, a trace under ``torch.inference_mode()``), the math path
runs the same steps in place (``_in_place_math_path``): one fresh ``(..., T, S)`` tensor per
result returned, none for the steps between. On the fused path, keys that no query may attend
(the end of a long padded input) are dropped before the kernel. Both are pinned to the plain
formula by ``tests/attention/test_math_path_in_place.py``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from qkv import _memory
from qkv._checks import (
    broadcast_shape,
    broadcasts_to,
    check_bool,
    check_floating,
    check_min_dims,
    check_probability,
    check_same_device,
    check_same_dtype,
    check_tensor,
    shape_str,
)
from qkv.attention.masks import causal_mask

__all__ = [
    "scaled_dot_product_attention",
    "attention_intermediates",
    "AttentionIntermediates",
]


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Tensor | None = None,
    *,
    causal: bool = False,
    scale: float | None = None,
    dropout_p: float = 0.0,
    need_weights: bool = False,
) -> tuple[Tensor, Tensor | None]:
    r"""Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V, "Attention Is All You Need", eq. (1).

    Args:
        query: the queries Q.
        key: the keys K; same head dim D as ``query``.
        value: the values V; same number of positions S as ``key``.
        mask: optional; boolean (``True`` = may attend) or floating (added to the scaled scores,
            ``-inf`` = masked). Must broadcast to ``(..., T, S)``.
        causal: if ``True``, query ``i`` may only attend to keys at positions ``≤ i``; combined
            with ``mask`` (both must allow a key). When ``T ≠ S`` the queries are taken to be the
            *last* ``T`` of the ``S`` positions (query ``i`` sits at position ``S - T + i``), which
            is what step-by-step decoding with a key/value cache needs. PyTorch's ``is_causal``
            aligns to the top-left instead; the two agree when ``T == S``.
        scale: multiplier of the scores; default ``1 / √D``.
        dropout_p: dropout probability applied to the weights. Pass ``0.0`` in evaluation.
        need_weights: if ``True``, take the math path and also return the weights; otherwise take
            the fused path and return ``None`` for them. :func:`attention_intermediates` returns
            every step of the math path.

    Shape:
        - query: ``(..., T, D)``
        - key: ``(..., S, D)``
        - value: ``(..., S, Dv)``
        - mask: broadcastable to ``(..., T, S)``
        - output: ``(..., T, Dv)``
        - weights: ``(..., T, S)``

        ``...`` is any number of leading dims, including none (a single ``(T, D)`` sequence);
        the leading dims of query, key and value broadcast together.

    Returns:
        ``(output, weights)``. Each row of ``weights`` sums to 1 over the keys a query may attend.
        A query row whose keys are **all masked** gets **zeros**, in ``output`` and ``weights``,
        on both paths (never NaN, also in gradients). With dropout, ``weights`` are the ones
        applied (dropped and rescaled), so ``weights @ value == output`` always holds. Empty
        sizes are allowed: a leading dim, ``T`` or ``Dv`` of 0 gives empty results, and
        ``S = 0`` (no key at all) gives zeros, by the same rule.

    Non-finite values are not looked for (that would read the data back on every call); they
    propagate and are never turned into a finite answer. A query row that reads a NaN — in its
    own query, in a key or value it may attend, or in an entry of a float mask that does not
    mask it out — gets NaN in ``output`` (and ``weights``), and so does a row with ``+inf`` in
    its float mask. A NaN at a *masked* position may reach its row too (``0 · NaN`` is NaN, and
    the fused kernel adds the mask to the scores); only a row whose keys are all masked is
    certain to be zeros.

    Raises:
        TypeError: a non-tensor, an integer or boolean query/key/value, mismatched dtypes, or an
            integer mask.
        ValueError: fewer than 2 dims, D of query and key differ, S of key and value differ,
            leading dims that do not broadcast, or a mask that does not broadcast to
            ``(..., T, S)``.

    Reference (the math path, without the all-masked-row rule)::

        scores = query @ key.transpose(-2, -1) * scale      # (..., T, S)
        scores = scores.masked_fill(~mask, float("-inf"))   # boolean mask
        weights = scores.softmax(dim=-1)                    # (..., T, S)
        output = weights @ value                            # (..., T, Dv)

    Example:
        >>> import torch, qkv
        >>> q, k, v = torch.randn(2, 4, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 3)
        >>> out, w = qkv.scaled_dot_product_attention(q, k, v, need_weights=True)
        >>> out.shape, w.shape
        (torch.Size([2, 4, 3]), torch.Size([2, 4, 6]))
        >>> torch.allclose(w.sum(-1), torch.ones(2, 4))
        True
    """
    batch_shape = _check_qkv(query, key, value)
    T, S = query.shape[-2], key.shape[-2]
    scale = _check_scale(scale, query.shape[-1])
    dropout_p = check_probability("dropout_p", dropout_p)
    causal = check_bool("causal", causal)
    need_weights = check_bool("need_weights", need_weights)
    mask = _check_mask(mask, query, batch_shape, T, S)

    if causal and T == 1:
        # One query sits at the last position (bottom-right alignment) and may see every key:
        # the causal mask is all True. Step-by-step decoding lands here on every step.
        causal = False
    if causal and mask is None and T == S and not need_weights:
        # Plain causal self-attention: the kernel's own flag skips the masked half instead of
        # materialising a (T, S) mask, and no row is ever empty.
        output = _fused_path(query, key, value, batch_shape, mask=None, is_causal=True,
                             scale=scale, dropout_p=dropout_p)
        return output, None
    if need_weights and _in_place_applies(query, key, value, mask, dropout_p):
        if causal:
            mask = _with_causal(mask, T, S, query.device)
        _, _, weights, output = _in_place_math_path(query, key, value, mask, scale,
                                                    causal=causal, keep_scores=False)
        return output, weights
    if need_weights:
        steps = _intermediates(query, key, value, mask, causal, scale, dropout_p)
        return steps.output, steps.weights
    if causal:
        mask = _with_causal(mask, T, S, query.device)
    key, value, mask = _without_unseen_keys(key, value, mask)
    # Rows with no key left would be softmax over nothing (0/0). Open them up so every step stays
    # finite (also in backward), then zero them at the end: the documented all-masked rule.
    mask, empty_rows = _open_empty_rows(mask)
    output = _fused_path(query, key, value, batch_shape, mask=mask, is_causal=False,
                         scale=scale, dropout_p=dropout_p)
    if empty_rows is not None and output.requires_grad:
        output = torch.where(empty_rows, 0.0, output)                   # (..., T, Dv)
    elif empty_rows is not None:
        output.masked_fill_(empty_rows, 0.0)                            # no copy without autograd
    return output, None


@dataclass(frozen=True)
class AttentionIntermediates:
    """Every step of ``softmax(Q Kᵀ / √d_k) V`` on the math path, as computed.

    Attributes:
        scores: raw ``Q Kᵀ``, ``(..., T, S)``.
        scale: the multiplier of the scores (``1 / √D`` by default).
        scaled_scores: ``scores · scale``, ``(..., T, S)``, before any mask.
        mask: the effective boolean mask, broadcastable to ``(..., T, S)``; ``True`` = may attend.
            It combines the given mask with the causal one; a row that allows no key is all
            ``False``, and gets zero weights and a zero output (the all-masked rule).
        bias: the finite part of a floating mask (``-inf`` entries set to 0), added to
            ``scaled_scores`` before the softmax, broadcastable to ``(..., T, S)``; ``None`` for a
            boolean mask or none.
        weights: ``(..., T, S)``, the weights applied (after dropout, if any).
        output: ``weights @ value``, ``(..., T, Dv)``.

    So that, for every row with an allowed key::

        logits = (scaled_scores + bias).masked_fill(~mask, -inf)
        weights == logits.softmax(-1)          # without dropout
        output == weights @ value
    """

    scores: Tensor
    scale: float
    scaled_scores: Tensor
    mask: Tensor
    bias: Tensor | None
    weights: Tensor
    output: Tensor


def attention_intermediates(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Tensor | None = None,
    *,
    causal: bool = False,
    scale: float | None = None,
    dropout_p: float = 0.0,
) -> AttentionIntermediates:
    r""":func:`scaled_dot_product_attention` on the math path, returning every intermediate.

    Its ``output`` and ``weights`` are exactly those of ``scaled_dot_product_attention(...,
    need_weights=True)``; arguments and checks are the same.

    Args:
        query, key, value, mask, causal, scale, dropout_p: as in
            :func:`scaled_dot_product_attention`.

    Shape:
        - query: ``(..., T, D)``; key: ``(..., S, D)``; value: ``(..., S, Dv)``
        - scores, scaled_scores, weights: ``(..., T, S)``
        - mask (returned): boolean, broadcastable to ``(..., T, S)``
        - output: ``(..., T, Dv)``

    Returns:
        An :class:`AttentionIntermediates`.

    Example:
        >>> import torch
        >>> q, k, v = torch.randn(2, 3, 8), torch.randn(2, 3, 8), torch.randn(2, 3, 4)
        >>> steps = attention_intermediates(q, k, v, causal=True)
        >>> steps.mask.tolist()                                         # True = may attend
        [[True, False, False], [True, True, False], [True, True, True]]
        >>> logits = steps.scaled_scores.masked_fill(~steps.mask, float("-inf"))
        >>> torch.allclose(logits.softmax(-1), steps.weights)
        True
        >>> torch.allclose(steps.weights @ v, steps.output)
        True
    """
    batch_shape = _check_qkv(query, key, value)
    T, S = query.shape[-2], key.shape[-2]
    scale = _check_scale(scale, query.shape[-1])
    dropout_p = check_probability("dropout_p", dropout_p)
    causal = check_bool("causal", causal)
    mask = _check_mask(mask, query, batch_shape, T, S)
    return _intermediates(query, key, value, mask, causal, scale, dropout_p)


def _intermediates(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Tensor | None,
    causal: bool,
    scale: float,
    dropout_p: float,
) -> AttentionIntermediates:
    """The math path for checked inputs, with the causal mask and the all-masked-row rule."""
    T, S = query.shape[-2], key.shape[-2]
    if causal:
        mask = _with_causal(mask, T, S, query.device)
    if _in_place_applies(query, key, value, mask, dropout_p):
        scores, scaled_scores, weights, output = _in_place_math_path(
            query, key, value, mask, scale, causal=causal, keep_scores=True)
    else:
        # Rows with no key left would be softmax over nothing (0/0). Open them up so every step
        # stays finite (also in backward), then zero them at the end: the all-masked rule.
        opened, empty_rows = _open_empty_rows(mask)
        scores, scaled_scores, weights, output = _math_path(query, key, value, opened, scale,
                                                            dropout_p)
        if empty_rows is not None:
            output = torch.where(empty_rows, 0.0, output)               # (..., T, Dv)
            weights = torch.where(empty_rows, 0.0, weights)             # (..., T, S)
    if mask is None:
        allowed = torch.ones(T, S, dtype=torch.bool, device=query.device)   # (T, S)
        bias = None
    elif mask.dtype == torch.bool:
        allowed, bias = mask, None                                      # (..., T, S)
    else:
        allowed = mask != float("-inf")                                 # (..., T, S)
        bias = mask.masked_fill(~allowed, 0.0)                          # (..., T, S)
    return AttentionIntermediates(scores=scores, scale=scale, scaled_scores=scaled_scores,
                                  mask=allowed, bias=bias, weights=weights, output=output)


def _math_path(
    query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, scale: float, dropout_p: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The formula, one step per line.

    Returns ``(scores (..., T, S), scaled_scores (..., T, S), weights (..., T, S),
    output (..., T, Dv))``.

    bf16/fp16 inputs are computed in float32 (as fused kernels accumulate) and the results cast
    back, so the path that shows the numbers is never the less accurate one.
    """
    dtype = query.dtype
    compute = torch.promote_types(dtype, torch.float32)
    query, key, value = query.to(compute), key.to(compute), value.to(compute)
    if mask is not None and mask.is_floating_point():
        mask = mask.to(compute)
    # The scores take every leading dim, also those only the value (or the mask) has, so that
    # the weights are (..., T, S) as documented and dropout draws per element as the kernel does.
    lead = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    T, S = query.shape[-2], key.shape[-2]
    scores = (query @ key.transpose(-2, -1)).expand(*lead, T, S)       # (..., T, S)   Q Kᵀ
    scaled_scores = scores * scale                                      # (..., T, S)   / √d_k
    logits = scaled_scores
    if mask is not None and mask.dtype == torch.bool:
        logits = logits.masked_fill(~mask, float("-inf"))               # (..., T, S)
    elif mask is not None:
        logits = logits + mask                                          # (..., T, S)
    weights = torch.softmax(logits, dim=-1)                             # (..., T, S)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)                       # (..., T, S)
    output = weights @ value                                            # (..., T, Dv)
    return scores.to(dtype), scaled_scores.to(dtype), weights.to(dtype), output.to(dtype)


def _in_place_applies(
    query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, dropout_p: float
) -> bool:
    """Whether :func:`_in_place_math_path` may stand in for :func:`_math_path`.

    It writes its steps in place, which autograd cannot follow, and draws no dropout; under a
    tracer (``torch.jit.trace``, ``torch.compile``, ``torch.export``) the graph keeps the
    formula. Everywhere else it gives the same numbers (to float rounding), faster.
    """
    tensors = (query, key, value) if mask is None else (query, key, value, mask)
    if dropout_p > 0.0 or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    if any(type(t) is not Tensor for t in tensors):                    # subclasses, fakes
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


def _in_place_math_path(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Tensor | None,
    scale: float,
    *,
    causal: bool,
    keep_scores: bool,
) -> tuple[Tensor | None, Tensor | None, Tensor, Tensor]:
    """:func:`_math_path` without autograd or dropout: the same steps, fewer tensors.

    Each ``(..., T, S)`` result is a fresh tensor (:func:`qkv._memory.empty`: on huge pages where
    the OS offers them), written by the step that makes it; the steps after it — scale, mask,
    softmax, the all-masked rule — run on it in place. So ``need_weights=True`` makes one
    ``(T, S)`` tensor (the weights) instead of four, and ``keep_scores`` three (scores, scaled
    scores, weights): the ones returned. Few, large calls: on a busy machine every call costs
    (benchmarks/README.md), which is why this is not done in blocks of rows.

    Args:
        mask: as checked, combined with the causal one if any (``_with_causal``).
        causal: whether ``mask`` holds the causal mask: then ``weights @ V`` skips the keys
            after each quarter's last query, whose weights are 0 (:func:`_causal_product`).
        keep_scores: also return ``scores`` and ``scaled_scores``; else they are ``None``.

    Returns ``(scores, scaled_scores, weights, output)``, shaped as :func:`_math_path`'s.
    """
    dtype = query.dtype
    compute = torch.promote_types(dtype, torch.float32)
    lead = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    T, S, D, Dv = query.shape[-2], key.shape[-2], query.shape[-1], value.shape[-1]
    N = math.prod(lead)
    # Leading dims flattened to one batch dim N for the matrix products.
    q = query.to(compute).expand(*lead, T, D).reshape(N, T, D)          # (N, T, D)
    k_t = key.to(compute).expand(*lead, S, D).reshape(N, S, D).mT       # (N, D, S)
    v = value.to(compute).expand(*lead, S, Dv).reshape(N, S, Dv)        # (N, S, Dv)
    if mask is not None and mask.is_floating_point():
        mask = mask.to(compute)
    device = query.device
    weights = _memory.empty((N, T, S), dtype=compute, device=device)   # (N, T, S)
    scores = scaled_scores = None
    if keep_scores:
        scores = _memory.empty((N, T, S), dtype=compute, device=device)
        torch.bmm(q, k_t, out=scores)                                   # Q Kᵀ
        scaled_scores = _memory.empty((N, T, S), dtype=compute, device=device)
        torch.mul(scores, scale, out=scaled_scores)                     # / √d_k
        weights.copy_(scaled_scores)
    else:
        torch.bmm(q, k_t, out=weights)                                  # Q Kᵀ
        weights.mul_(scale)                                             # / √d_k
    logits = weights.view(*lead, T, S)          # the scaled scores, made the weights in place
    if mask is not None and mask.dtype == torch.bool:
        logits.masked_fill_(~mask, float("-inf"))
    elif mask is not None:
        logits.add_(mask)
    torch.softmax(weights, dim=-1, out=weights)                         # (N, T, S)
    empty_rows = None
    if mask is not None:
        # The all-masked rule. Reading one bool per row back spares two passes when none is.
        allowed = mask if mask.dtype == torch.bool else mask != float("-inf")
        empty_rows = ~allowed.any(dim=-1, keepdim=True)                 # (..., T, 1)
        if not empty_rows.any():
            empty_rows = None
    if empty_rows is not None:
        weights.view(*lead, T, S).masked_fill_(empty_rows, 0.0)
    if causal and T >= _CAUSAL_PRODUCT_FROM:
        output = _causal_product(weights, v)                            # (N, T, Dv)  weights @ V
    else:
        output = torch.bmm(weights, v)                                  # (N, T, Dv)  weights @ V
    if empty_rows is not None:
        output.view(*lead, T, Dv).masked_fill_(empty_rows, 0.0)
    weights, output = weights.view(*lead, T, S), output.view(*lead, T, Dv)
    if keep_scores:
        scores = scores.view(*lead, T, S).to(dtype)
        scaled_scores = scaled_scores.view(*lead, T, S).to(dtype)
    return scores, scaled_scores, weights.to(dtype), output.to(dtype)


# Queries from which the math path's causal `weights @ V` goes by quarters (below, one product
# is quicker than four).
_CAUSAL_PRODUCT_FROM = 256


def _causal_product(weights: Tensor, value: Tensor, parts: int = 4) -> Tensor:
    """``weights @ value`` for causal weights, by ``parts`` blocks of query rows: a block reads
    only the keys up to its last query's position (the weights after it are 0), which spares
    3/8 of the product for 4 parts. Shapes: ``(N, T, S) @ (N, S, Dv) → (N, T, Dv)``."""
    T, S = weights.shape[-2:]
    bounds = [T * part // parts for part in range(parts + 1)]
    blocks = []
    for start, stop in zip(bounds, bounds[1:]):
        end = min(S, max(0, stop + S - T))                              # bottom-right aligned
        blocks.append(torch.bmm(weights[:, start:stop, :end], value[:, :end]))
    return torch.cat(blocks, dim=1)


def _fused_path(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    batch_shape: torch.Size,
    *,
    mask: Tensor | None,
    is_causal: bool,
    scale: float,
    dropout_p: float,
) -> Tensor:
    """PyTorch's fused kernel. Returns ``output (..., T, Dv)``."""
    # Not every SDPA backend broadcasts leading dims: expand() them (a view) where they differ.
    if not query.shape[:-2] == key.shape[:-2] == value.shape[:-2]:
        query = query.expand(*batch_shape, *query.shape[-2:])           # (..., T, D)
        key = key.expand(*batch_shape, *key.shape[-2:])                 # (..., S, D)
        value = value.expand(*batch_shape, *value.shape[-2:])           # (..., S, Dv)
    return F.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale
    )


def _with_causal(mask: Tensor | None, T: int, S: int, device: torch.device) -> Tensor:
    """``mask`` combined with the causal mask (bottom-right aligned). Shape ``(..., T, S)``."""
    allowed = causal_mask(T, S, device=device)                          # (T, S)
    if mask is None:
        return allowed
    if mask.dtype == torch.bool:
        return mask & allowed
    return mask.masked_fill(~allowed, float("-inf"))


# Keys from which on the fused path looks for keys no query may see (below, the look costs more
# than it can save).
_UNSEEN_KEYS_FROM = 1024


def _without_unseen_keys(
    key: Tensor, value: Tensor, mask: Tensor | None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Key, value and mask without the last keys that no query may attend, if there are such.

    A batch right-padded to a length longer than its longest sequence, for instance: the fused
    kernel would score those keys only to mask them. Dropping them changes no result (their
    weights are exactly 0, and so are their gradients). Looked for on CPU only, outside tracers,
    for at least ``_UNSEEN_KEYS_FROM`` keys: the look reads the mask back to the host, which
    costs an accelerator a synchronisation and a tracer a graph break.
    """
    S = key.shape[-2]
    if (mask is None or S < _UNSEEN_KEYS_FROM or mask.shape[-1] != S or mask.device.type != "cpu"
            or torch.jit.is_tracing() or torch.compiler.is_compiling()):
        return key, value, mask
    allowed = mask if mask.dtype == torch.bool else mask != float("-inf")
    seen = allowed.reshape(-1, S).any(dim=0)                            # (S,)
    if not bool(seen[-1]) and bool(seen.any()):
        keep = int(seen.nonzero()[-1]) + 1
        return key[..., :keep, :], value[..., :keep, :], mask[..., :keep]
    return key, value, mask


def _open_empty_rows(mask: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """Let rows that allow no key attend everywhere; return ``(mask, empty_rows (..., T, 1))``.

    Done for every mask, without first asking whether any row is empty: the answer would
    branch on data (a device-to-host sync on accelerators, a graph break under torch.compile),
    and both steps are cheap next to attention itself.
    """
    if mask is None:
        return None, None
    allowed = mask if mask.dtype == torch.bool else mask != float("-inf")
    empty_rows = ~allowed.any(dim=-1, keepdim=True)                     # (..., T, 1)
    if mask.dtype == torch.bool:
        return mask | empty_rows, empty_rows
    return mask.masked_fill(empty_rows, 0.0), empty_rows


def _check_qkv(query: Tensor, key: Tensor, value: Tensor) -> torch.Size:
    """Validate query/key/value; return their broadcast leading dims ``...``."""
    for name, tensor in (("query", query), ("key", key), ("value", value)):
        check_floating(name, tensor)
    check_same_dtype("key", key, "query", query)
    check_same_dtype("value", value, "query", query)
    check_same_device("key", key, "query", query)
    check_same_device("value", value, "query", query)
    check_min_dims("query", query, 2, "(..., T, D)")
    check_min_dims("key", key, 2, "(..., S, D)")
    check_min_dims("value", value, 2, "(..., S, Dv)")
    if query.shape[-1] == 0:
        raise ValueError(f"query must have a head dim D > 0, got shape {shape_str(query.shape)}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"query and key must have the same head dim D (last dim): query has shape "
            f"{shape_str(query.shape)} (..., T, D), key has shape {shape_str(key.shape)} (..., S, D)"
        )
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(
            f"key and value must have the same number of positions S (second-to-last dim): key "
            f"has shape {shape_str(key.shape)} (..., S, D), value has shape "
            f"{shape_str(value.shape)} (..., S, Dv)"
        )
    return broadcast_shape(
        ["query", "key", "value"], [query.shape[:-2], key.shape[:-2], value.shape[:-2]]
    )


def _check_mask(
    mask: Tensor | None, query: Tensor, batch_shape: torch.Size, T: int, S: int
) -> Tensor | None:
    """Validate ``mask``; return it boolean, or floating in the query's dtype."""
    if mask is None:
        return None
    check_tensor("mask", mask)
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(
            f"mask must be boolean (True = may attend) or floating (added to the scores), "
            f"got dtype {mask.dtype}"
        )
    check_same_device("mask", mask, "query", query)
    expected = torch.Size((*batch_shape, T, S))
    if not broadcasts_to(mask.shape, expected):
        raise ValueError(
            f"mask of shape {shape_str(mask.shape)} does not broadcast to the scores' shape "
            f"(..., T, S) = {shape_str(expected)} (query {shape_str(query.shape)})"
        )
    if mask.dim() < 2:  # a key row (S,) or a scalar: the kernels want at least (·, S)
        mask = mask.reshape(1, -1) if mask.dim() == 1 else mask.reshape(1, 1)
    return mask if mask.dtype == torch.bool else mask.to(query.dtype)


def _check_scale(scale: object, head_dim: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(head_dim)
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a real number or None, got {type(scale).__name__}")
    if not math.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale!r}")
    return float(scale)
