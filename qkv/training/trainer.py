"""The training loop: batches by token count, Adam with a schedule, clipping, validation,
metrics, checkpoints, a time budget, and exact resumption.

Every logged number goes to the run folder twice: ``metrics.jsonl`` (one JSON object a line) and
TensorBoard event files in ``tensorboard/`` (``tensorboard --logdir RUN``), tagged
``train/loss``, ``valid/bleu``… at the step; at the end the curves are drawn to ``curves.png``.

SIGTERM and SIGINT (Ctrl-C) stop training cleanly: the step under way is finished, a checkpoint
is saved at it and :func:`train` returns with ``stopped == "interrupted"``; a second signal
stops at once. Leftovers of a run killed while saving are swept when the next run starts
(:func:`~qkv.training.checkpoint.sweep_leftovers`).

Everything that decides what happens next is saved with each checkpoint — the weights, Adam's
moments, the step, the position in the epoch's batch order (a pure function of the seed and the
epoch) and the torch and Python RNG states — so ``resume`` continues bit for bit as if training
had never stopped (on the same machine and PyTorch build).

Several processes (``world``, :mod:`qkv.training.distributed`; ``torchrun -m qkv train``): every
process computes the same epoch order of batches, and a step takes the next ``size ×
accumulate`` of them, process ``r`` the ``r``-th, ``r + size``-th… of those; the gradients are
summed over all of them (``DistributedDataParallel``) and divided by their target tokens all
together, so a step is the step one process would take on all those batches at once
(``accumulate = size``). An epoch's last batches too few for a whole step are skipped (none for
one process without accumulation). The checkpoint records the position as global batches of
the epoch, so a run resumes on any number of processes. Process 0 alone writes checkpoints,
metrics, TensorBoard and the progress bar; validation is shared out over the processes and its
sums gathered, giving the numbers one process would.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qkv.data.batching import token_batches
from qkv.training.checkpoint import (
    load_training_state,
    load_weights,
    resolve_checkpoint,
    save_checkpoint,
    sweep_leftovers,
)
from qkv.training.distributed import SINGLE, World, is_communication_error
from qkv.training.schedule import Schedule

__all__ = ["TrainConfig", "TrainResult", "train", "evaluate_loss", "evaluate_accuracy"]

_METRICS_STAGING = ".metrics.jsonl.tmp"          # metrics.jsonl rewritten, then renamed


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Defaults follow the paper where it speaks (Adam β = (0.9, 0.98), ε = 1e-9,
    the warm-up schedule, label smoothing 0.1).

    Args:
        steps: optimizer steps in all.
        max_tokens: padded tokens per batch (source and target each).
        schedule: ``"warmup"`` (the paper), ``"constant"`` or ``"cosine"``
            (:class:`~qkv.training.schedule.Schedule`); ``lr`` scales the paper's formula, or is
            the peak rate of the other two.
        warmup_steps: linear warm-up length.
        label_smoothing: ε_ls.
        clip_norm: gradient-norm clipping; ``None`` for none.
        eval_every, save_every, log_every: in steps (0: only at the end).
        keep: how many checkpoints to keep in the output folder.
        seed: seeds the initialisation (by the caller), batch order and dropout.
        max_time: a time budget in seconds for one call of :func:`train` (``None``: none).
            Training stops after the first step that ends past it, then validates and saves a
            checkpoint as at the end; ``resume`` continues from there with a fresh budget.
        eval_subset: how many validation examples, the first ones, the validation metrics
            beyond the loss (BLEU, accuracy: ``extra_validation``) are computed on (0: all);
            the loss always uses all of them.
        accumulate: batches per step on each process (gradient accumulation): a step takes
            ``processes × accumulate`` batches of ``max_tokens``, its gradient the mean over
            all their target tokens.
    """

    steps: int = 1000
    max_tokens: int = 4096
    schedule: str = "warmup"
    lr: float = 1.0
    warmup_steps: int = 4000
    label_smoothing: float = 0.1
    clip_norm: float | None = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    eval_every: int = 0
    save_every: int = 0
    log_every: int = 20
    keep: int = 2
    seed: int = 0
    max_time: float | None = None
    eval_subset: int = 200
    accumulate: int = 1

    def __post_init__(self) -> None:
        for name in ("steps", "max_tokens", "warmup_steps", "keep", "accumulate"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.max_time is not None and (isinstance(self.max_time, bool) or not (
                isinstance(self.max_time, (int, float)) and 0 < self.max_time < math.inf)):
            raise ValueError(f"max_time must be a positive number of seconds or None, got "
                             f"{self.max_time!r}")
        for name in ("eval_every", "save_every", "log_every", "eval_subset"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.clip_norm is not None and self.clip_norm <= 0:
            raise ValueError(f"clip_norm must be > 0 or None, got {self.clip_norm}")
        object.__setattr__(self, "betas", tuple(self.betas))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    """What a run ended with: the step, the last validation metrics, the final checkpoint, why
    it stopped (``stopped``: ``"steps"``, all of ``config.steps`` done; ``"max_time"``, the
    time budget ran out first; or ``"interrupted"``, by SIGTERM or SIGINT) and the same in
    words (``message``)."""

    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: Path | None = None
    stopped: str = "steps"
    message: str = ""


def evaluate_loss(model: nn.Module, task, examples: Sequence, *, max_tokens: int,
                  world: World = SINGLE) -> dict[str, float]:
    """Mean NLL per target token and perplexity over ``examples`` (no smoothing, eval mode).

    ``world``: several processes share the batches out (each calls this with the same
    examples) and sum what all of them measured, batch by batch in the one-process order: the
    same numbers as one process, on every process."""
    was_training = model.training
    model.eval()
    nll, tokens = 0.0, 0
    with torch.no_grad():
        batches = token_batches(task.lengths(examples), max_tokens, seed=None)
        sums = []
        for batch in world.shard(batches):
            result = task.loss(model, task.collate([examples[i] for i in batch]), 0.0)
            sums.append((result.nll.item(), result.tokens.item()))
        for batch_nll, batch_tokens in world.all_gather(sums):
            nll += batch_nll
            tokens += batch_tokens
    model.train(was_training)
    loss = nll / max(tokens, 1)
    return {"loss": loss, "ppl": math.exp(min(loss, 50.0))}


def evaluate_accuracy(model: nn.Module, task, examples: Sequence, *, max_tokens: int,
                      world: World = SINGLE) -> dict[str, float]:
    """A classifier's accuracy (%) on ``examples`` (``task.encode`` outputs: ids and label
    index), batched as in training, in eval mode; ``world``: shared out as
    :func:`evaluate_loss` does."""
    was_training = model.training
    model.eval()
    right = 0
    device = next(model.parameters()).device
    with torch.no_grad():
        batches = token_batches(task.lengths(examples), max_tokens, seed=None)
        counts = []
        for batch in world.shard(batches):
            inputs = task.collate([examples[i] for i in batch])
            predicted = model(inputs.inputs.to(device)).argmax(dim=-1)              # (B,)
            counts.append((predicted.cpu() == inputs.targets).sum().item())
        right = sum(world.all_gather(counts))
    model.train(was_training)
    return {"accuracy": 100.0 * right / max(len(examples), 1)}


def train(
    model: nn.Module,
    task,
    train_examples: Sequence,
    valid_examples: Sequence,
    config: TrainConfig,
    *,
    output: str | Path,
    metadata: dict[str, Any] | None = None,
    resume: bool = False,
    extra_validation: Callable[[nn.Module], dict[str, float]] | None = None,
    progress: bool = True,
    clock: Callable[[], float] = time.monotonic,
    world: World = SINGLE,
) -> TrainResult:
    """Train ``model`` on ``task`` (:mod:`qkv.training.tasks`) and checkpoint it in ``output``.

    Args:
        train_examples, valid_examples: ``task.encode(...)`` outputs.
        output: the run folder: checkpoints (``step-NNNNNNNN/``, ``latest``), ``metrics.jsonl``
            (one JSON object per logged step or validation), the same numbers as TensorBoard
            event files in ``tensorboard/``, and ``curves.png`` (drawn at the end).
        metadata: saved with every checkpoint (e.g. where the data came from).
        resume: continue from ``output``'s latest checkpoint (weights, optimizer, RNG, batch);
            metrics logged after that checkpoint (by a run that was killed) are dropped from
            ``metrics.jsonl`` and hidden in TensorBoard, so that no step is logged twice.
        extra_validation: more validation metrics, e.g. BLEU, computed after the loss, with the
            model in eval mode (on ``config.eval_subset`` examples: the caller picks them).
            With several processes it is called on each, with the same examples.
        progress: show a progress bar with loss, perplexity, learning rate, tokens/s and the
            last validation metrics.
        clock: seconds, for ``config.max_time`` (read once before the first step and once after
            each step).
        world: the processes training together (:func:`~qkv.training.distributed.join_world`;
            each calls ``train`` with the same arguments); one process by default.

    SIGTERM or SIGINT (Ctrl-C; in the main thread, unless the signal is ignored) ends training
    after the step under way, without validation, with a checkpoint at that step; a second one
    raises ``KeyboardInterrupt`` at once. The previous handlers are restored on return. With
    several processes, a signal or the time budget on any one stops them all after the same step.

    Returns:
        a :class:`TrainResult`; its ``stopped`` says whether the steps or the time ran out, or
        a signal came. Processes other than 0 get no checkpoint path.

    Raises:
        DistributedError: another process died or stopped answering
            (:class:`~qkv.training.distributed.DistributedError`).
    """
    output = Path(output)
    if not train_examples:
        raise ValueError("no training examples")
    main = world.is_main
    group = world.size * config.accumulate           # batches a step takes, over all processes
    schedule = Schedule(config.schedule, warmup_steps=config.warmup_steps,
                        d_model=model.config.d_model, scale=config.lr, total_steps=config.steps)
    if world.distributed:
        model.to(world.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=schedule(1), betas=config.betas,
                                 eps=config.eps)
    step, epoch, position = 0, 0, 0
    if main:
        sweep_leftovers(output)                  # what a run killed while saving left behind,
        (output / _METRICS_STAGING).unlink(missing_ok=True)   # or while rewriting the metrics
    world.barrier()                              # no process reads the folder while it is swept
    if resume:
        checkpoint = resolve_checkpoint(output)
        load_weights(checkpoint, model)
        saved = load_training_state(checkpoint, optimizer, rank=world.rank)
        step, epoch, position = (saved["progress"][key] for key in ("step", "epoch", "batch"))
        before = saved["progress"].get("batches_per_step", 1)
        if before != group and main:
            print(f"note: {checkpoint.name} was trained with {before} batch(es) a step, this run "
                  f"takes {group} ({world.size} process(es) × accumulate {config.accumulate}): "
                  f"the data goes on from the same batch, with a different batch a step",
                  file=sys.stderr)
    else:
        torch.manual_seed(world.seed(config.seed))
        random.seed(config.seed)
    if main:
        output.mkdir(parents=True, exist_ok=True)
    log = _MetricsLog(output, resumed_at=step if resume else None) if main else _Silent()
    trained = world.wrap(model)                  # DistributedDataParallel, or the model itself
    lengths = task.lengths(train_examples)
    metrics: dict[str, float] = {}
    last_checkpoint = None
    stopped = "steps"
    bar = _progress_bar(config.steps, step, progress) if main else _Silent()
    shown: dict[str, dict[str, str]] = {"train": {}, "valid": {}}     # the bar's last numbers
    # tokens/s: over the steps since the last log, training time only (validation and saving
    # are left out by moving ``tick`` on past them)
    tick, window_loss, window_nll, window_tokens = time.perf_counter(), 0.0, 0.0, 0
    started = clock()
    signalled = None                             # the signal that stopped the run, by name

    def save() -> Path | None:
        nonlocal last_checkpoint
        states = world.gather([torch.get_rng_state()])          # each process's dropout RNG
        if not main:
            return None
        last_checkpoint = save_checkpoint(
            output, model=model, task=task.name, source_tokenizer=task.source_tokenizer,
            target_tokenizer=task.target_tokenizer, step=step, optimizer=optimizer, keep=config.keep,
            rank_rng_states=states[1:],
            metadata={**(metadata or {}), "training": config.to_dict(), "metrics": metrics,
                      "progress": {"step": step, "epoch": epoch, "batch": position,
                                   "batches_per_step": group, "processes": world.size}})
        return last_checkpoint

    def validate() -> None:
        nonlocal metrics
        metrics = evaluate_loss(model, task, valid_examples, max_tokens=config.max_tokens,
                                world=world)
        if extra_validation is not None:
            model.eval()
            metrics.update(extra_validation(model))
        log.write({"step": step, "split": "valid", **metrics})
        bar.write(f"step {step}: valid " + " ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
        shown["valid"] = {f"valid_{k}": f"{v:.4g}" for k, v in metrics.items() if k != "ppl"}
        bar.set_postfix({**shown["train"], **shown["valid"]})

    stop = _SignalStop()
    try:
        stop.install()
        model.train()
        while step < config.steps and stopped == "steps":
            batches = token_batches(lengths, config.max_tokens, seed=config.seed, epoch=epoch)
            if len(batches) < group:
                raise ValueError(f"the training data makes {len(batches)} batches of "
                                 f"{config.max_tokens} tokens an epoch, fewer than the {group} a "
                                 f"step takes ({world.size} process(es) × accumulate "
                                 f"{config.accumulate}): lower max_tokens, the processes or "
                                 f"accumulate")
            while position + group <= len(batches) and step < config.steps:
                step_batches = [[train_examples[i] for i in batch]
                                for batch in batches[position:position + group]]
                position += group
                step += 1
                lr = schedule(step)
                for param_group in optimizer.param_groups:
                    param_group["lr"] = lr
                if group == 1:                   # one process, one batch: the loop as it was
                    result = task.loss(trained, task.collate(step_batches[0]),
                                       config.label_smoothing)
                    (result.loss / result.tokens.clamp(min=1)).backward()
                    sums = (result.loss.item(), result.nll.item(), result.tokens.item())
                else:
                    sums = _accumulated_backward(trained, task, world.shard(step_batches),
                                                 config.label_smoothing, world)
                if config.clip_norm is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

                window_loss += sums[0]
                window_nll += sums[1]
                window_tokens += sums[2]
                bar.update(1)
                out_of_time = config.max_time is not None and clock() - started >= config.max_time
                signalled = stop.signal
                if world.size > 1:               # all stop after the same step, or none does
                    out_of_time, signalled = _agree(world, out_of_time, signalled)
                if out_of_time:
                    stopped = "max_time"
                if signalled is not None and step < config.steps:
                    stopped = "interrupted"
                last = step == config.steps or stopped != "steps"
                if config.log_every and (step % config.log_every == 0 or last):
                    now = time.perf_counter()
                    record = {"step": step, "split": "train",
                              "loss": window_loss / max(window_tokens, 1),
                              "ppl": math.exp(min(window_nll / max(window_tokens, 1), 50.0)),
                              "lr": lr, "tokens_per_s": window_tokens / max(now - tick, 1e-9)}
                    tick = now
                    log.write(record)
                    shown["train"] = dict(loss=f"{record['loss']:.3f}", ppl=f"{record['ppl']:.2f}",
                                          lr=f"{lr:.2e}", tok_s=f"{record['tokens_per_s']:.0f}")
                    bar.set_postfix({**shown["train"], **shown["valid"]})
                    window_loss = window_nll = 0.0
                    window_tokens = 0
                if last:
                    break
                paused = time.perf_counter()
                if config.eval_every and step % config.eval_every == 0:
                    validate()
                    model.train()
                if config.save_every and step % config.save_every == 0:
                    save()
                tick += time.perf_counter() - paused
            if position + group > len(batches):
                epoch, position = epoch + 1, 0
        if stopped == "interrupted":                 # no validation: stop soon, as asked
            save()
            name = last_checkpoint.name if main else "(by process 0)"
            message = (f"stopped at step {step} of {config.steps}: interrupted by {signalled}; "
                       f"checkpoint {name} saved, resume goes on from it (qkv train --resume)")
        else:
            validate()
            save()
            message = (f"stopped at step {step} of {config.steps}: the time budget of "
                       f"{config.max_time:g} s ran out" if stopped == "max_time" else
                       f"stopped at step {step}: all {config.steps} steps done")
        bar.write(message)
    except Exception as error:
        if world.size > 1 and is_communication_error(error):
            raise world.lost(error, f"at step {step}", _last_checkpoint_words(output)) from error
        raise
    finally:
        stop.restore()
        bar.close()
        log.close()
    model.eval()
    if main:
        _draw_curves(output)
    return TrainResult(step, metrics, last_checkpoint, stopped, message)


def _last_checkpoint_words(output: Path) -> str:
    """Where a run of several processes that broke off can go on from, in words."""
    try:
        return (f"the last checkpoint, {resolve_checkpoint(output)}, is complete: --resume goes "
                f"on from it, on any number of processes")
    except (OSError, ValueError):
        return "no checkpoint was saved yet"


def _accumulated_backward(model: nn.Module, task, batches: list[list], smoothing: float,
                          world: World) -> tuple[float, float, float]:
    """Forward and backward over this process's ``batches`` of a step (examples, not yet
    collated), then the gradients scaled to the mean over the target tokens of the step's
    batches on all processes — the gradient one process would get from all of them at once.
    Returns the step's summed loss, NLL and token count over all processes.

    ``DistributedDataParallel`` sums the gradients over the processes at the last backward
    (``no_sync`` before it) and divides them by the number of processes, which the scale
    undoes."""
    sums = [0.0, 0.0, 0.0]
    for index, examples in enumerate(batches):
        syncing = index == len(batches) - 1 or not hasattr(model, "no_sync")
        with nullcontext() if syncing else model.no_sync():
            result = task.loss(model, task.collate(examples), smoothing)
            result.loss.backward()
        for k, value in enumerate((result.loss.item(), result.nll.item(), result.tokens.item())):
            sums[k] += value
    loss, nll, tokens = world.all_sum(sums)
    scale = world.size / max(tokens, 1.0)
    for parameter in model.parameters():
        if parameter.grad is not None:
            parameter.grad.mul_(scale)
    return loss, nll, tokens


def _agree(world: World, out_of_time: bool, signalled: str | None) -> tuple[bool, str | None]:
    """What every process decides after a step: out of time if any is; stopped by a signal if
    any got one (the highest-numbered signal's name)."""
    number = 0 if signalled is None else int(signal.Signals[signalled])
    any_out, top = world.all_max([float(out_of_time), float(number)])
    return bool(any_out), (signal.Signals(int(top)).name if top else None)


class _SignalStop:
    """Turns SIGTERM and SIGINT into a request to stop: ``signal`` becomes the signal's name
    (``"SIGTERM"``), for the training loop to see at the end of the step; a second signal raises
    ``KeyboardInterrupt``. Installed only in the main thread, and not for an ignored signal; the
    handlers do nothing else (printing from a signal handler can break a write under way)."""

    SIGNALS = ("SIGTERM", "SIGINT")

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for name in self.SIGNALS:
            number = getattr(signal, name, None)
            if number is None or signal.getsignal(number) is signal.SIG_IGN:
                continue
            self._previous[number] = signal.getsignal(number)
            signal.signal(number, self._handle)

    def _handle(self, number: int, frame) -> None:
        if self.signal is not None:              # the second one: stop at once
            self.restore()
            raise KeyboardInterrupt
        self.signal = signal.Signals(number).name

    def restore(self) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()


def _draw_curves(output: Path) -> None:
    """``output/curves.png`` from its ``metrics.jsonl``."""
    from qkv.views.curves import curve_series, read_metrics, save_curves

    series = curve_series(read_metrics(output))
    save_curves(series, output / "curves.png", title=f"training curves of {output.name}")


class _MetricsLog:
    """Writes each metrics record to ``metrics.jsonl`` and, as scalars tagged ``split/name`` at
    the record's step, to TensorBoard event files in ``tensorboard/``.

    ``resumed_at``: the step a resumed run continues from. Records after it, left by a run that
    was stopped between checkpoints, are dropped from ``metrics.jsonl``, and TensorBoard is told
    to purge its events from the next step on (``purge_step``).
    """

    def __init__(self, output: Path, *, resumed_at: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        path = output / "metrics.jsonl"
        if resumed_at is not None and path.exists():
            _truncate_metrics(path, resumed_at)
        self.file = path.open("a", encoding="utf-8")
        self.writer = SummaryWriter(str(output / "tensorboard"), flush_secs=10,
                                    purge_step=None if resumed_at is None else resumed_at + 1)

    def write(self, record: dict) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        for name, value in record.items():
            if name not in ("step", "split"):
                self.writer.add_scalar(f"{record['split']}/{name}", value, record["step"])

    def close(self) -> None:
        self.file.close()
        self.writer.close()


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep only the records of ``path`` (``metrics.jsonl``) up to ``step``, rewriting the file
    atomically; a last line cut short goes too."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if _step_of(line) <= step]
    if len(kept) == len(lines):
        return
    staging = path.with_name(_METRICS_STAGING)
    staging.write_text("".join(kept), encoding="utf-8")
    os.replace(staging, path)


def _step_of(line: str) -> float:
    """A metrics line's step; infinite for a line cut short by a killed run (so it is dropped)."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


class _NoBar:
    def update(self, n: int) -> None: ...
    def set_postfix(self, *args, **kwargs) -> None: ...
    def write(self, text: str) -> None: print(text, file=sys.stderr)
    def close(self) -> None: ...


class _Silent(_NoBar):
    """The bar and the metrics log of processes other than 0: they show and write nothing."""

    def write(self, record) -> None: ...


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr)
