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

    def __post_init__(self) -> None:
        for name in ("steps", "max_tokens", "warmup_steps", "keep"):
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


def evaluate_loss(model: nn.Module, task, examples: Sequence, *, max_tokens: int) -> dict[str, float]:
    """Mean NLL per target token and perplexity over ``examples`` (no smoothing, eval mode)."""
    was_training = model.training
    model.eval()
    nll, tokens = 0.0, 0
    with torch.no_grad():
        for batch in token_batches(task.lengths(examples), max_tokens, seed=None):
            result = task.loss(model, task.collate([examples[i] for i in batch]), 0.0)
            nll += result.nll.item()
            tokens += result.tokens.item()
    model.train(was_training)
    loss = nll / max(tokens, 1)
    return {"loss": loss, "ppl": math.exp(min(loss, 50.0))}


def evaluate_accuracy(model: nn.Module, task, examples: Sequence, *,
                      max_tokens: int) -> dict[str, float]:
    """A classifier's accuracy (%) on ``examples`` (``task.encode`` outputs: ids and label
    index), batched as in training, in eval mode."""
    was_training = model.training
    model.eval()
    right = 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for batch in token_batches(task.lengths(examples), max_tokens, seed=None):
            inputs = task.collate([examples[i] for i in batch])
            predicted = model(inputs.inputs.to(device)).argmax(dim=-1)              # (B,)
            right += (predicted.cpu() == inputs.targets).sum().item()
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
        progress: show a progress bar with loss, perplexity, learning rate, tokens/s and the
            last validation metrics.
        clock: seconds, for ``config.max_time`` (read once before the first step and once after
            each step).

    SIGTERM or SIGINT (Ctrl-C; in the main thread, unless the signal is ignored) ends training
    after the step under way, without validation, with a checkpoint at that step; a second one
    raises ``KeyboardInterrupt`` at once. The previous handlers are restored on return.

    Returns:
        a :class:`TrainResult`; its ``stopped`` says whether the steps or the time ran out, or
        a signal came.
    """
    output = Path(output)
    if not train_examples:
        raise ValueError("no training examples")
    schedule = Schedule(config.schedule, warmup_steps=config.warmup_steps,
                        d_model=model.config.d_model, scale=config.lr, total_steps=config.steps)
    optimizer = torch.optim.Adam(model.parameters(), lr=schedule(1), betas=config.betas,
                                 eps=config.eps)
    step, epoch, position = 0, 0, 0
    sweep_leftovers(output)                      # what a run killed while saving left behind,
    (output / _METRICS_STAGING).unlink(missing_ok=True)       # or while rewriting the metrics
    if resume:
        checkpoint = resolve_checkpoint(output)
        load_weights(checkpoint, model)
        saved = load_training_state(checkpoint, optimizer)
        step, epoch, position = (saved["progress"][key] for key in ("step", "epoch", "batch"))
    else:
        torch.manual_seed(config.seed)
        random.seed(config.seed)
    output.mkdir(parents=True, exist_ok=True)
    log = _MetricsLog(output, resumed_at=step if resume else None)
    lengths = task.lengths(train_examples)
    metrics: dict[str, float] = {}
    last_checkpoint = None
    stopped = "steps"
    bar = _progress_bar(config.steps, step, progress)
    shown: dict[str, dict[str, str]] = {"train": {}, "valid": {}}     # the bar's last numbers
    # tokens/s: over the steps since the last log, training time only (validation and saving
    # are left out by moving ``tick`` on past them)
    tick, window_loss, window_nll, window_tokens = time.perf_counter(), 0.0, 0.0, 0
    started = clock()

    def save() -> Path:
        nonlocal last_checkpoint
        last_checkpoint = save_checkpoint(
            output, model=model, task=task.name, source_tokenizer=task.source_tokenizer,
            target_tokenizer=task.target_tokenizer, step=step, optimizer=optimizer, keep=config.keep,
            metadata={**(metadata or {}), "training": config.to_dict(), "metrics": metrics,
                      "progress": {"step": step, "epoch": epoch, "batch": position}})
        return last_checkpoint

    def validate() -> None:
        nonlocal metrics
        metrics = evaluate_loss(model, task, valid_examples, max_tokens=config.max_tokens)
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
            while position < len(batches) and step < config.steps:
                batch = task.collate([train_examples[i] for i in batches[position]])
                position += 1
                step += 1
                lr = schedule(step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                result = task.loss(model, batch, config.label_smoothing)
                (result.loss / result.tokens.clamp(min=1)).backward()
                if config.clip_norm is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

                window_loss += result.loss.item()
                window_nll += result.nll.item()
                window_tokens += result.tokens.item()
                bar.update(1)
                if config.max_time is not None and clock() - started >= config.max_time:
                    stopped = "max_time"
                if stop.signal is not None and step < config.steps:
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
            if position >= len(batches):
                epoch, position = epoch + 1, 0
        if stopped == "interrupted":                 # no validation: stop soon, as asked
            save()
            message = (f"stopped at step {step} of {config.steps}: interrupted by {stop.signal}; "
                       f"checkpoint {last_checkpoint.name} saved, resume goes on from it "
                       f"(qkv train --resume)")
        else:
            validate()
            save()
            message = (f"stopped at step {step} of {config.steps}: the time budget of "
                       f"{config.max_time:g} s ran out" if stopped == "max_time" else
                       f"stopped at step {step}: all {config.steps} steps done")
        bar.write(message)
    finally:
        stop.restore()
        bar.close()
        log.close()
    model.eval()
    _draw_curves(output)
    return TrainResult(step, metrics, last_checkpoint, stopped, message)


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


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr)
