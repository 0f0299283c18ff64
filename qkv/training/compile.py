"""Opt-in speed for training: the model's linear layers on oneDNN, and ``torch.compile`` on top.

``compile_model(model)`` changes *how* a model computes, never *what*: the same parameters under
the same names (a checkpoint saved from it loads into a plain model, and back), the same
formulas, the same numbers up to float rounding (the tests pin gradients to 1e-5).

* **oneDNN linear layers** (on by default). On CPU, fp32 ``nn.Linear`` runs on PyTorch's BLAS
  (MKL in the official wheels). On AMD CPUs that BLAS takes no AVX-512 path and reaches about
  half the rate of oneDNN, the other matrix library PyTorch ships (benchmarks/README.md, "What
  the profiles say"). Linear layers are three quarters of a training step, so every
  ``nn.Linear`` of the model computes its forward and both backward products with oneDNN
  (``torch.ops.mkldnn._linear_pointwise``) instead. Each call falls back to ``F.linear`` where
  that product is not available or does not apply: another device, another dtype, autocast,
  an empty input, a tracer.
* **torch.compile** (``inductor=True``, off by default): fuses the elementwise steps (dropout,
  residual adds, LayerNorm, ReLU). It pays on long runs only: compiling the base model takes
  minutes on two cores, and again for each new batch shape until ``dynamic`` shapes kick in.
  Needs a C++ compiler; a model that cannot be compiled trains uncompiled, with a warning.

Example:
    >>> import torch, qkv
    >>> from qkv.training.compile import compile_model
    >>> model = qkv.Transformer(qkv.TransformerConfig(vocab_size=20, d_model=16, num_heads=2,
    ...                                               num_layers=1, d_ff=32))
    >>> model = compile_model(model)
    >>> type(model.output_layer).__name__
    'OneDNNLinear'
    >>> model(torch.tensor([[3, 4, 5]]), torch.tensor([[1, 6]])).shape
    torch.Size([1, 2, 20])
"""

from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = ["compile_model", "OneDNNLinear", "onednn_available"]


def compile_model(model: nn.Module, *, onednn: bool = True, inductor: bool = False,
                  dynamic: bool | None = None) -> nn.Module:
    """Make ``model`` train faster, in place; returns it.

    Args:
        model: any module; its ``nn.Linear`` layers (exactly that class, not subclasses such as
            quantized ones) become :class:`OneDNNLinear`.
        onednn: route the linear layers through oneDNN (where it is available; else nothing
            changes).
        inductor: also ``model.compile(dynamic=dynamic)``: ``torch.compile`` of the module's
            forward, in place, so that parameter and state-dict names stay as they are.
        dynamic: passed to ``torch.compile``; ``None`` (its default) compiles the first batch
            shape as is and the next ones for any shape.

    Returns:
        ``model`` itself.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if onednn and onednn_available():
        for module in model.modules():
            if type(module) is nn.Linear:
                module.__class__ = OneDNNLinear     # same parameters, another forward
    if inductor:
        try:
            model.compile(dynamic=dynamic)
        except Exception as error:                 # no compiler, an unsupported platform…
            warnings.warn(f"torch.compile is not available here ({error}); training uncompiled",
                          RuntimeWarning, stacklevel=2)
    return model


class OneDNNLinear(nn.Linear):
    """``nn.Linear`` whose products (forward and backward) run on oneDNN where they can.

    Made by :func:`compile_model` from an ``nn.Linear`` (its class is swapped; the parameters
    stay). Computes ``x Wᵀ + b`` like its parent, and *is* its parent's forward wherever
    :func:`onednn_available` is false or the input is not a non-empty float32 CPU tensor outside
    autocast and tracing. No double backward (``create_graph=True``) on the oneDNN path.

    Shape:
        ``(..., in_features) → (..., out_features)``
    """

    def forward(self, input: Tensor) -> Tensor:
        if _applies(input, self.weight, self.bias):
            return _OneDNNLinearFunction.apply(input, self.weight, self.bias)
        return F.linear(input, self.weight, self.bias)


class _OneDNNLinearFunction(torch.autograd.Function):
    """``y = x Wᵀ + b`` with ``∂L/∂x = g W``, ``∂L/∂W = gᵀ x``, ``∂L/∂b = Σ g``, each product on
    oneDNN. Shapes: ``x (..., in)``, ``W (out, in)``, ``b (out,)``, ``g (..., out)``."""

    @staticmethod
    def forward(ctx, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        flat = input.reshape(-1, input.shape[-1]).contiguous()          # (N, in)
        ctx.save_for_backward(flat, weight)
        ctx.input_shape, ctx.has_bias = input.shape, bias is not None
        output = _linear(flat, weight, bias)                            # (N, out)
        return output.view(*input.shape[:-1], weight.shape[0])         # (..., out)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        flat, weight = ctx.saved_tensors                                # (N, in), (out, in)
        grad = grad_output.reshape(-1, grad_output.shape[-1]).contiguous()   # (N, out)
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = _linear(grad, weight.t().contiguous(), None)  # (N, in)   g W
            grad_input = grad_input.view(ctx.input_shape)
        if ctx.needs_input_grad[1]:
            grad_weight = _linear(grad.t().contiguous(), flat.t().contiguous(), None)  # gᵀ x
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(dim=0)                                 # (out,)
        return grad_input, grad_weight, grad_bias


def _linear(input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """oneDNN's ``input @ weight.T + bias`` for 2-D ``input (N, in)``, ``weight (out, in)``."""
    return torch.ops.mkldnn._linear_pointwise(input, weight, bias, "none", [], "")


def _applies(input: Tensor, weight: Tensor, bias: Tensor | None) -> bool:
    if not onednn_available() or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    if input.device.type != "cpu" or torch.is_autocast_enabled("cpu") or input.numel() == 0:
        return False
    tensors = (input, weight) if bias is None else (input, weight, bias)
    return all(type(t) in (Tensor, nn.Parameter) and t.dtype == torch.float32 for t in tensors)


@functools.cache
def onednn_available() -> bool:
    """Whether this PyTorch has oneDNN's linear product and it computes ``x Wᵀ + b`` right."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        x, weight, bias = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5)
        return torch.allclose(_linear(x, weight, bias), F.linear(x, weight, bias), atol=1e-5)
    except (AttributeError, RuntimeError):
        return False
