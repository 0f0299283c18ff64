"""The tokenizers of pretrained checkpoints, behind qkv's :class:`~qkv.tokenizers.base.Tokenizer`.

* :class:`HuggingFaceTokenizer` wraps a ``tokenizer.json`` of the ``tokenizers`` library:
  WordPiece (BERT) and byte-level BPE (GPT-2);
* :class:`MarianTokenizer` is Marian's SentencePiece pair: ``source.spm`` splits the source text,
  ``target.spm`` joins the target pieces, and ``vocab.json`` maps pieces to the model's ids.

As every qkv tokenizer, ``encode`` gives the content ids only; the family's special tokens
(``[CLS]``/``[SEP]``, ``<|endoftext|>``, ``</s>``) are added by the code that feeds the model.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from qkv.tokenizers.base import Tokenizer, register_tokenizer

__all__ = ["HuggingFaceTokenizer", "MarianTokenizer"]

_SPECIALS = ("pad_id", "bos_id", "eos_id", "unk_id")


@register_tokenizer
class HuggingFaceTokenizer(Tokenizer):
    """A ``tokenizers.Tokenizer`` (from a ``tokenizer.json``) as a qkv tokenizer.

    Padding and truncation configured in the file are switched off: ``encode`` returns the ids
    of the whole text, without special tokens.

    Args:
        tokenizer: the ``tokenizers.Tokenizer``.
        pad_id, bos_id, eos_id, unk_id: the special ids (``None`` where there is none).
        max_length: the most tokens (special ones included) the model was trained to read, if
            known; users such as :func:`~qkv.pretrained.embed_sentences` truncate to it.
        prompt_bos: whether language-model prompts start with ``bos`` (GPT-2: no).

    Example:
        >>> from tokenizers import Tokenizer as Raw, models, pre_tokenizers
        >>> raw = Raw(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
        >>> raw.pre_tokenizer = pre_tokenizers.Whitespace()
        >>> tokenizer = HuggingFaceTokenizer(raw, unk_id=0)
        >>> tokenizer.encode("hello world again")
        [1, 2, 0]
        >>> tokenizer.tokens([1, 2])
        ['hello', 'world']
    """

    kind = "huggingface"

    def __init__(self, tokenizer, *, pad_id: int | None = None, bos_id: int | None = None,
                 eos_id: int | None = None, unk_id: int | None = None,
                 max_length: int | None = None, prompt_bos: bool = True) -> None:
        from tokenizers import Tokenizer as RawTokenizer

        if not isinstance(tokenizer, RawTokenizer):
            raise TypeError(f"tokenizer must be a tokenizers.Tokenizer, got {type(tokenizer).__name__}")
        self._tokenizer = RawTokenizer.from_str(tokenizer.to_str())    # a copy we may reconfigure
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = pad_id, bos_id, eos_id, unk_id
        for name in _SPECIALS:
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"{name} must be an id in [0, {self.vocab_size}), got {value}")
        self.max_length = max_length
        self.prompt_bos = bool(prompt_bos)

    @classmethod
    def from_file(cls, path: str | Path, **special: Any) -> HuggingFaceTokenizer:
        """Read a ``tokenizer.json``; ``special`` as in the constructor."""
        from tokenizers import Tokenizer as RawTokenizer

        return cls(RawTokenizer.from_file(str(path)), **special)

    def token_to_id(self, token: str) -> int | None:
        """The id of a token string (``"[CLS]"``), ``None`` if it is not in the vocabulary."""
        return self._tokenizer.token_to_id(token)

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids if int(i) not in self.special_ids]
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    def id_to_token(self, id: int) -> str:
        token = self._tokenizer.id_to_token(int(id))
        if token is None:
            raise ValueError(f"id must be in [0, {self.vocab_size}), got {id}")
        return token

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokenizer": json.loads(self._tokenizer.to_str()),
                **{name: getattr(self, name) for name in _SPECIALS},
                "max_length": self.max_length, "prompt_bos": self.prompt_bos}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HuggingFaceTokenizer:
        from tokenizers import Tokenizer as RawTokenizer

        raw = RawTokenizer.from_str(json.dumps(data["tokenizer"]))
        return cls(raw, **{name: data.get(name) for name in (*_SPECIALS, "max_length")},
                   prompt_bos=data.get("prompt_bos", True))

    def __repr__(self) -> str:
        model = json.loads(self._tokenizer.to_str())["model"]["type"]
        return f"HuggingFaceTokenizer({model}, vocab_size={self.vocab_size})"


@register_tokenizer
class MarianTokenizer(Tokenizer):
    """Marian's tokenizer: SentencePiece pieces mapped to ids by a shared vocabulary.

    ``encode`` splits the text with the source model (a leading language code such as
    ``>>fr<<`` is kept as one token) and maps each piece through ``vocab`` (unknown pieces →
    ``unk_id``); ``decode`` maps ids back to pieces and joins them with the target model. Unlike
    ``transformers``' ``MarianTokenizer`` it applies no Moses punctuation normalisation (which
    needs ``sacremoses``).

    Args:
        source_model, target_model: serialized SentencePiece models (``source.spm``,
            ``target.spm``).
        vocab: piece → id, the model's vocabulary (``vocab.json``).
        pad_id, bos_id, eos_id, unk_id: the special ids; ``bos_id`` is the decoder's start token
            (Marian's ``decoder_start_token_id``, which is its pad id).
    """

    kind = "marian_sentencepiece"

    def __init__(self, source_model: bytes, target_model: bytes, vocab: dict[str, int], *,
                 pad_id: int | None = None, bos_id: int | None = None,
                 eos_id: int | None = None, unk_id: int | None = None) -> None:
        import sentencepiece

        self._source_model, self._target_model = bytes(source_model), bytes(target_model)
        self.source = sentencepiece.SentencePieceProcessor(model_proto=self._source_model)
        self.target = sentencepiece.SentencePieceProcessor(model_proto=self._target_model)
        self.vocab = {str(piece): int(i) for piece, i in vocab.items()}
        self.pieces = {i: piece for piece, i in self.vocab.items()}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = pad_id, bos_id, eos_id, unk_id

    @classmethod
    def from_folder(cls, folder: str | Path, **special: Any) -> MarianTokenizer:
        """Read ``source.spm``, ``target.spm`` and ``vocab.json`` from a Marian folder."""
        folder = Path(folder)
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        return cls((folder / "source.spm").read_bytes(), (folder / "target.spm").read_bytes(),
                   vocab, **special)

    @property
    def vocab_size(self) -> int:
        return max(self.vocab.values()) + 1

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        code = []
        if text.startswith(">>") and (end := text.find("<<")) != -1:   # a target-language code
            code, text = [text[: end + 2]], text[end + 2:]
        pieces = code + self.source.encode(text, out_type=str)
        return [self.vocab.get(piece, self.unk_id) for piece in pieces]

    def decode(self, ids: Iterable[int]) -> str:
        pieces = [self.pieces[int(i)] for i in ids
                  if int(i) not in self.special_ids and int(i) in self.pieces]
        return self.target.decode_pieces(pieces).replace("\u2581", " ").strip()

    def id_to_token(self, id: int) -> str:
        if int(id) not in self.pieces:
            raise ValueError(f"id {id} is not in the vocabulary (ids 0 to {self.vocab_size - 1})")
        return self.pieces[int(id)]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind,
                "source_model": base64.b64encode(self._source_model).decode("ascii"),
                "target_model": base64.b64encode(self._target_model).decode("ascii"),
                "vocab": self.vocab, **{name: getattr(self, name) for name in _SPECIALS}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MarianTokenizer:
        return cls(base64.b64decode(data["source_model"]), base64.b64decode(data["target_model"]),
                   data["vocab"], **{name: data.get(name) for name in _SPECIALS})

    def __repr__(self) -> str:
        return f"MarianTokenizer(vocab_size={self.vocab_size})"
