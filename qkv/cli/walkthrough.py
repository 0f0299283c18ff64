"""``qkv demo --task attention``: attention on "I love my dog", every number printed as a table.

A tiny seeded example, small enough to check by hand: each token gets an embedding x (E = 8),
one head projects it to a query, key and value (D = 4), and the tables walk through
``softmax(Q Kᵀ / √D) V`` step by step, then with the causal mask a decoder uses, then across the
heads of :class:`qkv.MultiHeadAttention`. The weights printed are the ones qkv computes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

import qkv

D_MODEL = 8   # E
HEAD_DIM = 4  # D
NUM_HEADS = 2  # H, for the multi-head part


def walkthrough(tokens: Sequence[str], seed: int = 0) -> str:
    """The demo's text: every step of single-head attention, causal attention and multi-head."""
    generator = torch.Generator().manual_seed(seed)
    T = len(tokens)
    x = torch.randn(T, D_MODEL, generator=generator)                    # (T, E)
    w_query, w_key, w_value = (
        torch.randn(D_MODEL, HEAD_DIM, generator=generator) / math.sqrt(D_MODEL) for _ in range(3)
    )
    query, key, value = x @ w_query, x @ w_key, x @ w_value             # (T, D) each
    scores = query @ key.T                                              # (T, S)
    output, weights = qkv.scaled_dot_product_attention(query, key, value, need_weights=True)
    fused, _ = qkv.scaled_dot_product_attention(query, key, value)
    _, causal_weights = qkv.scaled_dot_product_attention(
        query, key, value, causal=True, need_weights=True
    )

    dims = [f"d{i}" for i in range(HEAD_DIM)]
    sections = [
        f'Attention over "{" ".join(tokens)}": T = S = {T} tokens, E = {D_MODEL}, D = {HEAD_DIM}',
        "Each token's embedding x is projected: Q = x W^Q, K = x W^K, V = x W^V.",
        table("Q, queries (T, D)", query, tokens, dims),
        table("K, keys (S, D)", key, tokens, dims),
        table("V, values (S, D)", value, tokens, dims),
        table("Q Kᵀ, raw scores (T, S): row = query, column = key", scores, tokens, tokens),
        table(f"Q Kᵀ / √D, scaled scores (√{HEAD_DIM} = {math.sqrt(HEAD_DIM):g})",
              scores / math.sqrt(HEAD_DIM), tokens, tokens),
        table("softmax, attention weights (T, S): each row sums to 1", weights, tokens, tokens),
        table("weights · V, outputs (T, D)", output, tokens, dims),
        f"math path vs fused (SDPA) path: max |difference| = "
        f"{(output - fused).abs().max().item():.2e}",
        table("causal (masked) weights: no token attends to a later one",
              causal_weights, tokens, tokens),
        _multi_head_section(x, tokens, generator),
    ]
    return "\n\n".join(sections)


def _multi_head_section(x: Tensor, tokens: Sequence[str], generator: torch.Generator) -> str:
    attention = qkv.MultiHeadAttention(D_MODEL, NUM_HEADS)
    with torch.no_grad():
        for parameter in attention.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
        _, weights = attention(x[None], need_weights=True)              # (1, H, T, S)
    parts = [f"MultiHeadAttention(d_model={D_MODEL}, num_heads={NUM_HEADS}): "
             f"(B, T, E) → (B, H, T, D) → per-head attention → (B, T, E)"]
    for head in range(NUM_HEADS):
        parts.append(table(f"head {head} weights (T, S)", weights[0, head], tokens, tokens))
    return "\n\n".join(parts)


def table(title: str, matrix: Tensor, rows: Sequence[str], columns: Sequence[str]) -> str:
    """A titled text table of a 2-D tensor with labelled rows and columns."""
    number = "{:+.3f}" if bool((matrix < 0).any()) else "{:.3f}"
    cells = [[number.format(value) for value in row] for row in matrix.tolist()]
    width = max(len(c) for c in [*columns, *(cell for row in cells for cell in row)])
    label_width = max(len(r) for r in rows)
    lines = [title, " " * label_width + "  " + "  ".join(c.rjust(width) for c in columns)]
    for label, row in zip(rows, cells):
        lines.append(label.ljust(label_width) + "  " + "  ".join(c.rjust(width) for c in row))
    return "\n".join(lines)
