"""Boolean attention masks: ``True`` = the query may attend to the key.

Every helper returns a mask shaped to broadcast against attention scores ``(B, H, T, S)``
(see the shape legend in :mod:`qkv.attention.functional`):

* :func:`padding_mask` and :func:`length_mask` give ``(B, 1, 1, S)``: one row of allowed keys
  per sequence, shared by every head and every query;
* :func:`causal_mask` gives ``(T, S)``: shared by every sequence and head;
* :func:`combine_masks` ANDs any of them into one.
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor

from qkv._checks import check_int, check_tensor, shape_str

__all__ = ["padding_mask", "length_mask", "causal_mask", "combine_masks"]


def padding_mask(ids: Tensor, pad_id: int) -> Tensor:
    """Mask out the padding keys of a batch of padded token ids.

    Args:
        ids: integer token ids, padded with ``pad_id``.
        pad_id: the id of the padding token, an int.

    Shape:
        - ids: ``(B, S)``
        - returns: ``(B, 1, 1, S)``, broadcasts over heads and queries.

    Returns:
        A boolean mask, ``True`` where ``ids != pad_id``.

    Example:
        >>> import torch
        >>> ids = torch.tensor([[5, 7, 9], [4, 0, 0]])
        >>> padding_mask(ids, pad_id=0)[:, 0, 0]
        tensor([[ True,  True,  True],
                [ True, False, False]])
    """
    check_tensor("ids", ids)
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TypeError(f"ids must be an integer tensor of token ids, got dtype {ids.dtype}")
    if ids.dim() != 2:
        raise ValueError(f"ids must have shape (B, S), got {shape_str(ids.shape)}")
    if isinstance(pad_id, bool) or not isinstance(pad_id, numbers.Integral):
        raise TypeError(f"pad_id must be an int (a token id), got {type(pad_id).__name__} "
                        f"{pad_id!r}")
    return (ids != pad_id)[:, None, None, :]                            # (B, 1, 1, S)


def length_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """Mask out the keys past each sequence's length.

    Args:
        lengths: the true length of each sequence.
        max_len: S, the padded length; default ``lengths.max()``. Required for ``lengths`` on
            the ``meta`` device, which have a shape but no values.

    Shape:
        - lengths: ``(B,)``
        - returns: ``(B, 1, 1, S)``, broadcasts over heads and queries.

    Returns:
        A boolean mask, ``True`` at positions ``< lengths[b]``.

    Example:
        >>> import torch
        >>> length_mask(torch.tensor([3, 1]), max_len=4)[:, 0, 0]
        tensor([[ True,  True,  True, False],
                [ True, False, False, False]])
    """
    check_tensor("lengths", lengths)
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be an integer tensor, got dtype {lengths.dtype}")
    if lengths.dim() != 1:
        raise ValueError(f"lengths must have shape (B,), got {shape_str(lengths.shape)}")
    if lengths.device.type == "meta":                                   # a shape, no values
        if max_len is None:
            raise ValueError("lengths on the meta device have no values to take the longest "
                             "of: pass max_len")
        positions = torch.arange(check_int("max_len", max_len, minimum=0), device="meta")
        return (positions[None, :] < lengths[:, None])[:, None, None, :]    # (B, 1, 1, S)
    if lengths.numel() and int(lengths.min()) < 0:
        raise ValueError(f"lengths must be >= 0, got {lengths.tolist()}")
    longest = int(lengths.max()) if lengths.numel() else 0
    if max_len is None:
        max_len = longest
    elif check_int("max_len", max_len, minimum=0) < longest:
        raise ValueError(f"max_len={max_len} is shorter than the longest length {longest}")
    positions = torch.arange(max_len, device=lengths.device)            # (S,)
    return (positions[None, :] < lengths[:, None])[:, None, None, :]    # (B, 1, 1, S)


def causal_mask(T: int, S: int | None = None, *, device: torch.device | str | None = None) -> Tensor:
    """No query attends to a later position ("masked self-attention" in the paper's decoder).

    Queries are the *last* ``T`` of ``S`` positions: query ``i`` sits at position ``S - T + i``
    and may attend keys ``0 … S - T + i``. With ``T == S`` this is the lower triangle; with
    ``T < S`` it is what a decoding step with a key/value cache needs.

    Args:
        T: number of query positions.
        S: number of key positions; default ``T``.
        device: where to build the mask.

    Shape:
        - returns: ``(T, S)``, broadcasts over batch and heads.

    Returns:
        A boolean mask, ``True`` where key position ``≤`` the query's position.

    Example:
        >>> causal_mask(3)
        tensor([[ True, False, False],
                [ True,  True, False],
                [ True,  True,  True]])
        >>> causal_mask(1, 3)  # one new query after two cached keys
        tensor([[True, True, True]])
    """
    T = check_int("T", T, minimum=0)
    S = T if S is None else check_int("S", S, minimum=0)
    ones = torch.ones(T, S, dtype=torch.bool, device=device)
    return torch.tril(ones, diagonal=S - T)                             # (T, S)


def combine_masks(*masks: Tensor | None) -> Tensor | None:
    """AND boolean masks together, broadcasting; ``None`` entries mean "no constraint".

    Args:
        masks: boolean masks (``True`` = may attend), or ``None``.

    Shape:
        - masks: shapes that broadcast together, e.g. ``(B, 1, 1, S)`` and ``(T, S)``
        - returns: their broadcast shape, e.g. ``(B, 1, T, S)``

    Example:
        >>> import torch
        >>> pad = length_mask(torch.tensor([2]), max_len=3)              # (1, 1, 1, 3)
        >>> combine_masks(pad, causal_mask(3), None)[0, 0]              # (1, 1, 3, 3)
        tensor([[ True, False, False],
                [ True,  True, False],
                [ True,  True, False]])

    Returns:
        The combined mask, with the broadcast shape of the inputs, or ``None`` if every input
        is ``None``.
    """
    for i, m in enumerate(masks):
        if m is not None and check_tensor(f"masks[{i}]", m).dtype != torch.bool:
            raise TypeError(f"combine_masks takes boolean masks, masks[{i}] has dtype {m.dtype}")
    present = [m for m in masks if m is not None]
    if not present:
        return None
    for i, m in enumerate(masks):
        if m is not None and m.device != present[0].device:
            raise ValueError(f"masks must be on one device: masks[{i}] is on {m.device} but "
                             f"the first mask is on {present[0].device}")
    try:
        torch.broadcast_shapes(*(m.shape for m in present))
    except RuntimeError:
        shapes = ", ".join(shape_str(m.shape) for m in present)
        raise ValueError(f"masks do not broadcast together: {shapes}") from None
    combined = present[0]
    for m in present[1:]:
        combined = combined & m
    return combined
