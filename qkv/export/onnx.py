"""A qkv model as an ONNX file, through PyTorch's exporter, checked with ``onnxruntime``.

The folder holds ``model.onnx``, ``model.json`` (what goes in and out, the labels, the special
ids, the check) and the tokenizer files (as :mod:`qkv.export.tokenizer` writes them). The graph
is the model's own ``forward`` in eval mode, captured by ``torch.onnx.export`` (the ``torch.export``
based exporter, which needs ``onnxscript``), with the batch and sequence axes dynamic:

* ``EncoderModel``: ``input_ids (batch, sequence)`` → ``last_hidden_state (batch, sequence, E)``;
* ``SequenceClassifier``: ``input_ids (batch, sequence)`` → ``logits (batch, C)``;
* ``LanguageModel``: ``input_ids (batch, sequence)`` → ``logits (batch, sequence, V)``;
* ``Transformer``: ``input_ids (batch, sequence)`` and ``decoder_input_ids (batch,
  target_sequence)`` → ``logits (batch, target_sequence, V)``, teacher-forced.

Inputs are int64, outputs in the model's float dtype.

There is no ``attention_mask`` input: as in qkv, ids equal to the config's ``pad_id`` are masked
inside the graph. The ids are not range-checked inside the graph (qkv's check reads their
minimum and maximum, a data-dependent branch that a static graph cannot hold): an id past the
vocabulary makes ``onnxruntime`` fail on its Gather, and a negative one counts from the end, as
ONNX's Gather does — check ids before feeding them.

With ``check`` (the default) the file is run by ``onnxruntime`` on two batches of different
shapes (padded where the model has a pad id) and its outputs must equal PyTorch's to 1e-4, or
nothing is written.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from qkv.export.folder import staged_folder, write_json
from qkv.export.tokenizer import write_tokenizers
from qkv.models import EncoderModel, LanguageModel, SequenceClassifier, Transformer
from qkv.tokenizers.base import Tokenizer

__all__ = ["to_onnx", "TOLERANCE"]

TOLERANCE = 1e-4                               # |onnxruntime - PyTorch| ≤ atol + rtol·|PyTorch|
_CHECK_SHAPES = ((2, 5, 4), (3, 11, 7))        # (batch, sequence, target sequence), two batches
_EXTERNAL_DATA_BYTES = 1 << 30                 # more goes to model.onnx.data (protobuf: < 2 GiB)
_TEMPLATES = {Transformer: "seq2seq", LanguageModel: "lm"}    # else "classify"


@dataclass(frozen=True)
class _Signature:
    """The names of the graph's inputs and output."""

    inputs: tuple[str, ...]
    output: str


