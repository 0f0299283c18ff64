"""A tiny attention document computed by hand, for examples, doctests and tests of the views.

It is built with plain tensor math on seeded :class:`qkv.MultiHeadAttention` modules (random
inputs, no trained model), with every ``detail`` field of the contract filled in, so the views can
be tried without a model or a trace: ``render_html(tiny_document())``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from einops import rearrange

import qkv

__all__ = ["attention_record", "tiny_document"]


def attention_record(
    attention: qkv.MultiHeadAttention,
    query_input: torch.Tensor,
    key_input: torch.Tensor,
    *,
    name: str,
    kind: str,
    layer: int,
    query_side: str,
    key_side: str,
) -> dict:
    """One record of the document contract for ``attention`` on one unbatched input.

    Shape:
        ``query_input (T, E)``, ``key_input (S, kv_dim)``; the record's lists are
        weights ``[H][T][S]``, query ``[H][T][D]``, key/value ``[H][S][D]``, output ``[T][E]``.
    """
    H, D = attention.num_heads, attention.head_dim
    T, S = query_input.shape[0], key_input.shape[0]
    with torch.no_grad():
        q = rearrange(attention.query_proj(query_input), "t (h d) -> h t d", h=H)   # (H, T, D)
        k = rearrange(attention.key_proj(key_input), "s (h d) -> h s d", h=H)       # (H, S, D)
        v = rearrange(attention.value_proj(key_input), "s (h d) -> h s d", h=H)     # (H, S, D)
        scores = q @ k.transpose(-1, -2)                                            # (H, T, S)
        mask = (torch.ones(T, S, dtype=torch.bool).tril() if kind == "decoder"
                else torch.ones(T, S, dtype=torch.bool))                            # (T, S)
        scale = 1.0 / math.sqrt(D)
        weights = (scores * scale).masked_fill(~mask, float("-inf")).softmax(-1)     # (H, T, S)
        heads = weights @ v                                                         # (H, T, D)
        output = attention.output_proj(rearrange(heads, "h t d -> t (h d)"))        # (T, E)
        check, reference = attention(query_input[None], key_input[None], mask=mask,
                                     need_weights=True)
    if not (torch.allclose(reference[0], weights, atol=1e-6)
            and torch.allclose(check[0], output, atol=1e-5)):
        raise RuntimeError(f"{name}: the hand-computed attention disagrees with qkv's")
    return {
        "name": name, "kind": kind, "layer": layer,
        "query_side": query_side, "key_side": key_side,
        "num_heads": H, "head_dim": D,
        "query_positions": list(range(T)), "key_positions": list(range(S)),
        "weights": weights.tolist(),
        "query": q.tolist(), "key": k.tolist(), "value": v.tolist(),
        "scores": scores.tolist(), "scale": scale,
        "mask": mask.int().tolist(), "head_outputs": heads.tolist(), "output": output.tolist(),
    }


def tiny_document(
    tokens: Sequence[str] = ("I", "love", "my", "dog"),
    target: Sequence[str] | None = None,
    *,
    num_layers: int = 2,
    num_heads: int = 2,
    d_model: int = 8,
    seed: int = 0,
) -> dict:
    """A seeded attention document: causal self-attention over ``tokens`` (a language model's),
    or, with ``target``, a translation's encoder, decoder and cross attention.

    Example:
        >>> doc = tiny_document()
        >>> [a["name"] for a in doc["attentions"]]
        ['layers.0.self_attention', 'layers.1.self_attention']
        >>> doc = tiny_document(["ich", "liebe"], target=["<bos>", "I", "love"], num_layers=1)
        >>> [(a["kind"], len(a["weights"][0]), len(a["weights"][0][0])) for a in doc["attentions"]]
        [('encoder', 2, 2), ('decoder', 3, 3), ('cross', 3, 2)]
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if target is None:
            sides = {"text": list(tokens)}
            x = torch.randn(len(tokens), d_model, generator=generator)
            plan = [("layers.{}.self_attention", "decoder", "text", "text", x, x)]
        else:
            sides = {"source": list(tokens), "target": list(target)}
            source = torch.randn(len(tokens), d_model, generator=generator)
            tgt = torch.randn(len(target), d_model, generator=generator)
            plan = [("encoder.layers.{}.self_attention", "encoder", "source", "source", source,
                     source),
                    ("decoder.layers.{}.self_attention", "decoder", "target", "target", tgt, tgt),
                    ("decoder.layers.{}.cross_attention", "cross", "target", "source", tgt,
                     source)]
        attentions = []
        for pattern, kind, query_side, key_side, query_input, key_input in plan:
            for layer in range(num_layers):
                attention = qkv.MultiHeadAttention(d_model, num_heads).eval()
                attentions.append(attention_record(
                    attention, query_input, key_input, name=pattern.format(layer), kind=kind,
                    layer=layer, query_side=query_side, key_side=key_side))
    return {"version": 1, "title": " ".join(tokens), "sides": sides, "attentions": attentions}
