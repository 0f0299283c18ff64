"""The training loop: batches by token count, Adam with a schedule, clipping, validation,
metrics, checkpoints, and exact resumption.

Everything that decides what happens next is saved with each checkpoint — the weights, Adam's
moments, the step, the position in the epoch's batch order (a pure function of the seed and the
epoch) and the torch and Python RNG states — so ``resume`` continues bit for bit as if training
had never stopped (on the same machine and PyTorch build).
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model
from torch import nn

from qkv.data.batching import token_batches
from qkv.training.checkpoint import load_training_state, resolve_checkpoint, save_checkpoint
from qkv.training.schedule import Schedule

__all__ = ["TrainConfig", "TrainResult", "train", "evaluate_loss", "evaluate_accuracy"]


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

    def __post_init__(self) -> None:
        for name in ("steps", "max_tokens", "warmup_steps", "keep"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        for name in ("eval_every", "save_every", "log_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.clip_norm is not None and self.clip_norm <= 0:
            raise ValueError(f"clip_norm must be > 0 or None, got {self.clip_norm}")
        object.__setattr__(self, "betas", tuple(self.betas))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    """What a run ended with: the step, the last validation metrics, the final checkpoint."""

    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: Path | None = None


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
) -> TrainResult:
    """Train ``model`` on ``task`` (:mod:`qkv.training.tasks`) and checkpoint it in ``output``.

    Args:
        train_examples, valid_examples: ``task.encode(...)`` outputs.
        output: the run folder: checkpoints (``step-NNNNNNNN/``, ``latest``) and
            ``metrics.jsonl`` (one JSON object per logged step or validation).
        metadata: saved with every checkpoint (e.g. where the data came from).
        resume: continue from ``output``'s latest checkpoint (weights, optimizer, RNG, batch).
        extra_validation: more validation metrics, e.g. BLEU, computed after the loss.
        progress: show a progress bar with loss, perplexity, learning rate and tokens/s.
    """
    output = Path(output)
    if not train_examples:
        raise ValueError("no training examples")
    schedule = Schedule(config.schedule, warmup_steps=config.warmup_steps,
                        d_model=model.config.d_model, scale=config.lr, total_steps=config.steps)
    optimizer = torch.optim.Adam(model.parameters(), lr=schedule(1), betas=config.betas,
                                 eps=config.eps)
    step, epoch, position = 0, 0, 0
    if resume:
        checkpoint = resolve_checkpoint(output)
        load_model(model, str(checkpoint / "model.safetensors"))
        saved = load_training_state(checkpoint, optimizer)
        step, epoch, position = (saved["progress"][key] for key in ("step", "epoch", "batch"))
    else:
        torch.manual_seed(config.seed)
        random.seed(config.seed)
    output.mkdir(parents=True, exist_ok=True)
    metrics_file = (output / "metrics.jsonl").open("a", encoding="utf-8")
    lengths = task.lengths(train_examples)
    metrics: dict[str, float] = {}
    last_checkpoint = None
    bar = _progress_bar(config.steps, step, progress)
    tokens_seen, clock, window_loss, window_nll, window_tokens = 0, time.perf_counter(), 0.0, 0.0, 0

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
            metrics.update(extra_validation(model))
        _log(metrics_file, {"step": step, "split": "valid", **metrics})
        bar.write(f"step {step}: valid " + " ".join(f"{k} {v:.4g}" for k, v in metrics.items()))

    try:
        model.train()
        while step < config.steps:
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
                tokens_seen += result.tokens.item()
                bar.update(1)
                if config.log_every and (step % config.log_every == 0 or step == config.steps):
                    elapsed = time.perf_counter() - clock
                    record = {"step": step, "split": "train",
                              "loss": window_loss / max(window_tokens, 1),
                              "ppl": math.exp(min(window_nll / max(window_tokens, 1), 50.0)),
                              "lr": lr, "tokens_per_s": tokens_seen / max(elapsed, 1e-9)}
                    _log(metrics_file, record)
                    bar.set_postfix(loss=f"{record['loss']:.3f}", ppl=f"{record['ppl']:.2f}",
                                    lr=f"{lr:.2e}", tok_s=f"{record['tokens_per_s']:.0f}")
                    window_loss = window_nll = 0.0
                    window_tokens = 0
                if config.eval_every and step % config.eval_every == 0 and step < config.steps:
                    validate()
                    model.train()
                if config.save_every and step % config.save_every == 0 and step < config.steps:
                    save()
            if position >= len(batches):
                epoch, position = epoch + 1, 0
        validate()
        save()
    finally:
        bar.close()
        metrics_file.close()
    model.eval()
    return TrainResult(step, metrics, last_checkpoint)


def _log(file, record: dict) -> None:
    file.write(json.dumps(record) + "\n")
    file.flush()


class _NoBar:
    def update(self, n: int) -> None: ...
    def set_postfix(self, **kwargs) -> None: ...
    def write(self, text: str) -> None: print(text, file=sys.stderr)
    def close(self) -> None: ...


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr)
