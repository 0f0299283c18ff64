"""The classic attention sanity tasks, generated on the fly: copy, reverse and sort a sequence.

Sequences are space-separated symbols (digits and letters) of random length; the target is the
source copied, reversed or sorted. A model that solves *reverse* must learn a sharp anti-diagonal
cross-attention.
"""

from __future__ import annotations

import random

__all__ = ["TOY_TASKS", "toy_pairs"]

TOY_TASKS = ("copy", "reverse", "sort")
_SYMBOLS = "0123456789abcdefghijklmnopqrstuvwxyz"


def toy_pairs(task: str, n: int, *, seed: int = 0, min_len: int = 3, max_len: int = 10,
              num_symbols: int = 10) -> list[tuple[str, str]]:
    """``n`` (source, target) pairs of ``task``, a pure function of ``seed``.

    Example:
        >>> toy_pairs("reverse", 2, seed=0, max_len=5)
        [('6 0 4 8', '8 4 0 6'), ('6 4 7 5', '5 7 4 6')]
    """
    if task not in TOY_TASKS:
        raise ValueError(f"task must be one of {', '.join(TOY_TASKS)}, got {task!r}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len} and {max_len}")
    if not 2 <= num_symbols <= len(_SYMBOLS):
        raise ValueError(f"num_symbols must be in [2, {len(_SYMBOLS)}], got {num_symbols}")
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        source = [rng.choice(_SYMBOLS[:num_symbols]) for _ in range(rng.randint(min_len, max_len))]
        target = {"copy": source, "reverse": source[::-1], "sort": sorted(source)}[task]
        pairs.append((" ".join(source), " ".join(target)))
    return pairs
