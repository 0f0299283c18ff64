"""A corpus read as sequences of a stack's side: what
:func:`~qkv.explain.contexts.top_activating_contexts` streams.

A corpus item is a text (``str``, encoded as the model's task does:
:func:`qkv.views.explore.model_inputs`, cut to the model's ``max_len``), an id sequence ``(T,)``
(a list of ints or a tensor) or an id batch ``(B, T)`` (each row one sequence). A translation's
decoder reads ``(source, target)`` pairs of texts, of ``(T,)`` ids or of ``(B, T)`` batches;
its encoder reads source texts or ids. Items are numbered in the order they come; each row of a
batch counts as one.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from qkv._checks import shape_str
from qkv.explain.texts import task_of

__all__ = ["CorpusItem", "corpus_items"]


@dataclass
class CorpusItem:
    """One sequence of the corpus, numbered ``index``."""

    ids: Tensor                         # (T,) the stack's side
    source: Tensor | None               # (S,) a translation's source (decoder stack)
    text: str | None
    source_text: str | None
    index: int


def corpus_items(model: nn.Module, corpus: Iterable, tokenizer, target_tokenizer,
                 decoder: bool) -> Iterator[CorpusItem]:
    """The corpus as sequences of the stack's side (module docstring); ``decoder``: the
    stack is a translation's decoder, which reads ``(source, target)`` pairs."""
    index = 0
    for number, entry in enumerate(corpus):
        if decoder:
            if not (isinstance(entry, (tuple, list)) and len(entry) == 2
                    and not isinstance(entry[0], numbers.Integral)):
                raise TypeError(f"corpus item {number}: a translation's decoder reads (source, "
                                f"target) pairs of texts or ids, got {type(entry).__name__}")
            source_entry, target_entry = entry
            if isinstance(source_entry, str) or isinstance(target_entry, str):
                if not (isinstance(source_entry, str) and isinstance(target_entry, str)):
                    raise TypeError(f"corpus item {number}: give both texts or both ids")
                ids = _encode(model, "translation", tokenizer, source_entry, number,
                              target_text=target_entry, target_tokenizer=target_tokenizer)
                yield CorpusItem(torch.tensor(ids["target"]), torch.tensor(ids["source"]),
                                 target_entry, source_entry, index)
                index += 1
                continue
            sources = _rows(source_entry, number)
            targets = _rows(target_entry, number)
            if len(sources) != len(targets):
                raise ValueError(f"corpus item {number}: {len(sources)} sources but "
                                 f"{len(targets)} targets")
            for source, target in zip(sources, targets):
                yield CorpusItem(target, source,
                                 _decode(target_tokenizer or tokenizer, target),
                                 _decode(tokenizer, source), index)
                index += 1
            continue
        if isinstance(entry, str):
            task = task_of(model)
            ids = _encode(model, task, tokenizer, entry, number,
                          target_text="" if task == "translation" else None)
            ids = ids["source"] if task == "translation" else ids["text"]
            yield CorpusItem(torch.tensor(ids), None, entry, None, index)
            index += 1
            continue
        for row in _rows(entry, number):
            yield CorpusItem(row, None, _decode(tokenizer, row), None, index)
            index += 1


def _encode(model, task, tokenizer, text, number, *, target_text=None, target_tokenizer=None):
    """A corpus text's ids as the task feeds them (:func:`qkv.views.explore.model_inputs`);
    a text longer than the model reads is cut to the first ``max_len`` ids."""
    from qkv.views.explore import TooManyTokens, model_inputs

    if tokenizer is None:
        raise ValueError(f"corpus item {number} is a text: give tokenizer= to encode it")
    try:
        return model_inputs(model, task=task, source_tokenizer=tokenizer,
                            target_tokenizer=target_tokenizer, text=text,
                            target_text=target_text)
    except TooManyTokens:
        pass
    limit = int(model.config.max_len)
    if task == "language_model":
        return {"text": tokenizer.prompt_ids(text)[:limit]}
    if task == "translation":
        target_tokenizer = target_tokenizer or tokenizer
        return {"source": (tokenizer.encode(text) + [tokenizer.eos_id])[:limit],
                "target": ([target_tokenizer.bos_id]
                           + target_tokenizer.encode(target_text or ""))[:limit]}
    if task == "classification":
        from qkv.decoding.classify import input_limit
        limit = min(limit, input_limit(model.config, tokenizer))
    bos = [] if tokenizer.bos_id is None else [tokenizer.bos_id]
    eos = [] if tokenizer.eos_id is None else [tokenizer.eos_id]
    return {"text": (bos + tokenizer.encode(text) + eos)[:limit]}


def _rows(entry, number: int) -> list[Tensor]:
    """An id sequence ``(T,)`` or batch ``(B, T)`` as its rows."""
    tensor = entry if isinstance(entry, Tensor) else None
    if tensor is None:
        try:
            tensor = torch.tensor(list(entry), dtype=torch.long)
        except (TypeError, ValueError):
            raise TypeError(f"corpus item {number} must be a text, a sequence of ids (T,) or a "
                            f"batch (B, T), got {type(entry).__name__}") from None
    if tensor.is_floating_point() or tensor.dtype == torch.bool:
        raise TypeError(f"corpus item {number} must hold integer ids, got {tensor.dtype}")
    if tensor.dim() == 1:
        tensor = tensor[None]
    if tensor.dim() != 2 or tensor.shape[1] == 0:
        raise ValueError(f"corpus item {number} must be ids (T,) or (B, T) with T >= 1, got "
                         f"{shape_str(tensor.shape)}")
    return list(tensor.long().cpu())


def _decode(tokenizer, ids: Tensor) -> str | None:
    return None if tokenizer is None else tokenizer.decode(ids.tolist())
