"""Checkpoints: a folder of safetensors and JSON, written atomically, enough to decode or resume.

One checkpoint is one folder::

    step-00001200/
        checkpoint.json         model class + config, task, tokenizers, step, training state
        model.safetensors       the weights (a tied output layer is stored once)
        training.safetensors    optimizer moments and the torch RNG state (for --resume)

A training run keeps its checkpoints in an output folder with a ``latest`` file naming the newest
one. Every checkpoint is first written under a temporary name and then renamed, and ``latest`` is
replaced by rename too, so a run killed at any moment leaves the previous checkpoint intact.
Nothing here uses pickle.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from qkv.models import (
    EncoderModel,
    EncoderModelConfig,
    LanguageModel,
    LanguageModelConfig,
    SequenceClassifier,
    SequenceClassifierConfig,
    Transformer,
    TransformerConfig,
)
from qkv.tokenizers.base import Tokenizer, tokenizer_from_dict

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "resolve_checkpoint",
           "load_training_state", "LATEST"]

FORMAT = "qkv-checkpoint"
VERSION = 1
LATEST = "latest"
_MODELS = {"Transformer": (Transformer, TransformerConfig),
           "LanguageModel": (LanguageModel, LanguageModelConfig),
           "EncoderModel": (EncoderModel, EncoderModelConfig),
           "SequenceClassifier": (SequenceClassifier, SequenceClassifierConfig)}


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (in eval mode) and what is needed to feed it.

    Attributes:
        model: a :class:`~qkv.Transformer`, :class:`~qkv.LanguageModel`,
            :class:`~qkv.EncoderModel` or :class:`~qkv.SequenceClassifier`.
        task: ``"translation"``, ``"language_model"`` or ``"classification"``.
        source_tokenizer, target_tokenizer: the same object for a language model.
        step: optimizer steps taken.
        path: the checkpoint folder.
        metadata: the training settings, data description and last metrics, as saved.
    """

    model: nn.Module
    task: str
    source_tokenizer: Tokenizer
    target_tokenizer: Tokenizer
    step: int
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    directory: str | Path,
    *,
    model: nn.Module,
    task: str,
    source_tokenizer: Tokenizer,
    target_tokenizer: Tokenizer,
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    metadata: dict[str, Any] | None = None,
    keep: int | None = None,
) -> Path:
    """Write ``directory/step-NNNNNNNN`` atomically and point ``directory/latest`` at it.

    Args:
        directory: the run's output folder (created if missing).
        optimizer: saved with the RNG states so that training can resume bit for bit.
        metadata: JSON-able extras (training settings, data, progress, metrics).
        keep: delete all but the ``keep`` newest checkpoints of the folder.

    Returns:
        The checkpoint folder.
    """
    class_name = type(model).__name__
    if class_name not in _MODELS:
        raise TypeError(f"can only checkpoint {', '.join(_MODELS)}, got {class_name}")
    if keep is not None and (not isinstance(keep, int) or keep < 1):
        raise ValueError(f"keep must be a positive number of checkpoints or None, got {keep!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{step:08d}"
    umask = _umask()
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=directory))
    os.chmod(staging, 0o777 & ~umask)             # mkdtemp makes 0700; a run is as shareable as
                                                  # any folder the user makes
    try:
        save_model(model, str(staging / "model.safetensors"))
        info = {
            "format": FORMAT, "version": VERSION, "task": task, "step": step,
            "model": {"class": class_name, "config": model.config.to_dict()},
            "tokenizers": {"source": source_tokenizer.to_dict(),
                           "target": target_tokenizer.to_dict()},
            "metadata": metadata or {},
        }
        if optimizer is not None:
            tensors, info["optimizer"] = _optimizer_to_flat(optimizer)
            tensors["rng.torch"] = torch.get_rng_state()
            info["rng"] = {"python": _python_rng_to_json(random.getstate())}
            save_file(tensors, str(staging / "training.safetensors"))
        (staging / "checkpoint.json").write_text(json.dumps(info, indent=1, ensure_ascii=False),
                                                 encoding="utf-8")
        for file in staging.iterdir():            # safetensors writes 0600 files
            os.chmod(file, 0o666 & ~umask)
        _fsync_folder(staging)
        if final.exists():                        # re-saving the same step: swap, then delete
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            staging.rename(final)
            shutil.rmtree(old)
        else:
            staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _write_atomically(directory / LATEST, final.name + "\n", umask)
    if keep is not None:
        for old in sorted(directory.glob("step-*"))[:-keep]:
            if old != final:
                shutil.rmtree(old)
    return final


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder that ``path`` names: itself, or the run folder's ``latest``."""
    path = Path(path)
    if (path / "checkpoint.json").is_file():
        return path
    if (path / LATEST).is_file():
        target = path / (path / LATEST).read_text(encoding="utf-8").strip()
        if (target / "checkpoint.json").is_file():
            return target
        raise FileNotFoundError(f"{path / LATEST} names {target.name}, which is not a checkpoint")
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: the path does not exist")
    found = sorted(p.name for p in path.iterdir())[:10] if path.is_dir() else [path.name]
    raise FileNotFoundError(f"no checkpoint at {path}: expected checkpoint.json or a '{LATEST}' "
                            f"file; found {found}")


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint folder (or a run folder's latest checkpoint) for decoding.

    Example:
        >>> import tempfile, qkv
        >>> from qkv.tokenizers import CharTokenizer
        >>> tokenizer = CharTokenizer.train(["abc"])
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=tokenizer.vocab_size,
        ...     d_model=16, num_heads=2, num_layers=1, d_ff=32))
        >>> run = tempfile.mkdtemp()
        >>> _ = save_checkpoint(run, model=model, task="language_model", step=0,
        ...                     source_tokenizer=tokenizer, target_tokenizer=tokenizer)
        >>> loaded = load_checkpoint(run)
        >>> loaded.task, loaded.step, type(loaded.model).__name__
        ('language_model', 0, 'LanguageModel')
    """
    folder = resolve_checkpoint(path)
    info = _read_info(folder)
    info_file = folder / "checkpoint.json"
    class_name = _readable(info_file, lambda: info["model"]["class"])
    if class_name not in _MODELS:
        raise ValueError(f"{folder}: unknown model class {class_name!r}; known: {', '.join(_MODELS)}")
    model_class, config_class = _MODELS[class_name]
    model = _readable(info_file, lambda: model_class(config_class(**info["model"]["config"])))
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{folder} has no model.safetensors")
    missing, unexpected = _readable(weights, lambda: load_model(model, str(weights), strict=False))
    if missing or unexpected:
        raise ValueError(f"{weights} does not fit a {class_name} with this config: missing "
                         f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    model.eval()
    source = _readable(info_file, lambda: tokenizer_from_dict(info["tokenizers"]["source"]))
    target = _readable(info_file, lambda: tokenizer_from_dict(info["tokenizers"]["target"]))
    if info["tokenizers"]["source"] == info["tokenizers"]["target"]:
        target = source
    return Checkpoint(model, info["task"], source, target, int(info["step"]), folder,
                      info.get("metadata", {}))


def load_training_state(path: str | Path, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore ``optimizer`` and the torch/Python RNG states saved with a checkpoint; return its
    metadata (training progress), for ``--resume``."""
    folder = resolve_checkpoint(path)
    info = _read_info(folder)
    state_file = folder / "training.safetensors"
    if "optimizer" not in info:
        raise ValueError(f"{folder} was saved without optimizer state, so training cannot resume "
                         "from it")
    if not state_file.is_file():
        raise FileNotFoundError(f"{state_file} is missing, so training cannot resume from {folder}")
    tensors = _readable(state_file, lambda: load_file(str(state_file)))
    optimizer.load_state_dict(_optimizer_from_flat(tensors, info["optimizer"]))
    torch.set_rng_state(tensors["rng.torch"])
    random.setstate(_python_rng_from_json(info["rng"]["python"]))
    return info.get("metadata", {})


