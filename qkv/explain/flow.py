"""Attention flow: the maximum flow from the target to each input token through the layers.

Abnar & Zuidema, 2020, "Quantifying Attention Flow in Transformers" (ACL). The model is a
layered graph: one node per token per layer, an edge from position ``i`` of layer ``l`` to
position ``j`` of layer ``l − 1`` with capacity ``Â_l[i, j]`` (``Â = 0.5·mean_h(A) + 0.5·I``,
as in :mod:`~qkv.explain.rollout`). A token's score is the value of the maximum flow from the
target's node at the top to its node at the bottom. Where rollout multiplies the paths' weights,
flow lets the narrowest edge of each path bound it; on one layer they agree.

The max-flows are computed by networkx (``nx.maximum_flow_value``, preflow–push by default).

**Cost.** One max-flow per input token, each in a graph of ``(L + 1)·N`` nodes and up to
``L·N²`` edges: measured on one CPU core, about 20 ms per flow at 6 layers × 20 tokens, 0.1 s at
6 × 40 and 0.5 s at 12 × 64, so a few seconds for a 20-token MiniLM input and minutes for a
long one. :func:`attention_flow` refuses inputs of more than ``max_tokens`` tokens (default 128)
unless told otherwise, and computes the per-layer scores (``L`` times the work) only when asked.

**Target.** The flow starts at a source node joined to the top layer's positions by edges of
capacity :func:`~qkv.explain.attention_layers.readout`'s weights: the target position alone
(capacity 1), or every non-padding position for a mean-pooled target.

**Translation.** The graph spans both stacks: encoder layers over the source, and per decoder
layer a self-attention level (``Â_self``) and a cross-attention level whose position ``i`` has
an edge to its own self-attention node (capacity 0.5, the residual) and edges to the encoder's
top nodes (capacities ``0.5·mean_h(A_cross)[i, j]``) — the graph of the encoder–decoder rule of
:mod:`~qkv.explain.rollout`. The sinks are the source tokens at the encoder's bottom and the
target tokens at the decoder's bottom.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import networkx as nx
import torch
from networkx.algorithms import flow as nx_flow
from torch import Tensor

from qkv._checks import shape_str
from qkv.explain.attention_layers import attention_stacks, check_fraction, head_mean, readout
from qkv.explain.attribution import Attribution, register
from qkv.explain.capture import capture
from qkv.explain.rollout import residual_adjusted
from qkv.explain.subject import Subject

__all__ = ["flow", "encoder_decoder_flow", "attention_flow", "FLOW_FUNCTIONS"]

FLOW_FUNCTIONS = ("preflow_push", "shortest_augmenting_path", "edmonds_karp", "dinitz",
                  "boykov_kolmogorov")
_SOURCE = "target"


def flow(matrices: Tensor, weights: Tensor, residual: float = 0.5, *,
         flow_func: str = "preflow_push") -> Tensor:
    """Maximum flow from the target to each input token through ``L`` layers of mixing.

    Args:
        matrices: each layer's mixing matrix, first layer first (e.g. head-mean attention).
        weights: the target's capacity at each top position (one-hot: the target position).
        residual: the residual's share added to each layer (see
            :func:`~qkv.explain.rollout.residual_adjusted`).
        flow_func: the networkx max-flow algorithm, one of :data:`FLOW_FUNCTIONS`.

    Shape:
        ``matrices (L, T, T)``, ``weights (T,)`` → ``(T,)``

    Example:
        >>> import torch
        >>> attention = torch.tensor([[[1.0, 0.0], [0.6, 0.4]]])       # one layer
        >>> flow(attention, torch.tensor([0.0, 1.0]))                  # row 1 of 0.5·A + 0.5·I
        tensor([0.3000, 0.7000], dtype=torch.float64)
    """
    if matrices.dim() != 3 or matrices.shape[1] != matrices.shape[2] or matrices.shape[0] == 0:
        raise ValueError(f"matrices must be (L, T, T) with L >= 1, got "
                         f"{shape_str(matrices.shape)}")
    L, T, _ = matrices.shape
    if weights.shape != (T,):
        raise ValueError(f"weights must be (T,) = ({T},), got {shape_str(weights.shape)}")
    adjusted = residual_adjusted(matrices.double(), residual)          # (L, T, T)
    levels = [[("token", l, i) for i in range(T)] for l in range(L + 1)]
    graph = nx.DiGraph()
    for l in range(L):
        _connect(graph, levels[l + 1], levels[l], adjusted[l])
    _connect(graph, [_SOURCE], levels[L], weights.double()[None])
    return _max_flows(graph, levels[0], flow_func)


def encoder_decoder_flow(encoder: Tensor, decoder: Tensor, cross: Tensor,
                         cross_residual: Tensor, weights: Tensor, *,
                         flow_func: str = "preflow_push") -> Tensor:
    """Maximum flow from the target through a translation's decoder and encoder.

    Args:
        encoder: each encoder layer's mixing matrix, residual included (``Â``).
        decoder: each decoder layer's self-attention mixing matrix, residual included.
        cross: each decoder layer's cross-attention capacities to the encoder's output.
        cross_residual: each decoder layer's residual capacity at its cross-attention.
        weights: the target's capacity at each top decoder position.
        flow_func: as in :func:`flow`.

    Shape:
        ``encoder (Le, S, S)``, ``decoder (L, T, T)``, ``cross (L, T, S)``,
        ``cross_residual (L, T)``, ``weights (T,)`` → ``(S + T,)``, source tokens first.
    """
    Le, S, _ = encoder.shape
    L, T, _ = decoder.shape
    if encoder.shape != (Le, S, S) or cross.shape != (L, T, S) or (
            cross_residual.shape != (L, T)) or weights.shape != (T,):
        raise ValueError(f"expected encoder (Le, S, S), decoder (L, T, T), cross (L, T, S), "
                         f"cross_residual (L, T), weights (T,); got {shape_str(encoder.shape)}, "
                         f"{shape_str(decoder.shape)}, {shape_str(cross.shape)}, "
                         f"{shape_str(cross_residual.shape)}, {shape_str(weights.shape)}")
    source = [[("source", l, j) for j in range(S)] for l in range(Le + 1)]
    target = [[("target", k, i) for i in range(T)] for k in range(2 * L + 1)]
    graph = nx.DiGraph()
    for l in range(Le):
        _connect(graph, source[l + 1], source[l], encoder[l].double())
    for l in range(L):
        _connect(graph, target[2 * l + 1], target[2 * l], decoder[l].double())
        _connect(graph, target[2 * l + 2], target[2 * l + 1],
                 torch.diag(cross_residual[l].double()))
        _connect(graph, target[2 * l + 2], source[Le], cross[l].double())
    _connect(graph, [_SOURCE], target[2 * L], weights.double()[None])
    return _max_flows(graph, source[0] + target[0], flow_func)


@register("flow")
def attention_flow(subject: Subject, *, residual: float = 0.5, max_tokens: int | None = 128,
                   per_layer: bool = False, flow_func: str = "preflow_push") -> Attribution:
    """Attention flow (Abnar & Zuidema, 2020, "Quantifying Attention Flow in Transformers"):
    each token's score is the maximum flow from the target to it (see the module docstring).

    Args:
        subject: what to explain.
        residual: the residual's share of each layer's capacities (the paper's 0.5).
        max_tokens: refuse subjects with more tokens (the cost grows as ``N`` max-flows in a
            graph of ``L·N²`` edges); ``None`` = no limit.
        per_layer: also compute ``layers`` (the flow from the target's node at every layer,
            ``L`` times the work); else ``layers`` is ``None``.
        flow_func: the networkx algorithm, one of :data:`FLOW_FUNCTIONS`.

    Shape:
        ``scores (N,)``, each in ``[0, 1]``; ``layers (L, N)`` with ``per_layer`` (``L`` =
        decoder layers for a translation).

    Raises:
        ValueError: more than ``max_tokens`` tokens, an unknown ``flow_func``.

    Example:
        >>> import qkv
        >>> from qkv.explain import subject, attribute
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=16,
        ...     num_heads=2, num_layers=2, d_ff=32))
        >>> attribute(subject(model, [1, 5, 6, 7]), "flow").scores.shape
        torch.Size([4])
    """
    residual = check_fraction("residual", residual)
    _flow_function(flow_func)
    N = subject.num_tokens
    if max_tokens is not None and N > max_tokens:
        raise ValueError(f"attention flow runs one max-flow per token ({N} here) in a graph of "
                         f"L·N² edges; this subject has {N} tokens, more than max_tokens="
                         f"{max_tokens}: pass max_tokens=None (or larger) to run it anyway, or "
                         f"use 'rollout'")
    encoder, self_steps, cross_steps = attention_stacks(subject, capture(subject))
    weights = readout(subject)                                          # (T,)
    decoder = residual_adjusted(torch.stack([head_mean(s) for s in self_steps]),
                                residual)                               # (L, T, T)
    if cross_steps:
        encoder_matrices = residual_adjusted(torch.stack([head_mean(s) for s in encoder]),
                                             residual)                  # (Le, S, S)
        cross = (1 - residual) * torch.stack([head_mean(s) for s in cross_steps])  # (L, T, S)
        shares = torch.full(cross.shape[:2], residual, dtype=cross.dtype)          # (L, T)

        def up_to(l: int) -> Tensor:
            return encoder_decoder_flow(encoder_matrices, decoder[:l], cross[:l], shares[:l],
                                        weights, flow_func=flow_func)
    else:
        def up_to(l: int) -> Tensor:
            return flow(decoder[:l], weights, 0.0, flow_func=flow_func)
    L = decoder.shape[0]
    if per_layer:
        layers = torch.stack([up_to(l) for l in range(1, L + 1)]).float()   # (L, N)
        scores = layers[-1]
    else:
        layers, scores = None, up_to(L).float()
    return Attribution("flow", subject, scores, layers,
                       {"residual": residual, "flow_func": flow_func})


def _connect(graph: nx.DiGraph, upper: Sequence[Hashable], lower: Sequence[Hashable],
             capacities: Tensor) -> None:
    """Edges ``upper[i] → lower[j]`` of capacity ``capacities[i, j]`` ``(len(upper), len(lower))``
    where it is positive."""
    for i, j in (capacities > 0).nonzero().tolist():
        graph.add_edge(upper[i], lower[j], capacity=float(capacities[i, j]))


def _max_flows(graph: nx.DiGraph, sinks: Sequence[Hashable], flow_func: str) -> Tensor:
    """The max-flow value from the target's source node to each sink ``(len(sinks),)``."""
    algorithm = _flow_function(flow_func)
    values = [nx.maximum_flow_value(graph, _SOURCE, sink, flow_func=algorithm)
              if graph.has_node(sink) and graph.has_node(_SOURCE) else 0.0 for sink in sinks]
    return torch.tensor(values, dtype=torch.float64)


def _flow_function(name: str):
    if name not in FLOW_FUNCTIONS:
        raise ValueError(f"flow_func must be one of {FLOW_FUNCTIONS}, got {name!r}")
    return getattr(nx_flow, name)
