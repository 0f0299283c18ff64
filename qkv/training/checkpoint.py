"""Checkpoints: a folder of safetensors and JSON, written atomically, checksummed, enough to decode
or resume.

One checkpoint is one folder::

    step-00001200/
        checkpoint.json         model class + config, task, tokenizers, step, training state
        model.safetensors       the weights (a tied output layer is stored once)
        training.safetensors    optimizer moments and the torch RNG state (for --resume);
                                a run of several processes adds each one's (rng.torch.rankN)
        manifest.json           the size and sha256 of each file above, written last

A training run keeps its checkpoints in an output folder with a ``latest`` file naming the newest
one. Every checkpoint is first written under a hidden temporary name (``.step-00001200.XXXXXX``)
and then renamed, ``latest`` is replaced by rename too, and an old checkpoint is renamed to a
hidden name before it is deleted, so a run killed at any moment leaves only complete checkpoint
folders in sight; :func:`sweep_leftovers` (called by the trainer at the start of every run)
removes the hidden remains. Loading checks each file it reads against ``manifest.json``, so a
truncated or bit-flipped file is an error that names it. Nothing here uses pickle.

``manifest.json``::

    {"format": "qkv-manifest", "algorithm": "sha256",
     "files": {"checkpoint.json": {"bytes": 2711, "sha256": "9f86d0…"},
               "model.safetensors": {"bytes": 940440, "sha256": "…"}, …}}

Test hook: with the environment variable ``QKV_TEST_SLOW_SAVE`` set to a number of seconds,
:func:`save_checkpoint` announces each stage of a save on stderr (``qkv test hook: step-00000003
model.safetensors``) and then sleeps that long, ending with ``qkv test hook: step-00000003
saved``; the crash-safety tests use it to kill a run inside a save. Nothing else reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
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
           "load_weights", "load_training_state", "verify_files", "sweep_leftovers", "LATEST",
           "MANIFEST"]

FORMAT = "qkv-checkpoint"
VERSION = 2                     # 2: with manifest.json; 1 (before manifests) is read unverified
LATEST = "latest"
MANIFEST = "manifest.json"
TASKS = ("translation", "language_model", "classification", "encoder")
_MODELS = {"Transformer": (Transformer, TransformerConfig),
           "LanguageModel": (LanguageModel, LanguageModelConfig),
           "EncoderModel": (EncoderModel, EncoderModelConfig),
           "SequenceClassifier": (SequenceClassifier, SequenceClassifierConfig)}
_STEP = re.compile(r"step-[0-9]+")                  # a checkpoint folder's name
_STAGING = re.compile(r"\.(step-[0-9]+)\.(.+)")      # .step-N.XXXXXX (staging), .old, .deleting
_LATEST_TEMPORARY = re.compile(rf"\.{LATEST}\..+")  # _write_atomically's temporary file
_TEST_SLOW_SAVE = "QKV_TEST_SLOW_SAVE"


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
    rank_rng_states: Sequence[torch.Tensor] = (),
) -> Path:
    """Write ``directory/step-NNNNNNNN`` atomically and point ``directory/latest`` at it.

    Args:
        directory: the run's output folder (created if missing).
        task: ``"translation"``, ``"language_model"``, ``"classification"`` or ``"encoder"``.
        optimizer: saved with the RNG states so that training can resume bit for bit.
        metadata: JSON-able extras (training settings, data, progress, metrics).
        keep: delete all but the ``keep`` newest checkpoints of the folder.
        rank_rng_states: with ``optimizer``, the torch RNG states of processes 1, 2… of a run
            of several (this process, 0, saves its own as always), so that each resumes its
            own dropout stream.

    Returns:
        The checkpoint folder.
    """
    class_name = type(model).__name__
    if class_name not in _MODELS:
        raise TypeError(f"can only checkpoint {', '.join(_MODELS)}, got {class_name}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if keep is not None and (not isinstance(keep, int) or keep < 1):
        raise ValueError(f"keep must be a positive number of checkpoints or None, got {keep!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{step:08d}"
    umask = _umask()
    pause = _test_hook(final.name)
    pause("begin")
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=directory))
    os.chmod(staging, 0o777 & ~umask)             # mkdtemp makes 0700; a run is as shareable as
                                                  # any folder the user makes
    try:
        save_model(model, str(staging / "model.safetensors"))
        pause("model.safetensors")
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
            for rank, state in enumerate(rank_rng_states, start=1):
                tensors[f"rng.torch.rank{rank}"] = state
            info["rng"] = {"python": _python_rng_to_json(random.getstate())}
            save_file(tensors, str(staging / "training.safetensors"))
            pause("training.safetensors")
        (staging / "checkpoint.json").write_text(json.dumps(info, indent=1, ensure_ascii=False),
                                                 encoding="utf-8")
        pause("checkpoint.json")
        for file in staging.iterdir():            # safetensors writes 0600 files
            os.chmod(file, 0o666 & ~umask)
        _fsync_folder(staging)
        _write_manifest(staging, umask)           # last: a folder with it is complete
        pause(MANIFEST)
        if final.exists():                        # re-saving the same step: swap, then delete
            old = final.with_name(f".{final.name}.old")    # (resolve_checkpoint and
            shutil.rmtree(old, ignore_errors=True)         # sweep_leftovers fall back on it
            final.rename(old)                              # if the swap is cut short)
            pause("swap")
            staging.rename(final)
            shutil.rmtree(old)
        else:
            staging.rename(final)
        _fsync_folder_entry(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    pause("renamed")
    _write_atomically(directory / LATEST, final.name + "\n", umask)
    pause(LATEST)
    if keep is not None:
        for old in sorted(p for p in directory.iterdir()
                          if _STEP.fullmatch(p.name) and p.is_dir())[:-keep]:
            if old != final:
                _remove_folder(old)
    pause("saved")
    return final


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder that ``path`` names: itself, or the run folder's ``latest``.

    ``latest`` must name a checkpoint folder of the run (``step-NNNNNNNN``); a re-save of the
    same step cut short between its two renames is found under its hidden ``.old`` name.
    """
    path = Path(path)
    if (path / "checkpoint.json").is_file():
        return path
    latest = path / LATEST
    if latest.is_file():
        name = _read_latest(latest)
        target = path / name
        if (target / "checkpoint.json").is_file():
            return target
        interrupted = path / f".{name}.old"
        if not target.exists() and (interrupted / "checkpoint.json").is_file():
            return interrupted
        if not target.exists():
            raise FileNotFoundError(f"{latest} names {name}, which does not exist in {path}")
        raise FileNotFoundError(f"{latest} names {name}, but {target} has no checkpoint.json")
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: the path does not exist")
    found = sorted(p.name for p in path.iterdir())[:10] if path.is_dir() else [path.name]
    raise FileNotFoundError(f"no checkpoint at {path}: expected checkpoint.json (a qkv "
                            f"checkpoint) or a '{LATEST}' file (a qkv run), or config.json for a "
                            f"pretrained model; found {found}")


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint folder (or a run folder's latest checkpoint) for decoding.

    ``checkpoint.json`` and ``model.safetensors`` are checked against ``manifest.json`` first,
    and the model config (sizes capped, :mod:`qkv.models.config`) before the model is built.

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
    model = _build_model(info, info_file)
    load_weights(folder, model, info=info)
    model.eval()
    source = _readable(info_file, lambda: tokenizer_from_dict(info["tokenizers"]["source"]))
    target = _readable(info_file, lambda: tokenizer_from_dict(info["tokenizers"]["target"]))
    if info["tokenizers"]["source"] == info["tokenizers"]["target"]:
        target = source
    return Checkpoint(model, info["task"], source, target, info["step"], folder,
                      info.get("metadata", {}))


def load_weights(path: str | Path, model: nn.Module, *, info: dict[str, Any] | None = None) -> None:
    """Copy the checkpoint's ``model.safetensors`` (checked against its manifest) into ``model``,
    which must have exactly its parameters (as built from its ``checkpoint.json``)."""
    folder = resolve_checkpoint(path)
    info = _read_info(folder) if info is None else info
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{folder} has no model.safetensors")
    _verify_if_manifested(folder, info, ["model.safetensors"])
    missing, unexpected = _readable(weights, lambda: load_model(model, str(weights), strict=False))
    if missing or unexpected:
        raise ValueError(f"{weights} does not fit a {type(model).__name__} with this config: "
                         f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")


def load_training_state(path: str | Path, optimizer: torch.optim.Optimizer, *,
                        rank: int = 0) -> dict[str, Any]:
    """Restore ``optimizer`` and the torch/Python RNG states saved with a checkpoint; return its
    metadata (training progress), for ``--resume``.

    ``rank``: which process of a run of several this is; it gets its own torch RNG state back
    (``rank_rng_states`` of :func:`save_checkpoint`), or, where the checkpoint holds none (it
    was saved by fewer processes), a seed made of the run's seed, the rank and the step."""
    folder = resolve_checkpoint(path)
    info = _read_info(folder)
    state_file = folder / "training.safetensors"
    if "optimizer" not in info:
        raise ValueError(f"{folder} was saved without optimizer state, so training cannot resume "
                         "from it")
    if not state_file.is_file():
        raise FileNotFoundError(f"{state_file} is missing, so training cannot resume from {folder}")
    _verify_if_manifested(folder, info, ["training.safetensors"])
    tensors = _readable(state_file, lambda: load_file(str(state_file)))
    info_file = folder / "checkpoint.json"
    _readable(info_file, lambda: optimizer.load_state_dict(
        _optimizer_from_flat(tensors, info["optimizer"])))
    own = "rng.torch" if rank == 0 else f"rng.torch.rank{rank}"
    if rank == 0 or own in tensors:
        _readable(state_file, lambda: torch.set_rng_state(tensors[own]))
    else:
        seed = info.get("metadata", {}).get("training", {}).get("seed", 0)
        torch.manual_seed(random.Random(f"{seed}:{rank}:{info['step']}").getrandbits(63))
    _readable(info_file, lambda: random.setstate(_python_rng_from_json(info["rng"]["python"])))
    return info.get("metadata", {})


def verify_files(folder: str | Path, names: list[str] | None = None) -> None:
    """Check files of a checkpoint folder against its ``manifest.json``: each one's size and
    sha256 (``names``: those files; ``None``: every file the manifest lists).

    Raises:
        FileNotFoundError: no manifest, or a listed file is missing.
        ValueError: a damaged manifest, a file it does not list, or a file whose size or sha256
            differs from the manifest's (the message names the file).
    """
    folder = Path(folder)
    manifest = _read_manifest(folder)
    for name in manifest if names is None else names:
        if name not in manifest:
            raise ValueError(f"{folder / name} is not listed in {folder / MANIFEST}, so it cannot "
                             f"be verified")
        file, expected = folder / name, manifest[name]
        if not file.is_file():
            raise FileNotFoundError(f"{file} is missing (listed in {MANIFEST})")
        size = file.stat().st_size
        if size != expected["bytes"]:
            raise ValueError(f"{file} is damaged: {size} bytes, but {MANIFEST} records "
                             f"{expected['bytes']} (truncated or overwritten)")
        if _sha256(file) != expected["sha256"]:
            raise ValueError(f"{file} is damaged: its sha256 differs from the one {MANIFEST} "
                             f"records (a flipped bit or a foreign file)")


def sweep_leftovers(directory: str | Path) -> list[str]:
    """Clear away what interrupted saves leave in a run folder; return the names cleared.

    Hidden staging folders (``.step-N.XXXXXX``), checkpoints on their way out
    (``.step-N.deleting``), a ``.step-N.old`` whose replacement ``step-N`` is complete, and
    temporary ``.latest.XXXXXX`` files go; a ``.step-N.old`` without its ``step-N`` (a re-save of
    step N cut short mid-swap) is renamed back to ``step-N``. Visible checkpoints are left alone.

    Example:
        >>> import tempfile
        >>> run = Path(tempfile.mkdtemp())
        >>> (run / ".step-00000007.x1y2z3").mkdir()           # a save killed half-way
        >>> (run / "step-00000006").mkdir()
        >>> sweep_leftovers(run), sorted(p.name for p in run.iterdir())
        (['.step-00000007.x1y2z3'], ['step-00000006'])
    """
    directory = Path(directory)
    removed = []
    if not directory.is_dir():
        return removed
    for entry in sorted(directory.iterdir()):
        staging = _STAGING.fullmatch(entry.name)
        if staging and entry.is_dir() and not entry.is_symlink():
            final = directory / staging[1]
            if staging[2] == "old" and not final.exists():
                entry.rename(final)
            else:
                shutil.rmtree(entry)
        elif _LATEST_TEMPORARY.fullmatch(entry.name) and entry.is_file():
            entry.unlink()
        else:
            continue
        removed.append(entry.name)
    return removed


# -- helpers ---------------------------------------------------------------------------------------

def _readable(path: Path, read: Callable[[], Any]) -> Any:
    """``read()``, a damaged or foreign file becoming a ValueError that names ``path``."""
    try:
        return read()
    except OSError:
        raise
    except Exception as error:                   # safetensors' own errors, KeyError, TypeError…
        raise ValueError(f"{path} is damaged or not a qkv file ({type(error).__name__}: "
                         f"{_one_line(error)})") from error


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] + (" …" if len(text) > 300 else "")


def _read_info(folder: Path) -> dict[str, Any]:
    """``checkpoint.json``, verified against the manifest (version 2) and checked for the keys
    and types that loading relies on."""
    path = folder / "checkpoint.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is damaged: not JSON ({_one_line(error)})") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path} is not a qkv checkpoint: it holds a JSON "
                         f"{type(info).__name__}, not an object")
    if info.get("format") != FORMAT:
        raise ValueError(f"{path} is not a qkv checkpoint (format {info.get('format')!r})")
    version = info.get("version")
    if version not in (1, VERSION) or isinstance(version, bool):
        raise ValueError(f"{folder}: checkpoint version {version!r} is not supported "
                         f"(this qkv reads versions 1 to {VERSION})")
    if version >= 2:
        verify_files(folder, ["checkpoint.json"])
    kinds = {"model": dict, "tokenizers": dict, "task": str, "step": int}
    missing = [key for key in kinds if key not in info]
    if missing:
        raise ValueError(f"{path} is damaged: it lacks the keys {', '.join(missing)} (a "
                         f"checkpoint needs {', '.join(kinds)})")
    for key, kind in {**kinds, "metadata": dict}.items():
        if key in info and (not isinstance(info[key], kind) or isinstance(info[key], bool)):
            raise ValueError(f"{path}: '{key}' must be a JSON {_JSON_NAMES[kind]}, got "
                             f"{type(info[key]).__name__} {_short(info[key])}")
    if info["step"] < 0:
        raise ValueError(f"{path}: 'step' must be >= 0, got {info['step']}")
    if info["task"] not in TASKS:
        raise ValueError(f"{path}: unknown task {_short(info['task'])}; known: {', '.join(TASKS)}")
    for key, kind in (("class", str), ("config", dict)):
        if not isinstance(info["model"].get(key), kind):
            raise ValueError(f"{path}: model.{key} must be a JSON {_JSON_NAMES[kind]}, got "
                             f"{_short(info['model'].get(key))}")
    for side in ("source", "target"):
        if not isinstance(info["tokenizers"].get(side), dict):
            raise ValueError(f"{path}: tokenizers.{side} must be a JSON object, got "
                             f"{_short(info['tokenizers'].get(side))}")
    return info


