"""Edges where other libraries' conventions meet qkv's."""

from qkv.interop.torch_nn import from_torch, mask_from_torch

__all__ = ["from_torch", "mask_from_torch"]
