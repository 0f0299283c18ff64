"""Decoding from text to text: tokenize, batch with padding, decode, detokenize. With a strategy's
``num_return`` K > 1, every input gets a list of K texts (beam search: best first)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import torch
from torch import nn

from qkv._checks import check_positive_int
from qkv.decoding.search import Greedy, Sampling, Strategy, generate, translate
from qkv.tokenizers.base import Tokenizer
from qkv.training.tasks import pad_batch

__all__ = ["translate_texts", "generate_texts"]


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def translate_texts(model: nn.Module, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer,
                    texts: Sequence[str], strategy: Strategy = Greedy(), *, batch_size: int = 64,
                    max_len: int | None = None) -> list[str] | list[list[str]]:
    """Translate ``texts`` with an encoder–decoder, ``batch_size`` sentences at a time (sorted by
    length so that batches hold little padding); outputs come back in the input order. Seeded
    sampling seeds each batch with ``seed + its first row``. With ``strategy.num_return`` K > 1,
    a list of K translations per text."""
    check_positive_int("batch_size", batch_size)
    _check_texts("texts", texts)
    source_tokenizer.require("eos")
    target_tokenizer.require("bos", "eos")
    encoded = [source_tokenizer.encode(text) + [source_tokenizer.eos_id] for text in texts]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    outputs: list = [""] * len(texts)
    # the model's pad id, else the tokenizer's (a converted Marian model masks by the tokenizer's)
    pad = model.config.pad_id if model.config.pad_id is not None else source_tokenizer.pad_id
    if pad is None:
        batch_size = 1                                      # nothing to pad with: one at a time
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        source = pad_batch([encoded[i] for i in rows], 0 if pad is None else pad)   # (B, S)
        source = source.to(_device(model))
        for row, ids in zip(rows, translate(model, source, _for_batch(strategy, start),
                                            bos_id=target_tokenizer.bos_id,
                                            eos_id=target_tokenizer.eos_id, max_len=max_len,
                                            source_pad_id=pad)):
            outputs[row] = _each(target_tokenizer.decode, ids, strategy)
    return outputs


def generate_texts(model: nn.Module, tokenizer: Tokenizer, prompts: Sequence[str],
                   strategy: Strategy = Greedy(), *, max_new_tokens: int = 100,
                   batch_size: int = 64) -> list[str] | list[list[str]]:
    """Continue each prompt; returns the continuations only (with ``strategy.num_return`` K > 1,
    a list of K continuations per prompt). ``<bos>`` goes first when the tokenizer has one and its
    models read prompts so (``tokenizer.prompt_bos``), and always before an empty prompt."""
    check_positive_int("batch_size", batch_size)
    _check_texts("prompts", prompts)
    encoded = [tokenizer.prompt_ids(p) for p in prompts]
    if any(not ids for ids in encoded):
        raise ValueError("an empty prompt needs a tokenizer with a <bos> token")
    outputs = []
    for start in range(0, len(encoded), batch_size):
        batch = encoded[start:start + batch_size]
        for prompt, ids in zip(batch, generate(model, batch, _for_batch(strategy, start),
                                               eos_id=tokenizer.eos_id,
                                               max_new_tokens=max_new_tokens)):
            outputs.append(_each(functools.partial(_continuation, tokenizer, prompt), ids,
                                 strategy))
    return outputs


def _each(decode, hypotheses: list, strategy: Strategy) -> str | list[str]:
    """``decode`` applied to one input's ids, or to each of its ``num_return`` K > 1 lists."""
    if getattr(strategy, "num_return", 1) > 1:
        return [decode(ids) for ids in hypotheses]
    return decode(hypotheses)


def _check_texts(name: str, texts: object) -> None:
    """A sequence of str (a str itself would be read character by character)."""
    if isinstance(texts, str) or not isinstance(texts, Sequence) or not all(
            isinstance(text, str) for text in texts):
        raise TypeError(f"{name} must be a sequence of str (a list of texts), got "
                        f"{type(texts).__name__} {texts!r:.60}")


def _continuation(tokenizer: Tokenizer, prompt: list[int], new: list[int]) -> str:
    """The text that ``new`` adds after ``prompt``: decoded together, so that the boundary
    between them (a space between words, BPE's word marker) is kept."""
    whole, head = tokenizer.decode(prompt + new), tokenizer.decode(prompt)
    return whole[len(head):] if whole.startswith(head) else tokenizer.decode(new)


def _for_batch(strategy: Strategy, start: int) -> Strategy:
    """Seeded sampling draws a different stream for each batch: seed + index of its first row."""
    if isinstance(strategy, Sampling) and strategy.seed is not None:
        return dataclasses.replace(strategy, seed=strategy.seed + start)
    return strategy
