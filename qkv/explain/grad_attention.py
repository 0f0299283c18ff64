"""Gradient-weighted attention relevance, propagated through the layers (Chefer et al., 2021).

Chefer, Gur & Wolf, 2021, "Generic Attention-model Explainability for Interpreting Bi-Modal and
Encoder-Decoder Transformers" (ICCV). Every attention map is weighted by the gradient of the
target score with respect to it, only the positive part is kept and the heads are averaged::

    Ā = mean_h((∇A ⊙ A)⁺)                                   (T, S), per attention call

and relevance maps, one per pair of sequences, are updated layer by layer, in the order the
layers run. For a translation, ``s`` = the source (encoder) tokens, ``t`` = the target prefix
(decoder) tokens; one stack alone (a classifier, an encoder, a language model) has only ``R^ss``:

* start: ``R^ss = I``, ``R^tt = I``, ``R^ts = 0``; ``R^st`` stays 0 (the encoder never sees the
  target);
* self-attention of the encoder (paper's rule 6): ``R^ss ← R^ss + Ā^ss · R^ss``;
* self-attention of the decoder (rules 6 and 7): ``R^tt ← R^tt + Ā^tt · R^tt``,
  ``R^ts ← R^ts + Ā^tt · R^ts``;
* cross-attention, queries ``t``, keys ``s`` (rule 10): ``R^ts ← R^ts + (R̄^tt)ᵀ · Ā^ts · R̄^ss``,
  where ``R̄ = rownorm(R − I) + I`` (rules 8–9: the self-relevance the identity started with
  is set apart, the rest of each row normalised to sum 1, rows without any left at 0). ``R^ss``
  is the encoder's final map (the keys are the encoder's output). Rule 11
  (``R^tt ← R^tt + Ā^ts · R^st``) adds nothing, since ``R^st = 0``.

The scores are the **target row** of the final maps
(:func:`qkv.explain.attention_layers.readout`, shared with the attention-based methods): the row the
prediction is read from — ``[R^ts ‖ R^tt]`` for a translation, over source then target prefix.
A token's own entry starts at 1 (the identity): the token the prediction is read at (a
language model's last token, a classifier's ``[CLS]``) keeps a score of at least 1.

Shape letters: ``N`` tokens of all sides; ``S`` source (key) tokens, ``T`` query tokens; ``H``
heads; ``L`` layers.
"""

from __future__ import annotations

import torch
from torch import Tensor

from qkv.explain.attribution import Attribution, register
from qkv.explain.attention_layers import attention_stacks, readout
from qkv.explain.capture import Capture, capture
from qkv.explain.subject import SCORES, Subject

__all__ = ["gradient_weighted_attention", "attention_gradients", "weighted_attention"]


@register("grad-attention")
def gradient_weighted_attention(subject: Subject, *, output: str = "logit") -> Attribution:
    """Chefer, Gur & Wolf (2021)'s gradient-weighted attention relevance (see the module
    docstring for the rules of each kind of attention).

    Args:
        subject: what to explain.
        output: the score whose gradient weights the attention: ``"logit"`` (default, as the
            paper: a one-hot on the output before the softmax), ``"probability"`` or
            ``"log_probability"``.

    Shape:
        returns scores ``(N,)``, the target row of the final relevance maps, and layers
        ``(L, N)``, the target row after each layer (a translation: after each *decoder* layer,
        with the encoder's final ``R^ss``; L = the decoder's layers).

    Raises:
        ValueError: an unknown ``output``.

    Example:
        >>> import qkv
        >>> from qkv.explain import subject, attribute
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=16,
        ...     num_heads=2, num_layers=2, d_ff=32))
        >>> result = attribute(subject(model, [1, 5, 6]), "grad-attention")
        >>> result.scores.shape, result.layers.shape                     # (N,), (L, N)
        (torch.Size([3]), torch.Size([2, 3]))
    """
    if output not in SCORES:
        raise ValueError(f"output must be one of {', '.join(map(repr, SCORES))}, got {output!r}")
    embeddings = {side: e.requires_grad_() for side, e in         # a graph even if the
                  zip(subject.sides, subject.token_embeddings())}  # weights are frozen
    captured = capture(subject, output=output, grad=True, embeddings=embeddings)
    steps = captured.steps
    if not steps:
        raise ValueError(f"the {type(subject.model).__name__} ran no attention inside a qkv "
                         f"layer: there is nothing to weight")
    gradients = attention_gradients(captured)
    weighted = {step.name: weighted_attention(step.weights, g).cpu()
                for step, g in zip(steps, gradients)}
    rows = _propagate(subject, captured, weighted)                      # (L, N)
    return Attribution("grad-attention", subject, rows[-1].clone(), layers=rows,
                       details={"output": output})


