"""Gradient methods on the token embeddings: gradient × input and integrated gradients.

Both differentiate the subject's target score with respect to the *token embeddings* of every
side — the ``nn.Embedding`` outputs, before any scaling, positions or norm are applied
(:meth:`~qkv.explain.Subject.score_from_embeddings`) — with Captum
(:class:`captum.attr.InputXGradient`, :class:`captum.attr.IntegratedGradients`). An attribution
is a vector ``(T_side, E)`` per token; a token's score is its **sum over E** (``reduce="sum"``,
the default: signed, and the scores of integrated gradients then add up to
``f(x) − f(baseline)``) or its L2 norm (``reduce="norm"``: unsigned, how much, not which way).

Shape letters: ``N`` tokens of all sides, ``T_side`` tokens of one side, ``E`` model dim,
``K`` inputs in a batch.

The score differentiated (``output``) is the target's **logit** by default: a probability
saturates (its gradient vanishes where the model is sure, so a confident prediction gets
near-zero gradients everywhere), and the logit is what the last layer computes linearly, so
gradient × input and the completeness of integrated gradients speak of the model's own evidence
for the target. ``"probability"`` and ``"log_probability"`` are there for comparison with
faithfulness scores (which are probabilities). A :class:`~qkv.explain.Similarity` target's score
is the cosine whatever ``output`` says.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from qkv.explain.attribution import Attribution, register
from qkv.explain.subject import SCORES, Subject, eval_mode, token_embedding_module

__all__ = ["gradient_x_input", "integrated_gradients", "REDUCTIONS", "BASELINES"]

REDUCTIONS = ("sum", "norm")
BASELINES = ("zeros", "pad")


@register("grad-input")
def gradient_x_input(subject: Subject, *, output: str = "logit", reduce: str = "sum"
                     ) -> Attribution:
    """Gradient × input on the token embeddings: ``a_i = Σ_E x_i ⊙ ∂f/∂x_i``.

    The first-order Taylor term of the target score in each token's embedding (Shrikumar,
    Greenside, Shcherbina & Kundaje, 2016, "Not Just a Black Box: Learning Important Features
    Through Propagating Activation Differences"; the gradient itself as a saliency map:
    Simonyan, Vedaldi & Zisserman, 2014, "Deep Inside Convolutional Networks: Visualising Image
    Classification Models and Saliency Maps"). Computed with :class:`captum.attr.InputXGradient`.

    Args:
        subject: what to explain.
        output: the score differentiated: ``"logit"`` (default, see the module docstring),
            ``"probability"`` or ``"log_probability"``.
        reduce: ``"sum"`` over E (signed, default) or ``"norm"`` (L2 over E, unsigned).

    Shape:
        returns scores ``(N,)``; no layers.

    Example:
        >>> import qkv
        >>> from qkv.explain import subject, attribute
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=16,
        ...     num_heads=2, num_layers=1, d_ff=32))
        >>> attribute(subject(model, [1, 5, 6]), "grad-input").scores.shape
        torch.Size([3])
    """
    from captum.attr import InputXGradient

    _check_output(output)
    _check_choice("reduce", reduce, REDUCTIONS)
    inputs = _inputs(subject)
    with eval_mode(subject.model):
        vectors = InputXGradient(_forward(subject, output)).attribute(inputs)
    vectors = _as_tuple(vectors)
    scores = _reduce(vectors, reduce)
    return Attribution("grad-input", subject, scores,
                       details={"output": output, "reduce": reduce})


@register("ig")
def integrated_gradients(subject: Subject, *, steps: int = 50, baseline: str = "zeros",
                         output: str = "logit", reduce: str = "sum",
                         batch_size: int | None = None) -> Attribution:
    """Integrated gradients on the token embeddings, from a baseline to the input.

    ``a_i = (x_i − x'_i) ⊙ ∫₀¹ ∂f(x' + α(x − x'))/∂x_i dα``, summed over E (Sundararajan, Taly &
    Yan, 2017, "Axiomatic Attribution for Deep Networks"), the integral by Captum's
    Gauss–Legendre rule with ``steps`` points (:class:`captum.attr.IntegratedGradients`; the
    steps run as one batch of ``steps`` rows, or of ``batch_size``). *Completeness*: the
    attributions add up to ``f(x) − f(x')``; what is missing is reported.

    The baseline ``x'`` replaces every token embedding of every side (positions are still added
    by the model, so the baseline input is "positions, no tokens"): ``"zeros"`` (default), or
    ``"pad"``, the embedding of the model's pad token at every position (for a model with a pad
    id; a trained model's pad embedding is the one it learned for "nothing here").

    Where a LayerNorm reads the token embedding with nothing added to it — a pre-norm model with
    rotary positions, whose first norm sees ``x`` alone — the zeros baseline sits on the norm's
    singular point: ``LayerNorm(αx)`` does not depend on ``α > 0`` except for a jump of width
    about ``√eps / ‖x‖`` at ``α = 0``, which no quadrature rule samples, and completeness fails
    (``completeness_error`` of 10–25 % at 64–1024 steps on a tiny such model). Use
    ``baseline="pad"`` there; ``details["completeness_error"]`` says when it matters.

    Args:
        subject: what to explain.
        steps: integration points (default 50).
        baseline: ``"zeros"`` or ``"pad"``.
        output: ``"logit"`` (default, see the module docstring), ``"probability"`` or
            ``"log_probability"``.
        reduce: ``"sum"`` over E (signed, default; completeness holds for it) or ``"norm"``.
        batch_size: rows per forward pass (Captum's ``internal_batch_size``); default all steps.

    Shape:
        returns scores ``(N,)``; no layers.

    Returns:
        an :class:`~qkv.explain.Attribution` whose ``details`` hold ``delta``
        (``Σ attributions − (f(x) − f(x'))``, Captum's convergence delta), ``completeness_error``
        (``|delta| / |f(x) − f(x')|``; ``None`` where ``f(x) = f(x')``), ``score`` and
        ``baseline_score`` (``f(x)``, ``f(x')``), ``steps``, ``baseline``, ``output``, ``reduce``.

    Raises:
        ValueError: steps below 1, an unknown baseline, output or reduce; ``baseline="pad"`` for
            a model without a pad id.

    Example:
        >>> import qkv
        >>> from qkv.explain import subject, attribute
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=16,
        ...     num_heads=2, num_layers=1, d_ff=32))
        >>> result = attribute(subject(model, [1, 5, 6]), "ig", steps=64)
        >>> result.details["completeness_error"] < 0.01
        True
    """
    from captum.attr import IntegratedGradients

    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int (integration points), got {steps!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    _check_output(output)
    _check_choice("reduce", reduce, REDUCTIONS)
    _check_choice("baseline", baseline, BASELINES)
    inputs = _inputs(subject)
    baselines = _baselines(subject, inputs, baseline)
    forward = _forward(subject, output)
    with eval_mode(subject.model):
        vectors, delta = IntegratedGradients(forward).attribute(
            inputs, baselines=baselines, n_steps=steps, internal_batch_size=batch_size,
            return_convergence_delta=True)
        with torch.no_grad():
            score = float(forward(*inputs)[0])
            baseline_score = float(forward(*baselines)[0])
    vectors = _as_tuple(vectors)
    delta = float(delta.reshape(-1)[0])
    change = score - baseline_score
    error = abs(delta) / abs(change) if abs(change) > 1e-12 else None
    details: dict[str, Any] = {"delta": delta, "completeness_error": error, "score": score,
                               "baseline_score": baseline_score, "steps": steps,
                               "baseline": baseline, "output": output, "reduce": reduce}
    return Attribution("ig", subject, _reduce(vectors, reduce), details=details)


# -- shared pieces ---------------------------------------------------------------------------

def _forward(subject: Subject, output: str):
    """Captum's forward: one ``(K, T_side, E)`` tensor per side → ``(K,)`` scores."""
    def forward(*embeddings: Tensor) -> Tensor:
        return subject.score_from_embeddings(*embeddings, output=output)
    return forward


def _inputs(subject: Subject) -> tuple[Tensor, ...]:
    """Each side's token embeddings ``(1, T_side, E)``, float, leaves Captum can differentiate."""
    return tuple(e.detach().float().requires_grad_() for e in subject.token_embeddings())


def _baselines(subject: Subject, inputs: tuple[Tensor, ...], baseline: str
               ) -> tuple[Tensor, ...]:
    if baseline == "zeros":
        return tuple(torch.zeros_like(x) for x in inputs)
    model = subject.model
    pad_id = getattr(model.config, "pad_id", None)
    if pad_id is None:
        raise ValueError(f"baseline='pad' needs a model with a pad id; this "
                         f"{type(model).__name__} has pad_id None (use baseline='zeros')")
    result = []
    for side, x in zip(subject.sides, inputs):
        module = token_embedding_module(model, side)
        pad = torch.tensor([pad_id], device=x.device)
        with torch.no_grad():
            vector = module(pad).detach().float()                       # (1, E)
        result.append(vector[None].expand_as(x).clone())                # (1, T_side, E)
    return tuple(result)


def _reduce(vectors: tuple[Tensor, ...], reduce: str) -> Tensor:
    """``(1, T_side, E)`` per side → ``(N,)`` token scores, sides concatenated."""
    per_side = [v[0].sum(-1) if reduce == "sum" else v[0].norm(dim=-1) for v in vectors]
    scores = torch.cat(per_side).detach().float().cpu()                 # (N,)
    if not bool(torch.isfinite(scores).all()):
        raise FloatingPointError("the attribution has non-finite scores (NaN or inf): the "
                                 "model's gradient overflowed")
    return scores


def _as_tuple(value) -> tuple[Tensor, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _check_output(output: str) -> None:
    _check_choice("output", output, SCORES)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")

