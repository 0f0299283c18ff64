"""Length-bucketed batches by token count, as the paper batches ("approximately 25000 source
tokens and 25000 target tokens" per batch).

Examples of similar length are grouped so that little of each batch is padding; a batch holds as
many examples as fit in ``max_tokens`` *padded* tokens. The batches of an epoch are a pure
function of ``(seed, epoch)``, so training can resume at any batch and see exactly the batches
an uninterrupted run would have seen.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = ["token_batches"]


def token_batches(lengths: Sequence[int], max_tokens: int, *, seed: int | None = 0,
                  epoch: int = 0, pool_batches: int = 100) -> list[list[int]]:
    """Indices of the examples, grouped into batches of at most ``max_tokens`` padded tokens.

    Args:
        lengths: the (longest side's) token count of each example.
        max_tokens: budget of ``batch size × longest example`` per batch; an example longer than
            the budget gets a batch of its own.
        seed: shuffles examples and batches per ``(seed, epoch)``; ``None`` keeps the order
            (sorted by length, for evaluation).
        epoch: which epoch's order.
        pool_batches: examples are sorted by length within pools of about this many batches —
            bigger pools waste less padding, smaller ones keep more randomness.

    Returns:
        A list of batches, each a list of example indices.

    Example:
        >>> token_batches([3, 9, 4, 8, 2], max_tokens=12, seed=None)
        [[4, 0, 2], [3], [1]]
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    order = list(range(len(lengths)))
    if seed is None:
        pools = [sorted(order, key=lambda i: lengths[i])]
    else:
        rng = random.Random(f"{seed}:{epoch}")
        rng.shuffle(order)
        mean = max(1, sum(lengths) // max(1, len(lengths)))
        pool_size = max(1, pool_batches * max_tokens // mean)
        pools = [sorted(order[i:i + pool_size], key=lambda i: lengths[i])
                 for i in range(0, len(order), pool_size)]
    batches: list[list[int]] = []
    for pool in pools:
        batch: list[int] = []
        longest = 0
        for index in pool:
            candidate = max(longest, lengths[index])
            if batch and candidate * (len(batch) + 1) > max_tokens:
                batches.append(batch)
                batch, candidate = [], lengths[index]
            batch.append(index)
            longest = candidate
        if batch:
            batches.append(batch)
    if seed is not None:
        rng.shuffle(batches)
    return batches
