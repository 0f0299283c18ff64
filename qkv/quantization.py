"""Int8 weights for inference: a model's linear layers stored in 8 bits, run on PyTorch's kernels.

:func:`quantize` returns a copy of a model whose ``nn.Linear`` layers are :class:`Int8Linear`:
each weight row is stored as int8 with one float scale, ``W ≈ scale[:, None] · W_int8``
(symmetric, per output channel). Two ways to multiply by it:

* ``"int8"`` — **weight-only**: activations stay floating point; the kernel
  (``torch._weight_int8pack_mm``) reads the int8 weights and scales them on the fly. What
  decoding one token at a time needs, whose speed is the weight bytes read per token: a quarter
  of float32's. On CPUs with fast bfloat16 the activations are rounded to bfloat16 for the
  product (the kernel's fast path); elsewhere they stay float32.
* ``"int8-dynamic"`` — **dynamic**: each input row (token) is also quantized, to int8 with its
  own scale, and the product is an int8 × int8 → int32 GEMM (``torch._int_mm``). What batches
  need, whose speed is the multiply rate. By default the attention projections stay float32
  (see ``attention`` in :func:`quantize`): the feed-forward networks hold two thirds of the
  multiply-adds. (One scale per token, not per call: a call-wide scale
  lets a few large activations flatten all the others — MiniLM's sentence embeddings fell to a
  cosine of 0.98 with it, against 0.99+ per token.)

Both are opt-ins that trade agreement for speed: outputs are no longer equal to float32's, only
close (the tests bound the difference; the benchmarks report tokens, perplexity and cosine).
The embeddings, norms and attention itself stay float32. A quantized model is for inference:
no gradients, no training; :func:`qkv.trace` still records its attention.

Example:
    >>> import torch, qkv
    >>> from qkv.quantization import quantize
    >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=50, d_model=32,
    ...     num_heads=4, num_layers=2, d_ff=64)).eval()
    >>> small = quantize(model, "int8")
    >>> type(small.layers[0].self_attention.query_proj).__name__
    'Int8Linear'
    >>> ids = torch.tensor([[3, 4, 5]])
    >>> bool((small(ids) - model(ids)).abs().max() < 0.1)
    True
"""

from __future__ import annotations

import copy
import functools
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["quantize", "Int8Linear", "MODES"]

MODES = ("int8", "int8-dynamic")