def attention_gradients(captured: Capture) -> list[Tensor | None]:
    """``∇A = ∂score/∂A`` of every captured step, from the gradient at the step's output.

    Each step's output is ``O = A V`` (row by row; a row without keys is 0), and ``A`` feeds
    nothing else, so ``∂score/∂A = (∂score/∂O) Vᵀ``. Taken this way because the captured
    ``weights`` tensor is not always the one ``O`` was computed from (under a mask the math path
    zeroes rows without keys with a ``torch.where``, a new tensor), whereas ``O`` is what the
    layer reads on. ``None`` where the output did not reach the score.

    Shape:
        returns one ``(1, H, T, S)`` per step (``O (1, H, T, D)``, ``V (1, H, S, D)``)
    """
    outputs = [step.call.steps.output for step in captured.steps]
    grads = torch.autograd.grad(captured.score.sum(), outputs, allow_unused=True)
    return [None if g is None else g.detach().float() @ step.call.value.detach().float()
            .transpose(-2, -1) for step, g in zip(captured.steps, grads)]


def weighted_attention(weights: Tensor, gradient: Tensor | None) -> Tensor:
    """``Ā = mean_h((∇A ⊙ A)⁺)`` of one call of a batch of one.

    Shape:
        ``weights (1, H, T, S)``, ``gradient`` same (``None`` = the map did not reach the
        score: all zeros) → ``(T, S)``
    """
    if gradient is None:
        return torch.zeros(weights.shape[-2:], dtype=torch.float32, device=weights.device)
    return (gradient.detach().float() * weights.detach().float()).clamp(min=0)[0].mean(0)


def _propagate(subject: Subject, captured: Capture, weighted: dict[str, Tensor]) -> Tensor:
    """The relevance rules, layer by layer → the target row after each layer ``(L, N)``."""
    row = readout(subject).float()                                      # (T,)
    encoder, self_attention, cross = attention_stacks(subject, captured)
    if not cross:                                                       # one stack
        T = subject.num_tokens
        R = torch.eye(T)                                                # R^ss (T, T)
        rows = []
        for step in self_attention:
            R = R + weighted[step.name] @ R                             # rule 6
            rows.append(row @ R)                                        # (N,)
        return torch.stack(rows)                                        # (L, N)
    S, T = (int(subject.ids[side].shape[0]) for side in ("source", "target"))
    R_ss, R_tt, R_ts = torch.eye(S), torch.eye(T), torch.zeros(T, S)
    for step in encoder:
        R_ss = R_ss + weighted[step.name] @ R_ss                        # rule 6
    R_ss_bar = _normalised(R_ss)
    rows = []
    for self_step, cross_step in zip(self_attention, cross):            # layer by layer
        A = weighted[self_step.name]                                    # (T, T)
        R_tt, R_ts = R_tt + A @ R_tt, R_ts + A @ R_ts                   # rules 6, 7
        A = weighted[cross_step.name]                                   # (T, S)
        R_ts = R_ts + _normalised(R_tt).T @ A @ R_ss_bar                # rule 10
        rows.append(torch.cat([row @ R_ts, row @ R_tt]))                # (S + T,)
    return torch.stack(rows)                                            # (L, N)


def _normalised(R: Tensor) -> Tensor:
    """``R̄ = rownorm(R − I) + I`` (Chefer et al.'s rules 8–9); rows of ``R − I`` that sum to 0
    stay 0. Shape ``(T, T)`` → ``(T, T)``."""
    identity = torch.eye(R.shape[0])
    rest = R - identity
    sums = rest.sum(-1, keepdim=True)
    return torch.where(sums > 0, rest / sums.clamp(min=1e-12), torch.zeros_like(rest)) + identity
