"""A qkv model as a Hugging Face folder that ``transformers`` loads: ``config.json``,
``model.safetensors`` and tokenizer files.

Each qkv model goes to the ``transformers`` family that computes the same function:

=========================  ==================================  ========================
qkv model                  ``transformers`` class              conversion
=========================  ==================================  ========================
``SequenceClassifier``     ``BertForSequenceClassification``   :mod:`qkv.export.bert`
``EncoderModel``           ``BertModel``                       :mod:`qkv.export.bert`
``LanguageModel``          ``GPT2LMHeadModel``                 :mod:`qkv.export.gpt2`
``Transformer``            ``MarianMTModel``                   :mod:`qkv.export.marian`
=========================  ==================================  ========================

A config the family cannot express is refused before anything is written (a ValueError naming
the field and its value; the family modules list what and why). The folder is written whole or
not at all (:func:`~qkv.export.folder.staged_folder`). This module knows files, not weight names;
nothing here needs ``transformers`` (the tests load every export with it).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from torch import nn

from qkv.export import bert, gpt2, marian
from qkv.export.folder import staged_folder, write_json, write_safetensors
from qkv.export.tokenizer import write_tokenizers
from qkv.models import EncoderModel, LanguageModel, SequenceClassifier, Transformer
from qkv.tokenizers.base import Tokenizer

__all__ = ["to_huggingface"]

# model class → (its family's conversion, the special tokens its task adds: see tokenizer.py)
_FAMILIES: dict[type, tuple[ModuleType, str]] = {
    SequenceClassifier: (bert, "classify"), EncoderModel: (bert, "classify"),
    LanguageModel: (gpt2, "lm"), Transformer: (marian, "seq2seq")}


def to_huggingface(
    model: nn.Module,
    folder: str | Path,
    *,
    tokenizer: Tokenizer | None = None,
    target_tokenizer: Tokenizer | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` (and its tokenizers) as a Hugging Face folder.

    Args:
        model: a :class:`~qkv.SequenceClassifier`, :class:`~qkv.EncoderModel`,
            :class:`~qkv.LanguageModel` or :class:`~qkv.Transformer`.
        folder: the folder to create.
        tokenizer: the model's tokenizer (a translation model's source tokenizer); its files are
            written beside the weights (:mod:`qkv.export.tokenizer`) and its special ids go into
            ``config.json``. ``None``: the model alone.
        target_tokenizer: a translation model's target tokenizer, when it is not
            ``tokenizer``: written to the sub-folder ``target_tokenizer/``
            (``AutoTokenizer.from_pretrained(folder / "target_tokenizer")``).
        overwrite: replace an existing ``folder``.

    Returns:
        The folder. ``AutoModel…from_pretrained(folder)`` gives the model (in the dtype of
        qkv's parameters).

    Raises:
        TypeError: not one of the four model classes.
        ValueError: a config field the family cannot express, or a tokenizer with no Hugging
            Face form; nothing is written.
        FileExistsError: ``folder`` exists and ``overwrite`` is false.

    Example:
        >>> import json, tempfile, qkv
        >>> from qkv.export import to_huggingface
        >>> config = qkv.SequenceClassifierConfig(vocab_size=50, d_model=32, num_heads=4,
        ...     num_layers=2, d_ff=64, positions="learned", activation="gelu",
        ...     type_vocab_size=2, embedding_norm=True, labels=["no", "yes"], pooler=True)
        >>> folder = to_huggingface(qkv.SequenceClassifier(config), tempfile.mkdtemp() + "/out")
        >>> json.loads((folder / "config.json").read_text())["id2label"]
        {'0': 'no', '1': 'yes'}
    """
    family, template = _family(model)
    target = target_tokenizer or tokenizer
    config = family.config_to_hf(model, _special_ids(target))           # refuses first
    config["dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
    weights = family.weights_to_hf(model)
    max_length = model.config.max_len
    with staged_folder(folder, overwrite=overwrite) as staging:
        write_json(staging / "config.json", config)
        write_safetensors(staging / "model.safetensors", weights)
        write_tokenizers(staging, tokenizer, target_tokenizer, template=template,
                         max_length=max_length, bert_names=family is bert)
    return Path(folder)


def _family(model: nn.Module) -> tuple[ModuleType, str]:
    for model_class, family in _FAMILIES.items():
        if isinstance(model, model_class):
            return family
    raise TypeError(f"model must be a SequenceClassifier, EncoderModel, LanguageModel or "
                    f"Transformer, got {type(model).__name__}")


def _special_ids(tokenizer: Tokenizer | None) -> dict[str, int | None]:
    if tokenizer is None:
        return {}
    return {name: getattr(tokenizer, f"{name}_id") for name in ("pad", "bos", "eos", "unk")}