def to_onnx(
    model: nn.Module,
    folder: str | Path,
    *,
    tokenizer: Tokenizer | None = None,
    target_tokenizer: Tokenizer | None = None,
    check: bool = True,
    opset: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as ``folder/model.onnx`` with ``model.json`` and its tokenizer files.

    Args:
        model: a :class:`~qkv.EncoderModel`, :class:`~qkv.SequenceClassifier`,
            :class:`~qkv.LanguageModel` or :class:`~qkv.Transformer` (in float32).
        folder: the folder to create.
        tokenizer, target_tokenizer: as in :func:`~qkv.export.to_huggingface`; their special
            ids go into ``model.json``. ``None``: no tokenizer files.
        check: run the file with ``onnxruntime`` on two input shapes and compare with PyTorch.
        opset: the ONNX opset; default: the exporter's.
        overwrite: replace an existing ``folder``.

    Returns:
        The folder.

    Raises:
        TypeError: not one of the four model classes.
        ModuleNotFoundError: ``onnxscript`` (or, with ``check``, ``onnxruntime``) is missing:
            ``pip install 'qkv[export]'``.
        RuntimeError: ``onnxruntime``'s outputs differ from PyTorch's (nothing is written).
        FileExistsError: ``folder`` exists and ``overwrite`` is false.

    Example:
        >>> import json, tempfile, qkv
        >>> from qkv.export import to_onnx
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=30, d_model=16,
        ...     num_heads=2, num_layers=1, d_ff=32))
        >>> folder = to_onnx(model, tempfile.mkdtemp() + "/out")
        >>> json.loads((folder / "model.json").read_text())["outputs"]
        [{'name': 'logits', 'dtype': 'float32', 'shape': ['batch', 'sequence', 30]}]
    """
    signature = _signature(model)
    _require("onnxscript", "torch.onnx.export")
    if check:
        _require("onnxruntime", "checking the exported file")
    was_training = model.training
    model.eval()
    try:
        with staged_folder(folder, overwrite=overwrite) as staging:
            _export(model, signature, staging / "model.onnx", opset)
            info = _describe(model, staging / "model.onnx", target_tokenizer or tokenizer)
            if check:
                info["checked"] = _check(model, signature, staging / "model.onnx")
            info["tokenizer_files"] = write_tokenizers(
                staging, tokenizer, target_tokenizer, max_length=model.config.max_len,
                template=_TEMPLATES.get(type(model), "classify"))
            write_json(staging / "model.json", info)
    finally:
        model.train(was_training)
    return Path(folder)


def _signature(model: nn.Module) -> _Signature:
    if isinstance(model, Transformer):
        return _Signature(("input_ids", "decoder_input_ids"), "logits")
    if isinstance(model, (SequenceClassifier, LanguageModel)):
        return _Signature(("input_ids",), "logits")
    if isinstance(model, EncoderModel):
        return _Signature(("input_ids",), "last_hidden_state")
    raise TypeError(f"model must be an EncoderModel, SequenceClassifier, LanguageModel or "
                    f"Transformer, got {type(model).__name__}")


def _export(model: nn.Module, signature: _Signature, path: Path, opset: int | None) -> None:
    """``torch.onnx.export`` with dynamic batch and sequence axes (at most ``max_len`` long
    where positions come from a table)."""
    config = model.config
    most = None if config.positions == "rotary" else config.max_len
    batch = torch.export.Dim("batch")
    axes = [{0: batch, 1: torch.export.Dim(name, max=most)}
            for name in ("sequence", "target_sequence")[:len(signature.inputs)]]
    length = min(8, config.max_len)
    if length < 2:
        raise ValueError(f"ONNX export traces a sequence of at least 2 positions, but the "
                         f"model's max_len is {config.max_len}")
    example = _inputs(model, 2, length, length)
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    with _quiet(), torch.no_grad():
        torch.onnx.export(model, example, str(path), dynamo=True, verbose=False,
                          input_names=list(signature.inputs), output_names=[signature.output],
                          dynamic_shapes=tuple(axes), opset_version=opset,
                          external_data=size > _EXTERNAL_DATA_BYTES)


def _inputs(model: nn.Module, batch: int, length: int, target_length: int) -> tuple[Tensor, ...]:
    """Random ids (fixed seed) for ``model``'s inputs; the first row ends with two pad tokens
    where the config has a pad id."""
    config = model.config
    generator = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    sizes = [(config.vocab_size, length)]
    if isinstance(model, Transformer):
        sizes.append((config.target_vocab_size, target_length))
    tensors = []
    for vocab_size, columns in sizes:
        ids = torch.randint(0, vocab_size, (batch, columns), generator=generator)
        if config.pad_id is not None:
            ids[ids == config.pad_id] = (config.pad_id + 1) % vocab_size
            ids[0, max(1, columns - 2):] = config.pad_id
        tensors.append(ids.to(device))
    return tuple(tensors)


def _check(model: nn.Module, signature: _Signature, path: Path) -> dict:
    """Run ``path`` with ``onnxruntime`` on two input shapes; raise if it differs from PyTorch."""
    import numpy
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shapes, largest = [], 0.0
    for batch, length, target_length in _CHECK_SHAPES:
        length, target_length = (min(n, model.config.max_len) for n in (length, target_length))
        inputs = _inputs(model, batch, length, target_length)
        with torch.no_grad():
            expected = model(*inputs).float().cpu().numpy()
        (actual,) = session.run([signature.output], {name: ids.cpu().numpy() for name, ids
                                                     in zip(signature.inputs, inputs)})
        difference = float(numpy.abs(actual - expected).max())
        if actual.shape != expected.shape or not numpy.allclose(actual, expected, rtol=TOLERANCE,
                                                                atol=TOLERANCE):
            raise RuntimeError(f"the ONNX model's {signature.output} {actual.shape} differ from "
                               f"PyTorch's {expected.shape} by up to {difference:.3g} (tolerance "
                               f"{TOLERANCE:g}) on inputs of shapes "
                               f"{[tuple(t.shape) for t in inputs]}; nothing was written")
        shapes.append([list(t.shape) for t in inputs])
        largest = max(largest, difference)
    return {"onnxruntime": onnxruntime.__version__, "input_shapes": shapes,
            "max_abs_difference": largest, "tolerance": TOLERANCE}


def _describe(model: nn.Module, path: Path, tokenizer: Tokenizer | None) -> dict:
    """``model.json``: the graph's inputs and outputs (as the file declares them: a name for a
    dynamic axis, a number for a fixed one), labels, special ids, padding, opset."""
    import onnx

    config = model.config
    graph = onnx.load(str(path), load_external_data=False)
    opsets = {entry.domain or "ai.onnx": entry.version for entry in graph.opset_import}

    def values(entries) -> list[dict]:
        return [{"name": entry.name,
                 "dtype": onnx.helper.tensor_dtype_to_np_dtype(
                     entry.type.tensor_type.elem_type).name,
                 "shape": [axis.dim_param or axis.dim_value
                           for axis in entry.type.tensor_type.shape.dim]}
                for entry in entries]

    info = {
        "format": "qkv-onnx", "model": type(model).__name__, "file": path.name,
        "opset": opsets.get("ai.onnx"),
        "inputs": values(graph.graph.input), "outputs": values(graph.graph.output),
        "labels": list(model.labels) if isinstance(model, SequenceClassifier) else None,
        "pad_id": config.pad_id,
        "padding": (f"ids equal to pad_id ({config.pad_id}) are masked inside the graph"
                    if config.pad_id is not None else
                    "the model has no pad_id: every position is attended"),
        "max_sequence_length": None if config.positions == "rotary" else config.max_len,
        "special_ids": None if tokenizer is None else {
            name: getattr(tokenizer, f"{name}_id") for name in ("pad", "bos", "eos", "unk")},
    }
    return info


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's notices that concern it, not the user (torchvision ops it skips,
    its own deprecations)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", "# The axis name", UserWarning)   # batch, twice
            yield
    finally:
        logger.setLevel(level)


def _require(module: str, purpose: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ModuleNotFoundError(f"{purpose} needs the package {module}; install it with: "
                                  f"pip install 'qkv[export]'")
