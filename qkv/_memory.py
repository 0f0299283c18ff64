"""Large CPU tensors that the operating system backs with huge pages, where it offers them.

The math path of attention returns ``(..., T, S)`` tensors: 512 MiB of weights for 8 heads at
T = S = 4096. A fresh tensor that size is fresh memory, and touching it the first time costs one
page fault per 4 KiB page: on a virtual machine that is more time than the attention's own
arithmetic (benchmarks/README.md, "What the profiles say"). Linux can back memory with 2 MiB
pages instead, 512 times fewer faults, but where ``/sys/kernel/mm/transparent_hugepage/enabled``
is ``madvise`` (the default of Debian and Ubuntu) only for memory that asks for it with
``madvise(MADV_HUGEPAGE)``. :func:`empty` asks, for CPU tensors of 8 MiB or more, before anything
touches them. Where it cannot ask (another OS, huge pages ``never``, ``always`` already, a
tracer), it is ``torch.empty``.

PyTorch does the same for *every* CPU tensor of 2 MiB or more when the environment variable
``THP_MEM_ALLOC_ENABLE=1`` is set before the first allocation; this helper is the targeted form
of it, for the few tensors that need it.
"""

from __future__ import annotations

import ctypes
import functools
import math
import sys

import torch

__all__ = ["empty"]

_HUGE_PAGE = 2 << 20                        # bytes in a transparent huge page (x86-64, arm64)
_MIN_BYTES = 8 << 20                        # below this the faults cost too little to matter
_MADV_HUGEPAGE = 14                         # from <sys/mman.h>, Linux


def empty(shape: tuple[int, ...], *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``torch.empty(shape)``, on huge pages where the OS backs them only on request.

    Example:
        >>> import torch
        >>> empty((2, 3), dtype=torch.float32, device=torch.device("cpu")).shape
        torch.Size([2, 3])
    """
    tensor = torch.empty(shape, dtype=dtype, device=device)
    nbytes = tensor.numel() * tensor.element_size()
    if nbytes >= _MIN_BYTES and device.type == "cpu" and not _tracing():
        madvise = _madvise()
        if madvise is not None:
            start = math.ceil(tensor.data_ptr() / _HUGE_PAGE) * _HUGE_PAGE
            stop = (tensor.data_ptr() + nbytes) // _HUGE_PAGE * _HUGE_PAGE
            if stop > start:
                madvise(start, stop - start, _MADV_HUGEPAGE)   # advice: a failure changes nothing
    return tensor


def _tracing() -> bool:
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


@functools.cache
def _madvise():
    """libc's ``madvise``, where asking for huge pages helps; else ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as file:
            if "[madvise]" not in file.read():              # [always]: no need; [never]: no use
                return None
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise
