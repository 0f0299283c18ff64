"""Cross-entropy with label smoothing (section 5.4: ε_ls = 0.1).

The target distribution puts ``1 - ε`` on the right token and spreads ``ε`` uniformly over the
whole vocabulary, so the loss is ``(1 - ε) · NLL + ε · mean over v of (−log p_v)``. It "hurts
perplexity, as the model learns to be more unsure, but improves accuracy and BLEU score".
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from qkv._checks import check_probability, shape_str

__all__ = ["label_smoothed_cross_entropy", "Loss"]


class Loss(NamedTuple):
    """Sums over the counted target tokens: the smoothed loss to minimise, the plain negative
    log-likelihood (``exp(nll / tokens)`` is the perplexity), and the token count."""

    loss: Tensor
    nll: Tensor
    tokens: Tensor


def label_smoothed_cross_entropy(logits: Tensor, target: Tensor, *, smoothing: float = 0.1,
                                 ignore_index: int | None = None,
                                 class_weights: Tensor | None = None) -> Loss:
    """Summed label-smoothed loss over the target tokens, the summed NLL, and the token count.

    Args:
        logits: unnormalised scores.
        target: the right token ids; positions equal to ``ignore_index`` (padding) count for
            nothing.
        smoothing: ε, the probability mass spread over the vocabulary.
        class_weights: one weight per class ``(V,)``; each position's smoothed loss is multiplied
            by the weight of its right class (for imbalanced classification). The NLL and the
            count stay unweighted.

    Shape:
        ``logits (..., V)``, ``target (...)`` → three scalars ``()``

    Returns:
        :class:`Loss` ``(loss, nll, tokens)``; divide by ``tokens`` for means.

    Example:
        >>> logits = torch.tensor([[2.0, 0.0, 0.0]])
        >>> loss, nll, n = label_smoothed_cross_entropy(logits, torch.tensor([0]), smoothing=0.1)
        >>> round(nll.item(), 4), n.item()                             # −log softmax(2, 0, 0)[0]
        (0.2395, 1)
        >>> round(loss.item(), 4)                   # 0.9 · 0.2395 + 0.1 · mean(0.2395, 2.2395, 2.2395)
        0.3729
    """
    smoothing = check_probability("smoothing", smoothing)
    if logits.shape[:-1] != target.shape:
        raise ValueError(f"logits {shape_str(logits.shape)} must be target "
                         f"{shape_str(target.shape)} plus a vocabulary dimension")
    keep = None if ignore_index is None else target != ignore_index           # (...)
    scored = target if keep is None else target[keep]
    if scored.numel() and (scored.min() < 0 or scored.max() >= logits.shape[-1]):
        raise ValueError(f"target ids must be in [0, {logits.shape[-1]}) (or ignore_index), got "
                         f"ids from {scored.min().item()} to {scored.max().item()}")
    log_probs = torch.log_softmax(logits.float(), dim=-1)                          # (..., V)
    nll = -log_probs.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)     # (...)
    uniform = -log_probs.mean(dim=-1)                                              # (...)
    loss = (1.0 - smoothing) * nll + smoothing * uniform                           # (...)
    if class_weights is not None:
        if class_weights.shape != logits.shape[-1:]:
            raise ValueError(f"class_weights must have one weight per class "
                             f"({logits.shape[-1]},), got {shape_str(class_weights.shape)}")
        loss = loss * class_weights.to(loss.device)[target.clamp(min=0)]           # (...)
    if keep is None:
        return Loss(loss.sum(), nll.sum(), torch.tensor(target.numel()))
    return Loss(loss[keep].sum(), nll[keep].sum(), keep.sum())