_JSON_NAMES = {dict: "object", str: "string", int: "integer"}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _build_model(info: dict[str, Any], file: Path) -> nn.Module:
    """The model ``checkpoint.json`` describes, its config validated (unknown keys, types,
    sizes: capped by the config classes) before a single weight is allocated."""
    class_name = info["model"]["class"]
    if class_name not in _MODELS:
        raise ValueError(f"{file}: unknown model class {_short(class_name)}; known: "
                         f"{', '.join(_MODELS)}")
    model_class, config_class = _MODELS[class_name]
    config = info["model"]["config"]
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"{file}: model.config has unknown keys {unknown} for a "
                         f"{config_class.__name__} (it has {', '.join(sorted(known))})")
    try:
        config = config_class(**config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{file}: model.config is not a valid {config_class.__name__}: "
                         f"{_one_line(error)}") from None
    return model_class(config)


def _verify_if_manifested(folder: Path, info: dict[str, Any], names: list[str]) -> None:
    if info["version"] >= 2:
        verify_files(folder, names)


def _read_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """``manifest.json``'s files: name → {"bytes", "sha256"}, each name a plain file name."""
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing, so the checkpoint's files cannot be "
                                f"verified (every version-{VERSION} checkpoint has one)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["files"]
        if manifest.get("format") != "qkv-manifest" or manifest.get("algorithm") != "sha256":
            raise ValueError("not a qkv-manifest of sha256 checksums")
        if not isinstance(files, dict):
            raise ValueError("'files' is not an object")
        for name, entry in files.items():
            if Path(name).name != name or name in ("", ".", ".."):
                raise ValueError(f"{name!r} is not a file name inside the folder")
            if (not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str)
                    or not isinstance(entry.get("bytes"), int)):
                raise ValueError(f"the entry of {name} needs 'bytes' and 'sha256'")
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path} is damaged ({type(error).__name__}: "
                         f"{_one_line(error)})") from None
    return files


