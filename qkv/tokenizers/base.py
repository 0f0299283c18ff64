"""What every qkv tokenizer offers: text ↔ ids, special tokens, display strings, a JSON form.

A tokenizer's ``encode`` returns the *content* ids of a text, without special tokens; the task
that feeds a model adds them (a translation source ends with ``eos``, a target starts with
``bos``, a language-model text starts with ``bos``). ``decode`` drops special tokens.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

__all__ = ["Tokenizer", "SPECIAL_TOKENS", "register_tokenizer", "tokenizer_from_dict"]

# The special tokens of the tokenizers qkv trains, at these ids, in this order.
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")

_KINDS: dict[str, type[Tokenizer]] = {}


class Tokenizer(abc.ABC):
    """Base class of qkv's tokenizers.

    Attributes:
        pad_id, bos_id, eos_id, unk_id: ids of the special tokens, ``None`` where the tokenizer
            has no such token.
        prompt_bos: whether a language model's text starts with ``bos`` — true for the models
            qkv trains; GPT-2 reads prompts as they are (its ``bos`` only starts an empty one).
    """

    kind: ClassVar[str]
    pad_id: int | None = None
    bos_id: int | None = None
    eos_id: int | None = None
    unk_id: int | None = None
    prompt_bos: bool = True

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """Number of ids; every id is in ``range(vocab_size)``."""

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """The content ids of ``text`` (no special tokens added)."""

    @abc.abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; special tokens are dropped."""

    @abc.abstractmethod
    def id_to_token(self, id: int) -> str:
        """The token string of one id, as a view shows it (``"<eos>"``, ``"▁dog"``, ``"狗"``)."""

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description from which :func:`tokenizer_from_dict` rebuilds it exactly."""

    @classmethod
    @abc.abstractmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokenizer:
        """Inverse of :meth:`to_dict`."""

    # -- conveniences shared by every tokenizer ---------------------------------------------------

    def prompt_ids(self, text: str) -> list[int]:
        """The ids a language model reads for ``text``: ``[bos] + encode(text)`` where the
        tokenizer has a ``bos`` and its models read prompts so (``prompt_bos``), and an empty
        text is ``[bos]`` alone."""
        content = self.encode(text)
        start = self.bos_id is not None and (self.prompt_bos or not content)
        return [self.bos_id] * start + content

    @property
    def special_ids(self) -> frozenset[int]:
        """Ids of the special tokens this tokenizer has."""
        return frozenset(i for i in (self.pad_id, self.bos_id, self.eos_id, self.unk_id)
                         if i is not None)

    def tokens(self, ids: Sequence[int]) -> list[str]:
        """Display strings of ``ids``, one per id."""
        return [self.id_to_token(int(i)) for i in ids]

    def require(self, *names: str) -> None:
        """Raise a ValueError unless each named special token (``"bos"``, ``"eos"``…) exists."""
        missing = [name for name in names if getattr(self, f"{name}_id") is None]
        if missing:
            raise ValueError(f"this {type(self).__name__} has no {', '.join(missing)} token; "
                             f"the task needs {', '.join(names)}")


def register_tokenizer(cls: type[Tokenizer]) -> type[Tokenizer]:
    """Class decorator: make ``cls`` rebuildable by :func:`tokenizer_from_dict` via its ``kind``."""
    _KINDS[cls.kind] = cls
    return cls


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer saved with :meth:`Tokenizer.to_dict` (the ``"kind"`` key picks the class)."""
    if not isinstance(data, dict) or "kind" not in data:
        raise ValueError("a saved tokenizer must be a dict with a 'kind' key, "
                         f"got {type(data).__name__}")
    kind = data["kind"]
    if kind not in _KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; known: {', '.join(sorted(_KINDS))}")
    return _KINDS[kind].from_dict(data)
