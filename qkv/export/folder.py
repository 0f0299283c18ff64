"""Writing an export folder whole or not at all: files go into a temporary folder beside the
target, which is renamed into place once everything is written (as checkpoints are)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from torch import Tensor

__all__ = ["staged_folder", "write_json", "write_safetensors"]


@contextmanager
def staged_folder(target: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder to write into; on success it becomes ``target``, on any error it is
    deleted and ``target`` is left as it was.

    Args:
        target: the folder to create.
        overwrite: replace an existing ``target`` (else a FileExistsError, before anything is
            written).

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "out"
        >>> with staged_folder(target) as staging:
        ...     _ = (staging / "a.txt").write_text("hi")
        >>> sorted(p.name for p in target.iterdir())
        ['a.txt']
    """
    target = Path(target)
    if target.exists() and not (overwrite and target.is_dir()):
        what = "folder" if target.is_dir() else "file"
        raise FileExistsError(f"{target} exists (a {what}); choose a new folder"
                              + (" or overwrite it" if target.is_dir() else ""))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)              # mkdtemp makes 0700
    try:
        yield staging
        for path in staging.rglob("*"):           # safetensors writes 0600 files
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)
        if target.exists():                        # overwrite: swap, then delete the old one
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_json(path: Path, data: dict) -> None:
    """``data`` as indented UTF-8 JSON."""
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_safetensors(path: Path, tensors: dict[str, Tensor]) -> None:
    """``tensors`` as a safetensors file that ``transformers`` reads (``format: pt``): detached,
    contiguous, on the CPU."""
    from safetensors.torch import save_file

    save_file({name: tensor.detach().contiguous().cpu() for name, tensor in tensors.items()},
              str(path), metadata={"format": "pt"})