def _write_manifest(folder: Path, umask: int) -> None:
    files = {file.name: {"bytes": file.stat().st_size, "sha256": _sha256(file)}
             for file in sorted(folder.iterdir())}
    manifest = {"format": "qkv-manifest", "algorithm": "sha256", "files": files}
    path = folder / MANIFEST
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(manifest, indent=1) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, 0o666 & ~umask)


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_latest(latest: Path) -> str:
    """The checkpoint name in a run's ``latest`` file: ``step-NNNNNNNN``, nothing else."""
    with open(latest, "rb") as handle:
        raw = handle.read(257)
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        name = None
    if name is None or len(raw) > 256 or not _STEP.fullmatch(name):
        shown = raw[:40].decode("utf-8", "replace").strip()
        raise ValueError(f"{latest} must name a checkpoint folder of its run, like step-00000040, "
                         f"got {shown!r}")
    return name


def _remove_folder(folder: Path) -> None:
    """Delete a checkpoint: hide it by rename first, so that no half-deleted one is in sight."""
    doomed = folder.with_name(f".{folder.name}.deleting")
    shutil.rmtree(doomed, ignore_errors=True)
    folder.rename(doomed)
    shutil.rmtree(doomed)


def _test_hook(name: str) -> Callable[[str], None]:
    """The test hook of ``QKV_TEST_SLOW_SAVE`` (module docstring): announce a stage of saving
    checkpoint ``name`` on stderr and sleep; a no-op when the variable is unset."""
    delay = os.environ.get(_TEST_SLOW_SAVE)
    if not delay:
        return lambda stage: None
    seconds = float(delay)

    def pause(stage: str) -> None:
        print(f"qkv test hook: {name} {stage}", file=sys.stderr, flush=True)
        if stage != "saved":
            time.sleep(seconds)
    return pause


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


def _fsync_folder_entry(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (a no-op where folders cannot be opened)."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
