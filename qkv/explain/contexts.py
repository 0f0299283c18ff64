"""Top-activating contexts: the tokens of a corpus on which a neuron's key fires most.

Geva, Schuster, Berant & Levy, 2021, "Transformer Feed-Forward Layers Are Key-Value Memories":
the *key* ``k_i`` of neuron ``i`` is row ``i`` of a layer's first linear
(``feed_forward.inner.weight[i]``), and the inputs whose activation ``m_i = f(x · k_i + b_i)``
is highest show what it detects (:mod:`qkv.explain.memories`).

:func:`top_activating_contexts` streams the corpus (read by :mod:`qkv.explain.corpus`) in
batches through the model, stopping each pass after the last layer asked for, and keeps a
:class:`RunningTopK` per layer: memory is bounded by one batch's activations plus ``k`` entries
per neuron, however long the corpus. Each kept entry becomes a :class:`Context`.

Shape letters: ``B`` sequences in a batch, ``T`` positions, ``F`` = ``d_ff`` neurons per
layer, ``n`` neurons asked for, ``k`` contexts kept.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from qkv._checks import shape_str
from qkv.explain.corpus import CorpusItem, corpus_items
from qkv.explain.lens import token_namer
from qkv.explain.neurons import (
    _check_count,
    _check_index,
    _neurons,
    _stack_layers,
    feed_forward,
    reading_activations,
)
from qkv.explain.subject import eval_mode
from qkv.models import SequenceClassifier, Transformer
from qkv.models.feed_forward import FeedForward

__all__ = ["Context", "RunningTopK", "top_activating_contexts"]


class RunningTopK:
    """The ``k`` largest values seen so far in each of ``n`` columns, with where each was seen.

    A streaming top-k: each :meth:`update` takes a batch's top ``k`` per column (``torch.topk``)
    and merges them with the ``k`` kept, so the state never holds more than ``k`` entries per
    column, however long the stream.

    Attributes:
        values: ``(n, k')``, highest first, ``k' ≤ k`` (fewer while less has been seen).
        sequences, positions: ``(n, k')`` long, where each value came from.

    Example:
        >>> import torch
        >>> running = RunningTopK(num_columns=1, k=2)
        >>> _ = running.update(torch.tensor([[1.0], [5.0]]), torch.tensor([0, 0]),
        ...                    torch.tensor([0, 1]))
        >>> _ = running.update(torch.tensor([[3.0], [0.0]]), torch.tensor([1, 1]),
        ...                    torch.tensor([0, 1]))
        >>> running.values.tolist(), running.sequences.tolist(), running.positions.tolist()
        ([[5.0, 3.0]], [[0, 1]], [[1, 0]])
    """

    def __init__(self, num_columns: int, k: int) -> None:
        _check_count("num_columns", num_columns)
        _check_count("k", k)
        self.k = k
        self.values = torch.empty(num_columns, 0)
        self.sequences = torch.empty(num_columns, 0, dtype=torch.long)
        self.positions = torch.empty(num_columns, 0, dtype=torch.long)

    def update(self, values: Tensor, sequences: Tensor, positions: Tensor) -> Tensor:
        """Merge ``M`` new rows in.

        Shape:
            ``values (M, n)``, ``sequences (M,)``, ``positions (M,)`` → ``(n, k')`` long: for
            each kept entry, the row of ``values`` it came from if it is new, else -1.
        """
        n = self.values.shape[0]
        if values.dim() != 2 or values.shape[1] != n:
            raise ValueError(f"values must have shape (M, n) with n = {n}, got "
                             f"{shape_str(values.shape)}")
        M = values.shape[0]
        if M == 0:
            return torch.full_like(self.sequences, -1)
        values = values.detach().float().cpu()
        batch_values, rows = values.topk(min(self.k, M), dim=0)         # (b, n)
        batch_values, rows = batch_values.T, rows.T                      # (n, b)
        old = self.values.shape[1]
        merged = torch.cat([self.values, batch_values], 1)              # (n, k' + b)
        merged_sequences = torch.cat([self.sequences, sequences.cpu()[rows]], 1)
        merged_positions = torch.cat([self.positions, positions.cpu()[rows]], 1)
        merged_rows = torch.cat([torch.full_like(self.sequences, -1), rows], 1)
        self.values, order = merged.topk(min(self.k, merged.shape[1]), dim=1)   # (n, k')
        self.sequences = merged_sequences.gather(1, order)
        self.positions = merged_positions.gather(1, order)
        return merged_rows.gather(1, order)


@dataclass(frozen=True)
class Context:
    """One of the inputs that activate a neuron most (Geva et al., 2021).

    Attributes:
        layer, neuron: which neuron.
        activation: its activation ``m_i`` at the token.
        sequence: the item's index in the corpus (each row of an id batch counts as one).
        position: the token's position in its sequence.
        token: the token's display string.
        window: the tokens around it (``window`` each side, cut at the ends).
        window_position: the token's index in ``window``.
        text: the item's text (a translation's target text; decoded ids with a tokenizer;
            ``None`` for ids without one).
        source: a translation's source text, else ``None``.
    """

    layer: int
    neuron: int
    activation: float
    sequence: int
    position: int
    token: str
    window: list[str]
    window_position: int
    text: str | None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def top_activating_contexts(model: nn.Module, layer: int, neurons: int | Sequence[int],
                            corpus: Iterable, tokenizer=None, *, k: int = 5,
                            batch_size: int = 16, window: int = 6, stack: str | None = None,
                            target_tokenizer=None) -> list[Context] | dict[int, list[Context]]:
    """The ``k`` tokens of a corpus on which a neuron's key fires most (Geva, Schuster, Berant &
    Levy, 2021, "Transformer Feed-Forward Layers Are Key-Value Memories").

    Streams the corpus in batches of ``batch_size`` sequences (those of equal length run
    together, so nothing is padded) and keeps a :class:`RunningTopK`: memory is one batch's
    activations plus ``k`` entries (and their windows) per neuron, whatever the corpus size.

    Args:
        model: a qkv model.
        layer: 0-based layer of the stack (default the lens' stack; ``stack="encoder"`` for a
            translation's encoder).
        neurons: one neuron, or several (read in the same pass).
        corpus: texts (``str``, encoded as the model's task does: ``[bos] + text`` for a
            language model, ``[CLS] text [SEP]`` for an encoder…; cut to the model's
            ``max_len``), id sequences ``(T,)`` (a
            list of ints or a tensor) or id batches ``(B, T)`` (positions holding the model's
            ``pad_id`` are skipped). A translation's decoder reads ``(source, target)`` pairs —
            of texts, of ``(T,)`` ids or of ``(B, T)`` batches; its encoder reads source texts
            or ids.
        tokenizer: encodes texts and names tokens (a translation's source side);
            ``target_tokenizer`` the target side's (default the same).
        k: contexts kept per neuron.
        batch_size: sequences per forward pass.
        window: tokens shown each side of the activating one.

    Returns:
        for one neuron, its contexts, highest activation first; for several, ``{neuron: …}``.

    Example:
        >>> import torch, qkv
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=16,
        ...     num_heads=2, num_layers=2, d_ff=32))
        >>> found = top_activating_contexts(model, 0, 7, [[1, 2, 3], [4, 5], [6, 7, 8]], k=2)
        >>> [context.neuron for context in found], found[0].activation >= found[1].activation
        ([7, 7], True)
    """
    name, layers = _stack_layers(model, stack)
    _check_index("layer", layer, len(layers), f"the {len(layers)} layers of {name}")
    several = not isinstance(neurons, numbers.Integral) or isinstance(neurons, bool)
    chosen = _neurons(neurons, feed_forward(model, layer, stack=stack).outer.in_features, layer)
    found = _stream_contexts(model, {layer: chosen}, corpus, tokenizer, k=k,
                             batch_size=batch_size, window=window, stack=stack,
                             target_tokenizer=target_tokenizer)
    if not several:
        return found[(layer, chosen[0])]
    return {neuron: found[(layer, neuron)] for neuron in chosen}


def _stream_contexts(model: nn.Module, wanted: Mapping[int, list[int]], corpus: Iterable,
                     tokenizer, *, k: int, batch_size: int, window: int, stack: str | None,
                     target_tokenizer) -> dict[tuple[int, int], list[Context]]:
    """Top contexts of several layers' neurons in one pass: ``{(layer, neuron): [Context]}``."""
    _check_count("k", k)
    _check_count("batch_size", batch_size)
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        raise ValueError(f"window must be an int >= 0, got {window!r}")
    if isinstance(corpus, (str, Tensor)) and not (isinstance(corpus, Tensor) and corpus.dim() == 2):
        raise TypeError("corpus must be an iterable of texts or id sequences (a list), not one "
                        f"{type(corpus).__name__}")
    name, _ = _stack_layers(model, stack)
    decoder = isinstance(model, Transformer) and name == "decoder.layers"
    side_tokenizer = (target_tokenizer or tokenizer) if decoder else tokenizer
    namer = token_namer(model if not isinstance(model, SequenceClassifier) else model.encoder,
                        side_tokenizer)
    layers = sorted(wanted)
    running = {layer: RunningTopK(len(wanted[layer]), k) for layer in layers}
    kept: dict[tuple[int, int], tuple[str, list[str], int, str | None, str | None]] = {}
    device = next(model.parameters()).device
    pad = model.config.pad_id
    modules = {layer: feed_forward(model, layer, stack=stack) for layer in layers}
    with eval_mode(model), torch.no_grad():
        for chunk in _chunks(corpus_items(model, corpus, tokenizer, target_tokenizer, decoder),
                             batch_size):
            groups: dict[tuple[int, int], list[CorpusItem]] = {}
            for item in chunk:
                key = (item.ids.shape[0], -1 if item.source is None else item.source.shape[0])
                groups.setdefault(key, []).append(item)
            for items in groups.values():
                ids = torch.stack([item.ids for item in items])         # (B, T)
                source = (None if items[0].source is None
                          else torch.stack([item.source for item in items]))   # (B, S)
                found = _run_to(model, modules, ids.to(device),
                                None if source is None else source.to(device), name)
                B, T = ids.shape
                keep = (torch.ones(B, T, dtype=torch.bool) if pad is None
                        else ids != pad).flatten()                      # (B·T,)
                sequences = torch.tensor([item.index for item in items]).repeat_interleave(T)
                positions = torch.arange(T).repeat(B)                   # (B·T,)
                rows = torch.nonzero(keep).flatten()                    # kept row → flat index
                tokens: dict[int, list[str]] = {}
                for layer in layers:
                    activations = found[layer][..., wanted[layer]].reshape(B * T, -1)  # (B·T, n)
                    new = running[layer].update(activations[keep], sequences[keep],
                                                positions[keep])        # (n, k')
                    for row in new[new >= 0].unique().tolist():
                        flat = int(rows[row])
                        b, t = divmod(flat, T)
                        item = items[b]
                        if b not in tokens:
                            tokens[b] = namer(item.ids.tolist())
                        start = max(0, t - window)
                        kept[(item.index, t)] = (tokens[b][t], tokens[b][start: t + window + 1],
                                                 t - start, item.text, item.source_text)
            alive = {(s, p) for top in running.values()
                     for s, p in zip(top.sequences.flatten().tolist(),
                                     top.positions.flatten().tolist())}
            kept = {key: value for key, value in kept.items() if key in alive}   # bounded
    result: dict[tuple[int, int], list[Context]] = {}
    for layer in layers:
        top = running[layer]
        for column, neuron in enumerate(wanted[layer]):
            contexts = []
            for value, s, p in zip(top.values[column].tolist(), top.sequences[column].tolist(),
                                   top.positions[column].tolist()):
                token, around, where, text, source_text = kept[(s, p)]
                contexts.append(Context(layer, neuron, float(value), s, p, token, around, where,
                                        text, source_text))
            result[(layer, neuron)] = contexts
    return result


class _Stop(Exception):
    """Raised by a hook once the last layer needed has been read: the rest is not run."""


def _run_to(model: nn.Module, modules: Mapping[int, FeedForward], ids: Tensor,
            source: Tensor | None, name: str) -> dict[int, Tensor]:
    """Each wanted layer's activations ``(B, T, F)`` for a batch, stopping after the last."""
    found: dict[int, Tensor] = {}
    last = max(modules)

    def read(layer: int, activations: Tensor) -> None:
        found[layer] = activations.float().cpu()
        if layer == last:
            raise _Stop

    try:
        with reading_activations(modules, read):
            if isinstance(model, Transformer) and name == "encoder.layers":
                model.encode(ids)
            elif isinstance(model, Transformer):
                model(source, ids)
            else:
                model(ids)
    except _Stop:
        pass
    return found


def _chunks(items: Iterator[CorpusItem], size: int) -> Iterator[list[CorpusItem]]:
    chunk: list[CorpusItem] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
