"""The commands under torchrun: one world per command, inputs dealt out by batch, one output.

``torchrun --nproc-per-node N -m qkv evaluate|translate|classify|embed …`` runs the command in N
processes. Each reads all the inputs and decodes its share of them: the inputs are sorted and cut
into batches exactly as one process would cut them (:func:`decoding_batches`), and the batches
are dealt round-robin, so every batch is decoded as one process decodes it — same padding, same
seeded sampling stream — and the outputs gathered on process 0, in input order, are those of
one process. Process 0 alone prints and writes; the others' standard output is silenced.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from qkv.training.distributed import (
    DEFAULT_TIMEOUT,
    DistributedError,
    World,
    is_communication_error,
    join_world,
)

__all__ = ["add_distributed_options", "command_world", "decoding_batches", "translate_shared",
           "classify_shared", "embed_shared", "require_file_input", "on_device"]


def add_distributed_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dist-timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="under torchrun: how long a process waits for the others before "
                             "it gives up with an error (one that died is noticed at once)")


@contextlib.contextmanager
def command_world(command: str, timeout: float) -> Iterator[World]:
    """The :class:`~qkv.training.distributed.World` a command runs in (one process without
    torchrun). Other processes than 0 print nothing on standard output; a lost process ends the
    command with one line naming it (exit status 1), not a hang or a traceback."""
    if isinstance(timeout, bool) or not (isinstance(timeout, (int, float)) and 0 < timeout < 1e9):
        raise ValueError(f"--dist-timeout must be a positive number of seconds, got {timeout!r}")
    with join_world(timeout) as world:
        try:
            with _quiet_unless_main(world):
                yield world
        except Exception as error:
            if world.size > 1 and is_communication_error(error):
                lost = error if isinstance(error, DistributedError) else world.lost(error)
                raise SystemExit(f"{command}: error: {lost}") from error
            raise


@contextlib.contextmanager
def _quiet_unless_main(world: World) -> Iterator[None]:
    if world.is_main:
        yield
        return
    with open(os.devnull, "w", encoding="utf-8") as devnull, contextlib.redirect_stdout(devnull):
        yield


def require_file_input(world: World, texts: Sequence[str], file: str | None, command: str) -> None:
    """Under torchrun, inputs come as arguments or from ``--input FILE``: stdin reaches one
    process only."""
    if world.distributed and not texts and (file is None or file == "-"):
        raise SystemExit(f"{command}: under torchrun, give the inputs with --input FILE (or as "
                         f"arguments): standard input does not reach every process")


def decoding_batches(count: int, batch_size: int, lengths: Sequence[int] | None = None
                     ) -> list[tuple[int, list[int]]]:
    """The batches one process decodes ``count`` inputs in, as ``(start, indices)``: the inputs
    sorted by ``lengths`` (stably; in input order without them) and cut every ``batch_size``;
    ``start`` is the batch's first position in that order.

    Example:
        >>> decoding_batches(4, 2, [5, 1, 3, 1]), decoding_batches(3, 2)
        ([(0, [1, 3]), (2, [2, 0])], [(0, [0, 1]), (2, [2])])
    """
    order = list(range(count)) if lengths is None else sorted(range(count),
                                                              key=lengths.__getitem__)
    return [(start, order[start:start + batch_size]) for start in range(0, len(order), batch_size)]


def _shared(world: World, count: int, batches: list[tuple[int, list[int]]],
            decode: Callable[[int, list[int]], list], everywhere: bool) -> list | None:
    """``decode(start, indices)`` over this process's share of ``batches``; the outputs of all
    processes in input order, on process 0 (``everywhere``: on each), else ``None``."""
    mine: list[tuple[int, Any]] = []
    for start, indices in world.shard(batches):
        mine.extend(zip(indices, decode(start, indices)))
    pairs = world.all_gather(mine) if everywhere else world.gather(mine)
    if pairs is None:
        return None
    outputs: list = [None] * count
    for index, output in pairs:
        outputs[index] = output
    return outputs


def translate_shared(world: World, model, source_tokenizer, target_tokenizer, texts: list[str],
                     strategy, *, batch_size: int = 64, max_len: int | None = None,
                     everywhere: bool = False) -> list | None:
    """:func:`~qkv.decoding.text.translate_texts` over the processes of ``world``: its outputs
    on process 0 (``everywhere``: on each), ``None`` on the others."""
    from qkv.decoding import Sampling
    from qkv.decoding.text import translate_texts

    if world.size == 1:
        return translate_texts(model, source_tokenizer, target_tokenizer, texts, strategy,
                               batch_size=batch_size, max_len=max_len)
    # translate_texts sorts by the encoded source (+ <eos>) and seeds sampling per batch with
    # seed + the batch's first position: both reproduced, so each batch decodes as in one process
    lengths = [len(source_tokenizer.encode(text)) for text in texts]

    def decode(start: int, indices: list[int]) -> list:
        batch_strategy = strategy
        if isinstance(strategy, Sampling) and strategy.seed is not None:
            batch_strategy = dataclasses.replace(strategy, seed=strategy.seed + start)
        return translate_texts(model, source_tokenizer, target_tokenizer,
                               [texts[i] for i in indices], batch_strategy,
                               batch_size=batch_size, max_len=max_len)
    return _shared(world, len(texts), decoding_batches(len(texts), batch_size, lengths), decode,
                   everywhere)


def classify_shared(world: World, model, tokenizer, texts: list[str], *, batch_size: int = 64):
    """:func:`~qkv.decoding.classify.classify_texts` over the processes of ``world``: the
    ``(N, C)`` probabilities on process 0, ``None`` on the others."""
    import torch

    from qkv.decoding.classify import classify_texts, input_limit
    from qkv.training.tasks import classification_ids

    if world.size == 1:
        return classify_texts(model, tokenizer, texts, batch_size=batch_size)
    limit = input_limit(model.config, tokenizer)                 # classify_texts' own sort key
    lengths = [len(classification_ids(tokenizer, text, limit)) for text in texts]

    def decode(start: int, indices: list[int]) -> list:
        return list(classify_texts(model, tokenizer, [texts[i] for i in indices],
                                   batch_size=batch_size))
    rows = _shared(world, len(texts), decoding_batches(len(texts), batch_size, lengths), decode,
                   False)
    if rows is None:
        return None
    return torch.stack(rows) if rows else torch.zeros(0, len(model.labels))       # (N, C)


def embed_shared(world: World, model, tokenizer, sentences: list[str], *, batch_size: int = 32):
    """:func:`~qkv.pretrained.embed_sentences` over the processes of ``world``: the ``(N, E)``
    vectors on process 0, ``None`` on the others."""
    import torch

    from qkv.pretrained import embed_sentences

    if world.size == 1:
        return embed_sentences(model, tokenizer, sentences, batch_size=batch_size)

    def decode(start: int, indices: list[int]) -> list:
        return list(embed_sentences(model, tokenizer, [sentences[i] for i in indices],
                                    batch_size=batch_size).cpu())
    rows = _shared(world, len(sentences), decoding_batches(len(sentences), batch_size), decode,
                   False)
    if rows is None:
        return None
    return torch.stack(rows) if rows else torch.zeros(0, model.config.d_model)     # (N, E)


def on_device(world: World, model):
    """The model on this process's device (its GPU under nccl); unmoved for one process."""
    return model.to(world.device) if world.distributed else model

