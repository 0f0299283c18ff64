"""Several processes, one run: ``torch.distributed`` as torchrun sets it up.

``torchrun --nproc-per-node N -m qkv train …`` starts N copies of the command and tells each its
place through environment variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``). :func:`join_world` reads them, joins the process group — gloo on CPUs, nccl
when CUDA is available, one GPU per process (``cuda:LOCAL_RANK``) — and returns a
:class:`World`: this process's ``rank`` among ``size`` and the few collective operations qkv
needs (deal items out, gather results back in order, sum numbers, wrap a model in
``DistributedDataParallel``). Without torchrun's variables it returns :data:`SINGLE`, one
process, whose operations do nothing: code written against a world runs unchanged, and
unslowed, in a single process.

A collective waits at most ``timeout`` seconds for the other processes; one whose peer died
fails at once (its connection closes). :func:`is_communication_error` recognises both, so that
a command can end with one line that says what happened instead of a hang or a traceback.

Example:
    >>> SINGLE.shard(["a", "b", "c"]), SINGLE.all_gather(["a", "b", "c"]), SINGLE.is_main
    (['a', 'b', 'c'], ['a', 'b', 'c'], True)
    >>> interleave([["a", "c"], ["b"]])                      # what 2 ranks' shards gather to
    ['a', 'b', 'c']
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import nn

__all__ = ["World", "SINGLE", "join_world", "under_torchrun", "interleave",
           "is_communication_error", "DistributedError", "torchrun_command", "DEFAULT_TIMEOUT",
           "TORCHRUN_VARIABLES"]

T = TypeVar("T")
DEFAULT_TIMEOUT = 120.0          # seconds a collective waits for the other processes
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# Words in the errors gloo and nccl raise when a peer is gone or silent (they are plain
# RuntimeErrors, or torch.distributed.DistError and its subclasses).
_COMMUNICATION_WORDS = ("gloo", "nccl", "connection reset", "connection closed", "broken pipe",
                        "timed out", "timeout", "socket", "processgroup", "connection refused")


class DistributedError(RuntimeError):
    """A run of several processes could not go on: another process died or stopped answering."""


@dataclass(frozen=True)
class World:
    """The processes of a run and this one's place among them.

    Attributes:
        rank: this process, 0 to ``size - 1``; rank 0 writes checkpoints, logs and outputs.
        size: how many processes.
        local_rank: this process on its machine (its GPU under nccl).
        backend: ``"gloo"`` or ``"nccl"``; ``None`` for one process without a process group.
        device: where this process's model lives: ``cuda:LOCAL_RANK`` under nccl, else the CPU.
        timeout: seconds a collective waits for the others.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    timeout: float = DEFAULT_TIMEOUT

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether a process group was joined (even one of one process)."""
        return self.backend is not None

    def describe(self) -> str:
        return (f"{self.size} process{'es' if self.size != 1 else ''} ({self.backend}, "
                f"{self.device.type})" if self.distributed else "1 process")

    # -- dealing out and gathering in ---------------------------------------------------------

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's share of ``items``: ``items[rank::size]`` (all of them for one process)."""
        return list(items[self.rank::self.size])

    def all_gather(self, mine: Sequence[T]) -> list[T]:
        """Every rank's :meth:`shard` results put back in the order of the items dealt out,
        on every rank (a list of any picklable values)."""
        if self.size == 1:
            return list(mine)
        shards: list[Any] = [None] * self.size
        torch.distributed.all_gather_object(shards, list(mine))
        return interleave(shards)

    def gather(self, mine: Sequence[T]) -> list[T] | None:
        """As :meth:`all_gather`, but only rank 0 receives the list; the others get ``None``."""
        if self.size == 1:
            return list(mine)
        shards: list[Any] | None = [None] * self.size if self.is_main else None
        torch.distributed.gather_object(list(mine), shards, dst=0)
        return interleave(shards) if self.is_main else None

    def all_sum(self, values: Sequence[float]) -> list[float]:
        """``values`` summed over the ranks (in float64), on every rank."""
        if self.size == 1:
            return [float(v) for v in values]
        total = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self._wire)
        torch.distributed.all_reduce(total)
        return total.tolist()

    def all_max(self, values: Sequence[float]) -> list[float]:
        """``values``' maximum over the ranks, on every rank: for decisions all must share
        (stop now: any rank's signal or time budget)."""
        if self.size == 1:
            return [float(v) for v in values]
        top = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self._wire)
        torch.distributed.all_reduce(top, op=torch.distributed.ReduceOp.MAX)
        return top.tolist()

    def barrier(self) -> None:
        if self.size > 1:
            torch.distributed.barrier()

    def check_same(self, value: str, what: str) -> None:
        """Raise ``ValueError`` unless every rank holds the same ``value`` (e.g. a digest of
        the tokenizers each rank built): ranks that disagree would train different models."""
        if self.size == 1:
            return
        values: list[Any] = [None] * self.size
        torch.distributed.all_gather_object(values, value)
        differing = [rank for rank, other in enumerate(values) if other != values[0]]
        if differing:
            raise ValueError(f"the processes disagree on {what}: ranks {differing} differ from "
                             f"rank 0; every process must build the same run (same data, "
                             f"options and qkv version)")

    # -- models ---------------------------------------------------------------------------------

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` (moved to :attr:`device`) in ``DistributedDataParallel``, which averages
        the gradients over the ranks in ``backward`` and starts every rank from rank 0's
        weights; the model itself for one process."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        model.to(self.device)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def seed(self, seed: int, *salt: int) -> int:
        """A torch seed for this rank: ``seed`` itself on rank 0 (so one process draws what it
        always drew), a different one on each other rank, so that dropout masks differ."""
        if self.rank == 0 and not salt:
            return seed
        return random.Random(f"{seed}:{self.rank}:{':'.join(map(str, salt))}").getrandbits(63)

    @property
    def _wire(self) -> torch.device:
        """Where collective tensors live: nccl moves GPU tensors only."""
        return self.device if self.backend == "nccl" else torch.device("cpu")

    # -- failure ----------------------------------------------------------------------------------

    def lost(self, error: BaseException, where: str = "", then: str = "") -> DistributedError:
        """The :class:`DistributedError` to raise for a communication ``error`` met ``where``
        (e.g. ``"at step 40"``); ``then``: what the user can do next."""
        first = " ".join(str(error).split())[:200]
        return DistributedError(
            f"process {self.rank} of {self.size} lost contact with the others"
            f"{' ' + where if where else ''}: another process died or did not answer within "
            f"{self.timeout:g} s ({type(error).__name__}: {first}){'; ' + then if then else ''}")


SINGLE = World()


def interleave(shards: Sequence[Sequence[T]]) -> list[T]:
    """Undo :meth:`World.shard`: rank ``r``'s ``i``-th item was item ``i · size + r``."""
    size = len(shards)
    merged: list[T] = []
    for index in range(max((len(s) for s in shards), default=0)):
        merged.extend(shards[rank][index] for rank in range(size) if index < len(shards[rank]))
    return merged


def under_torchrun(environ: dict[str, str] | None = None) -> bool:
    """Whether this process was started by torchrun: ``RANK`` or ``WORLD_SIZE`` is set (a
    ``MASTER_ADDR`` or ``LOCAL_RANK`` alone, as some clusters export, is not enough).

    Raises:
        ValueError: ``RANK`` or ``WORLD_SIZE`` is set, but not all of torchrun's variables.
    """
    environ = os.environ if environ is None else environ
    if "RANK" not in environ and "WORLD_SIZE" not in environ:
        return False
    present = [name for name in TORCHRUN_VARIABLES if name in environ]
    missing = [name for name in TORCHRUN_VARIABLES if name not in environ]
    if missing:
        raise ValueError(f"a distributed run needs the environment variables "
                         f"{', '.join(TORCHRUN_VARIABLES)}, as torchrun sets them; "
                         f"{', '.join(missing)} missing (found {', '.join(present)})")
    return True


@contextlib.contextmanager
def join_world(timeout: float = DEFAULT_TIMEOUT) -> Iterator[World]:
    """The :class:`World` this process runs in, for the duration of the ``with`` block.

    Under torchrun: joins the process group (gloo, or nccl when CUDA is available) with
    ``timeout`` seconds for every collective, and leaves it at the end; a process group the
    caller initialised already is used as it is and left to the caller. Otherwise
    :data:`SINGLE`.

    Raises:
        ValueError: ``timeout`` is not a positive number of seconds; torchrun's variables are
            incomplete or not numbers.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (
            0 < timeout < math.inf):
        raise ValueError(f"the distributed timeout must be a positive number of seconds, got "
                         f"{timeout!r}")
    dist = torch.distributed
    ours = False
    if not (dist.is_available() and (dist.is_initialized() or under_torchrun())):
        yield SINGLE
        return
    if not dist.is_initialized():
        rank, size, local_rank = (_integer(name) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        options: dict[str, Any] = {}
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
            options["device_id"] = torch.device("cuda", local_rank)
        dist.init_process_group(backend, rank=rank, world_size=size,
                                timeout=datetime.timedelta(seconds=timeout), **options)
        ours = True
    backend = dist.get_backend()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = (torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu"))
    world = World(dist.get_rank(), dist.get_world_size(), local_rank, backend, device,
                  float(timeout))
    try:
        yield world
    finally:
        if ours:
            with contextlib.suppress(Exception):   # a broken group may not close cleanly
                dist.destroy_process_group()


def _integer(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"the environment variable {name} must be an integer (torchrun sets "
                         f"it), got {value!r}") from None


def is_communication_error(error: BaseException) -> bool:
    """Whether ``error`` came from the process group: a peer gone (connection reset or
    closed) or silent past the timeout. Such errors are plain ``RuntimeError``\\ s from gloo,
    or ``torch.distributed.DistError``."""
    dist_error = getattr(torch.distributed, "DistError", None)
    if dist_error is not None and isinstance(error, dist_error):
        return True
    if isinstance(error, DistributedError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(word in text for word in _COMMUNICATION_WORDS)


def torchrun_command(nproc: int, arguments: Sequence[str]) -> list[str]:
    """The command that runs ``python -m qkv ARGUMENTS`` in ``nproc`` processes on this
    machine: ``python -m torch.distributed.run --standalone --nproc-per-node N -m qkv …``
    (``--standalone``: a rendezvous on a free local port).

    Example:
        >>> torchrun_command(2, ["train", "reverse"])[1:]
        ['-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2', '-m', 'qkv', 'train', 'reverse']
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"--nproc must be a number of processes >= 1, got {nproc!r}")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
            str(nproc), "-m", "qkv", *arguments]
