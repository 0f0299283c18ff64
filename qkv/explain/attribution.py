"""What an attribution method returns, and the registry of methods by name.

Every method is a function ``method(subject, **options) -> Attribution`` registered under its
command-line name (``"rollout"``, ``"ig"``…) with :func:`register`; :func:`attribute` runs one by
name, and :data:`METHODS` lists them. The command line, the views and the faithfulness
benchmark go through the registry, so a new method is one function and one decorator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from qkv._checks import shape_str
from qkv.explain.subject import Subject

__all__ = ["Attribution", "METHODS", "register", "attribute", "method_names"]


@dataclass(frozen=True)
class Attribution:
    """One score per input token: how much each token moved the subject's target.

    Attributes:
        method: the method's registered name, e.g. ``"rollout"``.
        subject: what was explained (its sides, tokens and target).
        scores: ``(N,)``, one per token of the subject's sides concatenated (higher = more
            responsible). Signed for gradient methods, non-negative for attention-based ones.
        layers: ``(L, N)``, the scores after each layer where the method has layers (rollout
            after layer ``l``, raw attention of layer ``l``…), else ``None``; ``scores`` is
            ``layers[-1]`` or a reading of them the method documents.
        details: numbers a method reports beside its scores, e.g. integrated gradients'
            ``{"completeness_error": …}``; JSON-able values.
    """

    method: str
    subject: Subject
    scores: Tensor
    layers: Tensor | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        N = self.subject.num_tokens
        if self.scores.shape != (N,):
            raise ValueError(f"{self.method}: scores must have shape (N,) = ({N},), got "
                             f"{shape_str(self.scores.shape)}")
        if self.layers is not None and (self.layers.dim() != 2 or self.layers.shape[1] != N):
            raise ValueError(f"{self.method}: layers must have shape (L, N) with N = {N}, got "
                             f"{shape_str(self.layers.shape)}")

    def by_side(self) -> dict[str, Tensor]:
        """``{side: (T_side,)}`` scores."""
        return self.subject.split(self.scores)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: method, target, tokens by side, scores by side, per-layer scores, details."""
        subject = self.subject
        tokens = subject.tokens or {side: [str(i) for i in ids.tolist()]
                                    for side, ids in subject.ids.items()}
        return {
            "method": self.method,
            "target": subject.target_name,
            "sides": list(subject.sides),
            "tokens": {side: list(tokens[side]) for side in subject.sides},
            "scores": {side: values.tolist() for side, values in self.by_side().items()},
            "layers": None if self.layers is None else {
                side: values.tolist() for side, values in subject.split(self.layers).items()},
            "details": dict(self.details),
        }


Method = Callable[..., Attribution]
METHODS: dict[str, Method] = {}


def register(name: str) -> Callable[[Method], Method]:
    """Register ``method`` under ``name`` (the ``--method`` of ``qkv explain``)."""
    def decorate(method: Method) -> Method:
        if name in METHODS:
            raise ValueError(f"an attribution method is already registered as {name!r}")
        METHODS[name] = method
        return method
    return decorate


def method_names() -> list[str]:
    """The registered methods' names, in registration order."""
    return list(METHODS)


def attribute(subject: Subject, method: str, **options: Any) -> Attribution:
    """Run the method registered as ``method`` on ``subject``.

    Raises:
        ValueError: an unknown method name (the message lists the known ones).
    """
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose one of "
                         f"{', '.join(METHODS)}")
    return METHODS[method](subject, **options)
