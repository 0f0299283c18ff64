"""The decoding controls of ``transformers``' ``generate``, as one step on the next-token scores.

:class:`Controls` holds them (every strategy of :mod:`qkv.decoding.search` inherits it);
:func:`process_scores` applies them, and the always-banned ids, to the ``(N, V)`` scores of the
next token before the search chooses from them; :func:`penalize_repetition` and
:func:`ngram_bans` are its two pure parts.

Shapes: ``N`` rows (sentences × beams), ``V`` vocabulary, ``t`` tokens so far.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from qkv._checks import check_int, check_positive_int

__all__ = ["Controls", "process_scores", "penalize_repetition", "ngram_bans"]


@dataclass(frozen=True, kw_only=True)
class Controls:
    """What every strategy may add (keyword-only), applied by :func:`process_scores`:

    - ``no_repeat_ngram_size`` n: no n-gram of tokens occurs twice in a row's tokens (the token
      that would complete a second one is banned); ``None``: off.
    - ``repetition_penalty`` P (CTRL): the score of every token already present is divided by P
      where positive, multiplied by P where negative; 1.0: off, > 1 discourages repeating.
    - ``min_length`` n: ``<eos>`` is banned until n new tokens have been generated (the prompt and
      ``<bos>`` not counted: ``transformers``' ``min_new_tokens``).

    A row left with no token allowed (``no_repeat_ngram_size=1`` over a small vocabulary) ends.
    """

    no_repeat_ngram_size: int | None = None
    repetition_penalty: float = 1.0
    min_length: int = 0

    def __post_init__(self) -> None:
        if self.no_repeat_ngram_size is not None:
            check_positive_int("no_repeat_ngram_size", self.no_repeat_ngram_size)
        penalty = self.repetition_penalty
        if isinstance(penalty, bool) or not isinstance(penalty, numbers.Real):
            raise TypeError(f"repetition_penalty must be a number > 0, got "
                            f"{type(penalty).__name__} {penalty!r}")
        if not 0 < penalty < math.inf:
            raise ValueError(f"repetition_penalty must be a finite number > 0, got {penalty}")
        check_int("min_length", self.min_length, minimum=0)


def process_scores(scores: Tensor, tokens: Tensor, strategy: Controls, *, new_tokens: int,
                   eos_id: int | None = None, banned: Sequence[int] = (),
                   start: Tensor | None = None) -> Tensor:
    """The scores the search chooses the next token from: ``banned`` ids, then ``strategy``'s
    controls (repetition penalty, n-gram bans, minimum length) applied as ``transformers`` does.

    Args:
        scores: next-token logits (greedy search, sampling) or log-probabilities (beam search).
        tokens: every row's tokens so far: its prompt or ``<bos>``, then the new ones.
        strategy: a :class:`Greedy`, :class:`BeamSearch` or :class:`Sampling`; its
            ``repetition_penalty``, ``no_repeat_ngram_size`` and ``min_length`` are applied.
        new_tokens: how many tokens each row has generated so far (for ``min_length``).
        eos_id: the end token, banned while ``new_tokens < strategy.min_length``.
        banned: ids never generated (padding, ``<bos>``).
        start: each row's first real position in ``tokens`` (left padding before it is not a
            token of the row); default 0.

    Shape:
        ``scores (N, V)``, ``tokens (N, t)``, ``start (N,)`` → ``(N, V)``.

    Returns:
        A new tensor: ``scores`` with the penalty applied and every banned token at ``-inf``.

    Example:
        >>> from qkv.decoding import Greedy
        >>> scores, tokens = torch.zeros(1, 6), torch.tensor([[1, 4, 5, 4]])    # "4 5" seen
        >>> process_scores(scores, tokens, Greedy(no_repeat_ngram_size=2, min_length=1),
        ...                new_tokens=0, eos_id=2, banned=[0, 1])
        tensor([[-inf, -inf, -inf, 0., 0., -inf]])
    """
    scores = scores.clone()
    scores[:, list(banned)] = -math.inf
    if strategy.repetition_penalty != 1.0:
        scores = penalize_repetition(scores, tokens, strategy.repetition_penalty, start)
    if strategy.no_repeat_ngram_size is not None:
        bans = ngram_bans(tokens, strategy.no_repeat_ngram_size, scores.shape[-1], start)
        scores = scores.masked_fill(bans, -math.inf)
    if eos_id is not None and new_tokens < strategy.min_length:
        scores[:, eos_id] = -math.inf
    return scores


def penalize_repetition(scores: Tensor, tokens: Tensor, penalty: float,
                        start: Tensor | None = None) -> Tensor:
    """CTRL's repetition penalty (Keskar et al., 2019), as ``transformers`` applies it: the score
    of every token present in its row is divided by ``penalty`` where positive and multiplied by
    it where negative, once however often the token occurs.

    Args:
        scores: next-token scores.
        tokens: every row's tokens so far.
        penalty: P > 0; P > 1 makes a repeat less likely, P < 1 more.
        start: each row's first real position in ``tokens`` (padding before it does not count).

    Shape:
        ``scores (N, V)``, ``tokens (N, t)``, ``start (N,)`` → ``(N, V)``.

    Returns:
        A new tensor of scores.

    Example:
        >>> penalize_repetition(torch.tensor([[2.0, -2.0, 2.0]]), torch.tensor([[0, 1, 1]]), 2.0)
        tensor([[ 1., -4.,  2.]])
    """
    N, V = scores.shape
    ids = torch.where(_counted(tokens, start), tokens.clamp(max=V), V)      # (N, t), V: not counted
    present = torch.zeros(N, V + 1, dtype=torch.bool, device=scores.device)
    present = present.scatter_(1, ids, True)[:, :V]                         # (N, V)
    penalized = torch.where(scores < 0, scores * penalty, scores / penalty)
    return torch.where(present, penalized, scores)


def ngram_bans(tokens: Tensor, size: int, vocab_size: int, start: Tensor | None = None) -> Tensor:
    """The tokens that would repeat an n-gram: after a row ending ``a b`` (``size=3``), every
    ``c`` such that ``a b c`` already occurs in the row (``transformers``'
    ``NoRepeatNGramLogitsProcessor``).

    Args:
        tokens: every row's tokens so far.
        size: n, the n-gram length (1: every token present is banned).
        vocab_size: V.
        start: each row's first real position in ``tokens``: n-grams that reach into the padding
            before it do not count.

    Shape:
        ``tokens (N, t)``, ``start (N,)`` → ``(N, V)``.

    Returns:
        A bool mask, True where the next token is banned.

    Example:
        >>> ngram_bans(torch.tensor([[5, 6, 7, 5]]), 2, vocab_size=8).nonzero().tolist()
        [[0, 6]]
    """
    N, t = tokens.shape
    banned = torch.zeros(N, vocab_size + 1, dtype=torch.bool, device=tokens.device)
    if t < size:
        return banned[:, :vocab_size]
    counted = _counted(tokens, start)                                       # (N, t)
    windows = tokens.unfold(1, size, 1)                                     # (N, W, n) W = t-n+1
    suffix = tokens[:, t - size + 1:]                                       # (N, n - 1)
    matches = (windows[..., :-1] == suffix[:, None]).all(dim=-1)            # (N, W)
    matches &= counted.unfold(1, size, 1).all(dim=-1)
    matches &= counted[:, t - size + 1:].all(dim=-1, keepdim=True)
    banned.scatter_(1, torch.where(matches, windows[..., -1].clamp(max=vocab_size), vocab_size),
                    True)
    return banned[:, :vocab_size]


def _counted(tokens: Tensor, start: Tensor | None) -> Tensor:
    """``(N, t)``: True from each row's ``start`` on."""
    if start is None:
        return torch.ones_like(tokens, dtype=torch.bool)
    return torch.arange(tokens.shape[1], device=tokens.device) >= start[:, None]


# -- the two model kinds ---------------------------------------------------------------------------
