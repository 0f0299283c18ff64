"""Tokenizers with an explicit vocabulary: one token per character, or per word.

Both learn their vocabulary from training text (most frequent first), put the special tokens
``<pad> <bos> <eos> <unk>`` at ids 0–3, and map unseen tokens to ``<unk>``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from qkv.tokenizers.base import SPECIAL_TOKENS, Tokenizer, register_tokenizer

__all__ = ["CharTokenizer", "WordTokenizer"]

# CJK characters and punctuation (and kana, full-width forms): each is a word of its own, since
# Chinese and Japanese put no spaces between words.
_CJK = "\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
# A word is one CJK character, a run of other letters/digits, or a clitic ("'s" in "Tom's"); any
# other non-space character is a token of its own (punctuation).
_LETTERS = rf"(?:(?![{_CJK}])\w)+"
_WORD = re.compile(rf"[{_CJK}]|{_LETTERS}|'{_LETTERS}|[^\w\s]")
# Joined back with spaces, no space stays next to a CJK character
_CJK_SPACE = re.compile(rf" (?=[{_CJK}])|(?<=[{_CJK}]) ")
# When words are joined back with spaces, no space goes before these or after the openers.
_NO_SPACE_BEFORE = re.compile(r" ([.,!?;:%)\]}'])")
_NO_SPACE_AFTER = re.compile(r"([(\[{]) ")


class _VocabularyTokenizer(Tokenizer):
    """Shared machinery: a list of tokens whose index is the id."""

    def __init__(self, tokens: Iterable[str]) -> None:
        tokens = list(tokens)
        if tuple(tokens[:len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"a vocabulary must start with {SPECIAL_TOKENS}, got {tokens[:4]}")
        if len(set(tokens)) != len(tokens):
            duplicated = sorted(t for t, n in Counter(tokens).items() if n > 1)
            raise ValueError(f"the vocabulary repeats tokens: {duplicated[:10]}")
        self._tokens = tokens
        self._ids = {token: i for i, token in enumerate(tokens)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = range(len(SPECIAL_TOKENS))

    @classmethod
    def train(cls, texts: Iterable[str], *, min_count: int = 1,
              max_size: int | None = None) -> _VocabularyTokenizer:
        """Learn the vocabulary of ``texts``: tokens seen at least ``min_count`` times, most
        frequent first (ties alphabetical), at most ``max_size`` ids including the specials."""
        counts = Counter(token for text in texts for token in cls._split(text))
        ranked = sorted((t for t, n in counts.items() if n >= min_count and t not in SPECIAL_TOKENS),
                        key=lambda t: (-counts[t], t))
        if max_size is not None:
            if max_size <= len(SPECIAL_TOKENS):
                raise ValueError(f"max_size must exceed the {len(SPECIAL_TOKENS)} special tokens, "
                                 f"got {max_size}")
            ranked = ranked[:max_size - len(SPECIAL_TOKENS)]
        return cls([*SPECIAL_TOKENS, *ranked])

    @staticmethod
    def _split(text: str) -> list[str]:
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(token, self.unk_id) for token in self._split(text)]

    def id_to_token(self, id: int) -> str:
        if not 0 <= id < len(self._tokens):
            raise ValueError(f"id {id} is outside the vocabulary [0, {len(self._tokens)})")
        return self._tokens[id]

    def token_to_id(self, token: str) -> int:
        """The id of ``token``, or the ``<unk>`` id."""
        return self._ids.get(token, self.unk_id)

    def _content(self, ids: Iterable[int]) -> list[str]:
        special = self.special_ids - {self.unk_id}
        return [self.id_to_token(int(i)) for i in ids if int(i) not in special]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokens": list(self._tokens)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _VocabularyTokenizer:
        return cls(data["tokens"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


@register_tokenizer
class CharTokenizer(_VocabularyTokenizer):
    """One token per character (spaces included): the natural unit for Chinese.

    Example:
        >>> tokenizer = CharTokenizer.train(["我爱我的狗", "我的猫"])
        >>> tokenizer.encode("我的狗")
        [4, 5, 7]
        >>> tokenizer.decode([1, 4, 5, 7, 2])                          # specials are dropped
        '我的狗'
    """

    kind = "char"

    @staticmethod
    def _split(text: str) -> list[str]:
        return list(text)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self._content(ids))


@register_tokenizer
class WordTokenizer(_VocabularyTokenizer):
    """One token per word or punctuation mark; text is split on spaces and punctuation.

    Example:
        >>> tokenizer = WordTokenizer.train(["I love my dog.", "I love my cat?"])
        >>> tokenizer.tokens(tokenizer.encode("I love my bird."))      # unseen word → <unk>
        ['I', 'love', 'my', '<unk>', '.']
        >>> tokenizer.decode(tokenizer.encode("I love my dog."))
        'I love my dog.'
    """

    kind = "word"

    @staticmethod
    def _split(text: str) -> list[str]:
        return _WORD.findall(text)

    def decode(self, ids: Iterable[int]) -> str:
        text = _CJK_SPACE.sub("", " ".join(self._content(ids)))
        return _NO_SPACE_AFTER.sub(r"\1", _NO_SPACE_BEFORE.sub(r"\1", text))
