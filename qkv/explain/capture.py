"""One forward pass of a subject with every attention sublayer laid open, tensors live.

:func:`capture` runs the subject's model once and returns, in the order they ran, one
:class:`AttentionStep` per attention call: the call itself (queries, keys, values, weights… —
:class:`~qkv.attention.multi_head.AttentionCall`, live tensors, so with ``grad=True`` gradients
reach them), the residual stream entering and leaving the sublayer, and the residual wrapper
(its LayerNorm and whether it is pre- or post-norm). Attention-based attributions (rollout, flow,
norm-based, ALTI) and gradient-weighted attention are computed from these steps.

Unlike :func:`qkv.trace`, nothing is copied or detached: this is for computing, not keeping.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from qkv.attention.multi_head import AttentionCall, MultiHeadAttention
from qkv.explain.subject import Subject, eval_mode
from qkv.models import LanguageModel, Transformer
from qkv.models.residual import PostNorm, PreNorm
from qkv.trace.selection import layer_of

__all__ = ["AttentionStep", "Capture", "capture"]


@dataclass(frozen=True)
class AttentionStep:
    """One attention sublayer as it ran.

    Attributes:
        name: the module's dotted name, e.g. ``"decoder.layers.1.cross_attention"``.
        stack: ``"encoder"`` or ``"decoder"`` (an encoder model's and a classifier's layers are
            an encoder; a language model's a decoder).
        layer: the layer index within its stack.
        cross: whether it is cross-attention (queries from the target, keys from the source).
        query_side, key_side: the subject's sides the queries and keys belong to.
        call: what the module computed (``call.steps.weights`` ``(B, H, T, S)``, ``call.value``
            ``(B, H, S, D)``, ``call.module.output_proj`` = W^O…).
        residual: the wrapper around the sublayer: :class:`~qkv.models.residual.PostNorm`
            (``norm(x + attention(x))``) or :class:`~qkv.models.residual.PreNorm`
            (``x + attention(norm(x))``).
        residual_input: the residual stream entering the sublayer ``(B, T, E)``.
        residual_output: the residual stream leaving it ``(B, T, E)``.
    """

    name: str
    stack: str
    layer: int
    cross: bool
    query_side: str
    key_side: str
    call: AttentionCall
    residual: PostNorm | PreNorm
    residual_input: Tensor
    residual_output: Tensor

    @property
    def weights(self) -> Tensor:
        """The attention weights ``(B, H, T, S)``."""
        return self.call.steps.weights

    @property
    def pre_norm(self) -> bool:
        return isinstance(self.residual, PreNorm)


@dataclass(frozen=True)
class Capture:
    """The target's score ``(1,)`` and the attention steps of the forward pass that gave it."""

    score: Tensor
    steps: list[AttentionStep]

    def of(self, stack: str, *, cross: bool = False) -> list[AttentionStep]:
        """The steps of one stack (self- or cross-attention), by layer."""
        return [step for step in self.steps if step.stack == stack and step.cross == cross]


def capture(subject: Subject, *, output: str = "logit", grad: bool = False,
            embeddings: dict[str, Tensor] | None = None) -> Capture:
    """Run ``subject``'s model once on its input (batch of one), laying every attention open.

    Args:
        subject: what to run.
        output: the score returned, as :meth:`Subject.score`.
        grad: keep the graph, so that gradients of the score reach the step's tensors; else no
            graph is built. Under a mask, ``call.steps.weights`` is a copy made after the output
            (empty rows zeroed), so take gradients at ``call.steps.output`` and pull them back
            through ``O = A V`` (as :mod:`qkv.explain.grad_attention` does).
        embeddings: token embeddings to use instead of the ids' (``{side: (1, T_side, E)}``).
    """
    model = subject.model
    steps: list[AttentionStep] = []
    pending: dict[str, dict] = {}
    handles = []
    names = _attention_names(model)
    previous = {name: module.__dict__.get("recorder") for name, module in names.items()}
    for name, module in names.items():
        parent_name, _, attribute = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        residual = getattr(parent, attribute + "_residual", None)
        if not isinstance(residual, (PostNorm, PreNorm)):
            continue                                    # not inside a qkv layer: no residual

        def before(_module, args, name=name):
            pending[name] = {"input": args[0]}

        def after(_module, args, output, name=name, residual=residual):
            record = pending.pop(name)
            stack, cross = _stack_of(model, name), name.endswith("cross_attention")
            query_side, key_side = _sides_of(subject, stack, cross)
            steps.append(AttentionStep(name, stack, layer_of(name) or 0, cross, query_side,
                                       key_side, record["call"], residual, record["input"],
                                       output))

        def recorder(call, name=name):
            pending[name]["call"] = call
            if previous[name] is not None:                # e.g. inside qkv.trace: it records too
                previous[name](call)

        handles.append(residual.register_forward_pre_hook(before))
        handles.append(residual.register_forward_hook(after))
        module.recorder = recorder
    try:
        with eval_mode(model), torch.set_grad_enabled(grad):
            ids = {side: value[None].to(subject.device) for side, value in subject.ids.items()}
            score = subject.score_batch(ids, output=output, embeddings=embeddings)
    finally:
        for handle in handles:
            handle.remove()
        for name, module in names.items():
            module.__dict__.pop("recorder", None)
            if previous[name] is not None:
                module.recorder = previous[name]
    return Capture(score, steps)


def _attention_names(model: nn.Module) -> dict[str, MultiHeadAttention]:
    return {name: module for name, module in model.named_modules()
            if isinstance(module, MultiHeadAttention)}


def _stack_of(model: nn.Module, name: str) -> str:
    if isinstance(model, LanguageModel) or (isinstance(model, Transformer)
                                            and name.startswith("decoder.")):
        return "decoder"
    return "encoder"


def _sides_of(subject: Subject, stack: str, cross: bool) -> tuple[str, str]:
    if "text" in subject.ids:
        return "text", "text"
    if stack == "encoder":
        return "source", "source"
    return "target", "source" if cross else "target"
