"""Validation helpers for public boundaries.

Every check raises ``TypeError`` (wrong kind or dtype) or ``ValueError`` (wrong shape or value)
with a message that names the argument, what was expected and what came. None of them uses
``assert``, so they survive ``python -O``.
"""

from __future__ import annotations

import numbers

import torch


def shape_str(shape: torch.Size | tuple[int, ...]) -> str:
    """``(2, 3, 4)`` for a shape, also for 0-d and 1-d shapes."""
    return "(" + ", ".join(str(int(n)) for n in shape) + ")"


def check_tensor(name: str, value: object) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def check_floating(name: str, tensor: object) -> torch.Tensor:
    """A floating-point tensor (fp16, bf16, fp32, fp64)."""
    tensor = check_tensor(name, tensor)
    if not tensor.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor (float32, bfloat16, float16 or float64), "
            f"got dtype {tensor.dtype}"
        )
    return tensor


def check_integer_tensor(name: str, value: object, what: str = "integer tensor") -> torch.Tensor:
    """An integer tensor (not bool, float or complex)."""
    tensor = check_tensor(name, value)
    if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
        raise TypeError(f"{name} must be an {what}, got dtype {tensor.dtype}")
    return tensor


def check_index_range(
    name: str, tensor: torch.Tensor, bound_name: str, bound: int, *, what: str, hint: str = ""
) -> None:
    """Every entry of ``tensor`` lies in ``[0, bound)``, e.g. token ids below the vocab size.
    (One device-to-host read of the min and max; skipped while ``torch.export`` traces, which
    cannot branch on data.)"""
    if tensor.numel() and not torch.compiler.is_exporting():
        low, high = (int(v) for v in torch.aminmax(tensor))
        if low < 0 or high >= bound:
            raise ValueError(
                f"{name} must lie in [0, {bound_name}) = [0, {bound}), got {what} from {low} to "
                f"{high}{hint}"
            )


def check_min_dims(name: str, tensor: torch.Tensor, min_dims: int, layout: str) -> None:
    if tensor.dim() < min_dims:
        raise ValueError(
            f"{name} must have at least {min_dims} dimensions {layout}, "
            f"got shape {shape_str(tensor.shape)}"
        )


def check_same_dtype(name: str, tensor: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if tensor.dtype != ref.dtype:
        raise TypeError(
            f"{name} must have the same dtype as {ref_name} ({ref.dtype}), got {tensor.dtype}"
        )


def check_same_device(name: str, tensor: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if tensor.device != ref.device:
        raise ValueError(
            f"{name} is on {tensor.device} but {ref_name} is on {ref.device}; "
            f"move them to the same device"
        )


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def check_int(name: str, value: object, *, minimum: int) -> int:
    """An integer (Python or NumPy, not bool) that is at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive_int(name: str, value: object) -> int:
    return check_int(name, value, minimum=1)


def check_probability(name: str, value: object) -> float:
    """A probability in [0, 1), as used for dropout."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1), got {type(value).__name__} {value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def broadcasts_to(shape: torch.Size, target: torch.Size) -> bool:
    """Whether a tensor of ``shape`` broadcasts to exactly ``target`` (without growing it)."""
    try:
        return torch.broadcast_shapes(shape, target) == target
    except RuntimeError:
        return False


def broadcast_shape(names: list[str], shapes: list[torch.Size]) -> torch.Size:
    """The broadcast of ``shapes``, or a ValueError naming every argument and its shape."""
    try:
        return torch.broadcast_shapes(*shapes)
    except RuntimeError:
        listed = ", ".join(f"{n} {shape_str(s)}" for n, s in zip(names, shapes))
        raise ValueError(f"leading (batch) dimensions do not broadcast: {listed}") from None