def quantize(model: nn.Module, mode: str = "int8", *, inplace: bool = False,
             attention: bool | None = None) -> nn.Module:
    """A copy of ``model`` (in eval mode) with its ``nn.Linear`` layers replaced by
    :class:`Int8Linear`.

    Args:
        model: any module, typically a :class:`~qkv.LanguageModel` (``"int8"``) or an
            :class:`~qkv.EncoderModel` (``"int8-dynamic"``).
        mode: ``"int8"`` (weight-only) or ``"int8-dynamic"`` (weights and activations); see the
            module docstring for what each trades.
        inplace: replace the layers of ``model`` itself instead of a copy.
        attention: also quantize the projections of every
            :class:`~qkv.attention.MultiHeadAttention` (query, key, value, output). Default:
            yes for ``"int8"``, no for ``"int8-dynamic"``, whose per-token rounding of the
            attention inputs costs the most agreement for the least time (MiniLM's sentence
            embeddings keep a cosine of ≥ 0.997 with fp32 without them, 0.990 with them, for
            ~5% of the time).

    Returns:
        The quantized model, in eval mode. A weight shared by a linear layer and an embedding
        (a tied output layer) is quantized for the linear layer only; the embedding keeps its
        float rows.

    Raises:
        ValueError: an unknown mode.
        TypeError: ``model`` is not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if not inplace:
        model = copy.deepcopy(model)
    if attention is None:
        attention = mode == "int8"
    from qkv.attention.multi_head import MultiHeadAttention

    replacements = [(parent, name, child) for parent in model.modules()
                    if attention or not isinstance(parent, MultiHeadAttention)
                    for name, child in parent.named_children() if type(child) is nn.Linear]
    for parent, name, linear in replacements:
        setattr(parent, name, Int8Linear.from_linear(linear, dynamic=mode == "int8-dynamic"))
    return model.eval()


class Int8Linear(nn.Module):
    """``y = x Wᵀ + b`` with ``W`` stored as int8 rows and one float scale per row.

    Args:
        weight: ``(out, in)`` int8.
        scale: ``(out,)`` float32, so that ``W ≈ scale[:, None] · weight``.
        bias: ``(out,)`` float32 or ``None``.
        dynamic: quantize the input too (int8 × int8 GEMM) instead of keeping it floating.

    Shape:
        ``(..., in) → (..., out)``, in the input's dtype.
    """

    def __init__(self, weight: Tensor, scale: Tensor, bias: Tensor | None, *,
                 dynamic: bool = False) -> None:
        super().__init__()
        if weight.dtype != torch.int8 or weight.dim() != 2:
            raise TypeError(f"weight must be a 2-D int8 tensor, got {weight.dtype} "
                            f"{tuple(weight.shape)}")
        self.out_features, self.in_features = weight.shape
        self.dynamic = dynamic
        self.register_buffer("weight", weight.contiguous())
        self.register_buffer("scale", scale.float().contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self._transposed: Tensor | None = None                         # (in, out), lazily
        self._scale_as: dict[torch.dtype, Tensor] = {}

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, dynamic: bool = False) -> Int8Linear:
        """Symmetric per-row quantization of ``linear``'s weight: ``scale = max|row| / 127``."""
        weight = linear.weight.detach().float()                         # (out, in)
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127         # (out,)
        quantized = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        return cls(quantized, scale, linear.bias, dynamic=dynamic)

    @classmethod
    def concatenate(cls, linears: list[Int8Linear]) -> Int8Linear:
        """One layer computing ``[y_1 | y_2 | …]`` of several on the same input (their rows
        stacked: quantization is per row, so nothing changes)."""
        if len(linears) == 1:
            return linears[0]
        biases = [m.bias if m.bias is not None else m.scale.new_zeros(m.out_features)
                  for m in linears]
        has_bias = any(m.bias is not None for m in linears)
        return cls(torch.cat([m.weight for m in linears]), torch.cat([m.scale for m in linears]),
                   torch.cat(biases) if has_bias else None, dynamic=linears[0].dynamic)

    def dequantized(self) -> Tensor:
        """The float weight ``(out, in)`` this layer stands for."""
        return self.weight.float() * self.scale[:, None]

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"input must have last dim {self.in_features}, got "
                             f"{tuple(x.shape)}")
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features)                          # (M, in)
        if x.device.type != "cpu" or torch.is_grad_enabled() and x.requires_grad:
            bias = None if self.bias is None else self.bias.to(x.dtype)
            y = F.linear(flat, self.dequantized().to(x.dtype), bias)    # reference product
        elif self.dynamic and _int8_matmul_available():
            y = self._dynamic(flat.float())
        else:
            y = self._weight_only(flat)
            if self.bias is not None:
                y = y + self.bias
        return y.to(x.dtype).reshape(*lead, self.out_features)

    def _weight_only(self, flat: Tensor) -> Tensor:
        dtype = _weight_only_dtype()
        scale = self._scale_as.get(dtype)
        if scale is None:
            scale = self._scale_as[dtype] = self.scale.to(dtype)
        product = torch._weight_int8pack_mm(flat.to(dtype).contiguous(), self.weight, scale)
        return product.float()                                          # (M, out)

    def _dynamic(self, flat: Tensor) -> Tensor:
        """int8 activations, one scale per row (token), × int8 weights: an int32 GEMM
        (``torch._int_mm``), then both scales and the bias in one pass."""
        if self._transposed is None:
            self._transposed = self.weight.t().contiguous()             # (in, out)
        scale = flat.abs().amax(dim=-1, keepdim=True).clamp_(min=1e-12).div_(127)   # (M, 1)
        quantized = torch.div(flat, scale).round_().to(torch.int8)      # (M, in)
        product = torch._int_mm(quantized, self._transposed)            # (M, out) int32
        # in place on a float copy: an int32 × float product (type promotion) is ~30× slower
        output = product.to(torch.float32).mul_(scale).mul_(self.scale)
        return output if self.bias is None else output.add_(self.bias)  # (M, out)

    def extra_repr(self) -> str:
        kind = "int8 weights and activations" if self.dynamic else "int8 weights"
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, {kind}")


@functools.cache
def _int8_matmul_available() -> bool:
    """Whether ``torch._int_mm`` runs here and is right (checked once per process)."""
    try:
        generator = torch.Generator().manual_seed(0)
        linear = nn.Linear(32, 8)
        x = torch.randn(4, 32, generator=generator)
        layer = Int8Linear.from_linear(linear, dynamic=True)
        with torch.no_grad():
            got, expected = layer._dynamic(x), F.linear(x, layer.dequantized(), layer.bias)
        return bool(torch.allclose(got, expected, atol=0.05, rtol=0.05))
    except (RuntimeError, AttributeError, NotImplementedError):
        return False


@functools.cache
def _weight_only_dtype() -> torch.dtype:
    """The activation dtype of the weight-only kernel: bfloat16 where it is the fast one (CPUs
    with AVX-512: ``torch._weight_int8pack_mm`` has a vectorized bfloat16 path there), else
    float32. Decided once per process by timing both on a small layer."""
    weight = torch.randint(-127, 128, (1024, 768), dtype=torch.int8)
    scale, x = torch.rand(1024) / 100, torch.randn(1, 768)

    def seconds(dtype: torch.dtype) -> float:
        args = (x.to(dtype), weight, scale.to(dtype))
        torch._weight_int8pack_mm(*args)
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            torch._weight_int8pack_mm(*args)
            best = min(best, time.perf_counter() - start)
        return best

    with torch.no_grad():
        return torch.bfloat16 if seconds(torch.bfloat16) < seconds(torch.float32) else torch.float32
