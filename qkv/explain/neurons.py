"""Where the feed-forward memories are: a layer's :class:`FeedForward` and its neurons' activations.

``FFN(x) = f(x K^T) V + b_2`` (:mod:`qkv.explain.memories`): the *activation* of neuron ``i``,
``m_i = f(x · k_i + b_i)``, is the input of the second linear (``feed_forward.outer``), so one
forward pre-hook on it reads every neuron of a layer at once (:func:`reading_activations`).

Layers are numbered from 0 (``layers[0]``) within the stack the lens reads (a translation's
decoder, :func:`qkv.explain.lens.lens_stack`); :func:`feed_forward` and
:func:`ffn_activations` can also read a translation's encoder (``stack="encoder"``). The
``_check_*`` helpers here validate the counts, layers and neurons every memories module takes.

Shape letters: ``L`` layers, ``T`` positions, ``F`` = ``d_ff`` neurons per layer.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from qkv.explain.lens import _forward, _inputs, lens_stack
from qkv.explain.subject import eval_mode
from qkv.models import LanguageModel, Transformer
from qkv.models.feed_forward import FeedForward

__all__ = ["feed_forward", "ffn_activations", "reading_activations"]


def _stack_layers(model: nn.Module, stack: str | None) -> tuple[str, nn.ModuleList]:
    """``(name, layers)`` of the stack asked for; default the one the lens reads."""
    default = lens_stack(model)
    if stack is None:
        return default.name, default.layers
    if isinstance(model, Transformer):
        if stack == "encoder":
            return "encoder.layers", model.encoder.layers
        if stack == "decoder":
            return default.name, default.layers
        raise ValueError(f"stack must be 'encoder' or 'decoder' for a Transformer, got {stack!r}")
    only = "decoder" if isinstance(model, LanguageModel) else "encoder"
    if stack != only:
        raise ValueError(f"a {type(model).__name__} has one stack, {only!r}; got stack={stack!r}")
    return default.name, default.layers


def feed_forward(model: nn.Module, layer: int, *, stack: str | None = None) -> FeedForward:
    """The feed-forward network of ``layer`` (0-based) of the lens' stack (or ``stack``).

    Raises:
        ValueError: a layer out of range.
        TypeError: a layer whose feed-forward is not qkv's :class:`FeedForward`.
    """
    name, layers = _stack_layers(model, stack)
    _check_index("layer", layer, len(layers), f"the {len(layers)} layers of {name}")
    module = layers[layer].feed_forward
    if not isinstance(module, FeedForward):
        raise TypeError(f"{name}.{layer}.feed_forward must be a qkv FeedForward (inner, "
                        f"activation, outer), got {type(module).__name__}")
    return module


@contextmanager
def reading_activations(modules: Mapping[int, FeedForward],
                        read: Callable[[int, Tensor], None]) -> Iterator[None]:
    """While inside, each forward pass calls ``read(layer, m)`` for every layer of ``modules``
    (``{layer: FeedForward}``), ``m`` its activations (detached), in the order the layers run.
    The hooks are removed on the way out, also when ``read`` raises.

    Shape:
        ``m`` is ``(B, T, F)``
    """
    handles = [module.outer.register_forward_pre_hook(
        lambda _module, args, layer=layer: read(layer, args[0].detach()))
        for layer, module in modules.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def ffn_activations(model: nn.Module, ids: Tensor | Sequence[int], *,
                    source: Tensor | Sequence[int] | None = None,
                    stack: str | None = None) -> Tensor:
    """Every neuron's activation ``m = f(x K^T + b_1)`` at every position, every layer.

    Read by a forward pre-hook on each layer's second linear (``feed_forward.outer``): its
    input is the activation (after dropout, which evaluation mode switches off).

    Args:
        model: a qkv model; ``ids`` / ``source`` as in :func:`qkv.explain.lens.residual_stream`.
        stack: ``"encoder"`` reads a translation's encoder (positions of the source).

    Shape:
        returns ``(L, T, F)``

    Example:
        >>> import torch, qkv
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=16,
        ...     num_heads=2, num_layers=2, d_ff=32))
        >>> ffn_activations(model, [1, 5, 6]).shape
        torch.Size([2, 3, 32])
    """
    ids, source = _inputs(model, ids, source)
    _, layers = _stack_layers(model, stack)
    modules = {index: feed_forward(model, index, stack=stack) for index in range(len(layers))}
    found: dict[int, Tensor] = {}
    with reading_activations(modules, found.__setitem__), eval_mode(model), torch.no_grad():
        _forward(model, ids, source)
    return torch.stack([found[index][0] for index in modules])         # (L, T, F)


# -- checks ------------------------------------------------------------------------------------

def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _check_index(name: str, value: object, size: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if not 0 <= value < size:
        raise ValueError(f"{name} must be in [0, {size}) ({what}), got {value}")
    return int(value)


def _neurons(neurons, F: int, layer: int) -> list[int]:
    if neurons is None:
        return list(range(F))
    chosen = [neurons] if isinstance(neurons, numbers.Integral) else list(neurons)
    if not chosen:
        raise ValueError("neurons must name at least one neuron")
    return [_check_index("neuron", n, F, f"the d_ff = {F} neurons of layer {layer}")
            for n in chosen]
