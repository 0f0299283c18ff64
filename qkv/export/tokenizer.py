"""A qkv tokenizer as Hugging Face tokenizer files, so that ``AutoTokenizer.from_pretrained``
reads the exported folder.

Every qkv tokenizer has a ``tokenizers``-library equivalent, written as ``tokenizer.json`` with
a ``tokenizer_config.json`` (``PreTrainedTokenizerFast`` and the special tokens) and a
``special_tokens_map.json``:

==========================  =============================================================
qkv tokenizer               ``tokenizer.json``
==========================  =============================================================
``HuggingFaceTokenizer``    its own ``tokenizers`` object (from a pretrained folder), as is
``BPETokenizer``            its own ``tokenizers`` object (BPE, Metaspace)
``CharTokenizer``           WordLevel over its vocabulary; every character a token; Fuse decoder
``WordTokenizer``           WordLevel over its vocabulary; split on whitespace, then words,
                            clitics (``'s``), CJK characters and punctuation, as qkv splits them
``MarianTokenizer``         not a ``tokenizer.json``: ``source.spm``, ``target.spm`` and
                            ``vocab.json``, as Opus-MT folders hold them (``MarianTokenizer``)
==========================  =============================================================

qkv's ``encode`` gives content ids only; its tasks add the special tokens. The tokenizer.json of
a tokenizer qkv trained gets a post-processor that adds them as the task does, so that
``tokenizer(text)`` in ``transformers`` gives what the model was trained on: ``<bos> x <eos>``
for a classifier or encoder, ``<bos> x`` for a language model, ``x <eos>`` for translation
(``text_target`` too; the decoder starts with ``decoder_start_token_id``). A pretrained
tokenizer keeps the post-processor it came with (BERT's ``[CLS] x [SEP]``).

Known differences, both documented rather than hidden: a text that spells a special token
(``"<eos>"``) is plain text to qkv but the special token to ``transformers``; and the word
tokenizer's ``decode`` in ``transformers`` puts a space between every two tokens (qkv's drops it
before punctuation and around CJK characters). Characters newer than Python's Unicode database
may be classed differently by the two regex engines.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from qkv.export.folder import write_json
from qkv.tokenizers.base import Tokenizer
from qkv.tokenizers.vocab import _CJK

__all__ = ["write_tokenizers", "write_tokenizer", "to_tokenizers", "TEMPLATES", "TARGET_TOKENIZER"]

TARGET_TOKENIZER = "target_tokenizer"     # sub-folder of a translation model's target tokenizer
# What the task adds around a text's ids: (before, after), by special-token name.
TEMPLATES = {"classify": ("bos", "eos"), "lm": ("bos", None), "seq2seq": (None, "eos")}
_SPECIALS = ("pad", "bos", "eos", "unk")
# qkv's word pattern (qkv.tokenizers.vocab._WORD) for Oniguruma, the regex engine of
# `tokenizers`: Python's \w is [\p{L}\p{N}_] (Oniguruma's \w also takes combining marks) and
# Python's \s also takes \x1c-\x1f.
_WORD_CHAR = rf"(?:(?![{_CJK}])[\p{{L}}\p{{N}}_])"
_WORD = rf"[{_CJK}]|{_WORD_CHAR}+|'{_WORD_CHAR}+|[^\p{{L}}\p{{N}}_\s\x1c-\x1f]"
_SPACE = r"[\s\x1c-\x1f]+"


def to_tokenizers(tokenizer: Tokenizer, template: str | None = None):
    """A ``tokenizers.Tokenizer`` that gives ``tokenizer``'s ids.

    Args:
        tokenizer: a qkv tokenizer other than ``MarianTokenizer`` (see the module docstring).
        template: ``"classify"``, ``"lm"`` or ``"seq2seq"``: the special tokens a tokenizer
            qkv trained adds around a text (``add_special_tokens=True``); ``None``: none.

    Raises:
        ValueError: a tokenizer kind with no ``tokenizer.json`` equivalent.

    Example:
        >>> from qkv.tokenizers import WordTokenizer
        >>> ours = WordTokenizer.train(["Tom's dog, 我的狗!"])
        >>> theirs = to_tokenizers(ours, "classify")
        >>> theirs.encode("Tom's dog", add_special_tokens=False).ids == ours.encode("Tom's dog")
        True
        >>> theirs.encode("dog").tokens
        ['<bos>', 'dog', '<eos>']
    """
    from tokenizers import Tokenizer as Raw

    data = tokenizer.to_dict()
    kind = data.get("kind")
    if kind == "huggingface":
        return Raw.from_str(json.dumps(data["tokenizer"]))              # as it came
    if kind == "bpe":
        raw = Raw.from_str(data["tokenizer_json"])
    elif kind in ("char", "word"):
        raw = _vocabulary_tokenizer(data["tokens"], kind)
    else:
        raise ValueError(f"a {type(tokenizer).__name__} (kind {kind!r}) has no tokenizer.json "
                         f"equivalent; export the model without it (tokenizer=None)")
    if template is not None:
        raw.post_processor = _post_processor(tokenizer, template)
    return raw


def write_tokenizers(folder: Path, tokenizer: Tokenizer | None,
                     target_tokenizer: Tokenizer | None = None, *, template: str | None,
                     max_length: int | None, bert_names: bool = False) -> list[str]:
    """Write a model's tokenizer into ``folder`` and, for a translation model whose target
    tokenizer differs, that one into ``folder/target_tokenizer/``; returns the files' paths
    (relative to ``folder``). Arguments as in :func:`write_tokenizer`.

    Raises:
        ValueError: a target tokenizer for a model that is not a translation model
            (``template`` other than ``"seq2seq"``).
    """
    files = []
    if tokenizer is not None:
        files += write_tokenizer(folder, tokenizer, template=template, max_length=max_length,
                                 bert_names=bert_names)
    if target_tokenizer is not None and (
            tokenizer is None or target_tokenizer.to_dict() != tokenizer.to_dict()):
        if template != "seq2seq":
            raise ValueError("a separate target tokenizer belongs to a translation model "
                             "(Transformer); this model has one tokenizer")
        (Path(folder) / TARGET_TOKENIZER).mkdir()
        files += [f"{TARGET_TOKENIZER}/{name}" for name in write_tokenizer(
            Path(folder) / TARGET_TOKENIZER, target_tokenizer, template=template,
            max_length=max_length)]
    return files


def write_tokenizer(folder: Path, tokenizer: Tokenizer, *, template: str | None,
                    max_length: int | None, bert_names: bool = False) -> list[str]:
    """Write ``tokenizer``'s files into ``folder``; returns their names.

    Args:
        folder: an existing folder.
        tokenizer: the qkv tokenizer.
        template: as in :func:`to_tokenizers`.
        max_length: ``model_max_length``, the model's ``max_len`` (a pretrained tokenizer's
            own ``max_length`` comes first: MiniLM's 256).
        bert_names: also name ``bos``/``eos`` as ``cls_token``/``sep_token`` (BERT's roles).
    """
    folder = Path(folder)
    max_length = getattr(tokenizer, "max_length", None) or max_length  # a pretrained one's own
    if tokenizer.to_dict().get("kind") == "marian_sentencepiece":
        return _write_marian(folder, tokenizer, max_length)
    to_tokenizers(tokenizer, template).save(str(folder / "tokenizer.json"))
    names = {f"{name}_token": tokenizer.id_to_token(getattr(tokenizer, f"{name}_id"))
             for name in _SPECIALS if getattr(tokenizer, f"{name}_id") is not None}
    if bert_names:
        names.update({new: names[old] for new, old in (("cls_token", "bos_token"),
                                                       ("sep_token", "eos_token"))
                      if old in names})
    write_json(folder / "special_tokens_map.json", names)
    write_json(folder / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", **names, "model_max_length": max_length,
        "clean_up_tokenization_spaces": False})
    return ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def _vocabulary_tokenizer(tokens: list[str], kind: str):
    """WordLevel over qkv's vocabulary list, split as qkv's char or word tokenizer splits."""
    from tokenizers import Regex, Tokenizer as Raw, decoders, models, pre_tokenizers

    vocab = {token: i for i, token in enumerate(tokens)}
    raw = Raw(models.WordLevel(vocab, unk_token="<unk>"))
    if kind == "char":
        raw.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), "isolated")
        raw.decoder = decoders.Fuse()                                   # joined without spaces
    else:
        raw.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(_SPACE), "removed"),
            pre_tokenizers.Split(Regex(_WORD), "isolated")])
    raw.add_special_tokens(tokens[:len(_SPECIALS)])                     # <pad> <bos> <eos> <unk>
    return raw


def _post_processor(tokenizer: Tokenizer, template: str):
    """``TemplateProcessing`` adding the template's special tokens (those the tokenizer has)."""
    from tokenizers import processors

    if template not in TEMPLATES:
        raise ValueError(f"template must be one of {', '.join(map(repr, TEMPLATES))} or None, "
                         f"got {template!r}")
    before, after = TEMPLATES[template]
    pieces, special = ["$A"], []
    for name, at_start in ((before, True), (after, False)):
        id = None if name is None else getattr(tokenizer, f"{name}_id")
        if id is not None:
            token = tokenizer.id_to_token(id)
            pieces.insert(0 if at_start else len(pieces), token)
            special.append((token, id))
    return processors.TemplateProcessing(single=" ".join(pieces), special_tokens=special)


def _write_marian(folder: Path, tokenizer: Tokenizer, max_length: int | None) -> list[str]:
    """Marian's own files, which ``transformers``' ``MarianTokenizer`` reads."""
    data = tokenizer.to_dict()
    (folder / "source.spm").write_bytes(base64.b64decode(data["source_model"]))
    (folder / "target.spm").write_bytes(base64.b64decode(data["target_model"]))
    write_json(folder / "vocab.json", data["vocab"])
    names = {f"{name}_token": tokenizer.id_to_token(getattr(tokenizer, f"{name}_id"))
             for name in ("pad", "eos", "unk") if getattr(tokenizer, f"{name}_id") is not None}
    write_json(folder / "tokenizer_config.json", {"tokenizer_class": "MarianTokenizer", **names,
                                                   "model_max_length": max_length})
    return ["source.spm", "target.spm", "vocab.json", "tokenizer_config.json"]