# -- helpers ---------------------------------------------------------------------------------------

def _readable(path: Path, read: Callable[[], Any]) -> Any:
    """``read()``, a damaged or foreign file becoming a ValueError that names ``path``."""
    try:
        return read()
    except OSError:
        raise
    except Exception as error:                   # safetensors' own errors, KeyError, TypeError…
        raise ValueError(f"{path} is damaged or not a qkv file ({type(error).__name__}: "
                         f"{error})") from error


def _read_info(folder: Path) -> dict[str, Any]:
    path = folder / "checkpoint.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is damaged: not JSON ({error})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ValueError(f"{path} is not a qkv checkpoint (format "
                         f"{info.get('format') if isinstance(info, dict) else None!r})")
    if info.get("version") != VERSION:
        raise ValueError(f"{folder}: checkpoint version {info.get('version')} is not supported "
                         f"(this qkv reads version {VERSION})")
    required = ("model", "tokenizers", "task", "step")
    if any(key not in info for key in required):
        raise ValueError(f"{path} is damaged: it needs the keys {', '.join(required)}")
    return info


def _optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Optimizer state → (tensors named ``optimizer.<param>.<name>``, JSON for the rest)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{name}"] = value.contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_from_flat(tensors: dict, info: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for key, value in info["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": info["param_groups"]}


def _python_rng_to_json(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_rng_from_json(state: list) -> tuple:
    version, internal, gauss = state
    return version, tuple(internal), gauss


def _write_atomically(path: Path, text: str, umask: int) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.chmod(temporary, 0o666 & ~umask)
    os.replace(temporary, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    for file in folder.iterdir():
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
