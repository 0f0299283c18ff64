"""Byte-pair encoding learned from your text with the Hugging Face ``tokenizers`` library."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tokenizers import Tokenizer as _Backend
from tokenizers import decoders, models, pre_tokenizers, trainers

from qkv.tokenizers.base import SPECIAL_TOKENS, Tokenizer, register_tokenizer

__all__ = ["BPETokenizer"]


@register_tokenizer
class BPETokenizer(Tokenizer):
    """Subword tokenizer: frequent character sequences merged into tokens (Sennrich et al., 2016;
    the paper's 37,000-token shared vocabulary). Spaces become ``▁`` (Metaspace), so decoding
    gives back the text exactly.

    Example:
        >>> texts = ["I love my dog", "I love my cat", "my dog loves me"] * 20
        >>> tokenizer = BPETokenizer.train(texts, vocab_size=60)
        >>> ids = tokenizer.encode("my dog")
        >>> tokenizer.decode(ids)
        'my dog'
        >>> tokenizer.id_to_token(tokenizer.eos_id)
        '<eos>'
    """

    kind = "bpe"

    def __init__(self, backend: _Backend) -> None:
        self._backend = backend
        ids = [backend.token_to_id(token) for token in SPECIAL_TOKENS]
        if ids != list(range(len(SPECIAL_TOKENS))):
            raise ValueError(f"a BPE vocabulary must give {SPECIAL_TOKENS} the ids 0–3, got {ids}")
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = ids
        # "<eos>" typed in a text is text, not the control token: encode gives content ids only
        self._backend.encode_special_tokens = True

    @classmethod
    def train(cls, texts: Iterable[str], *, vocab_size: int = 8000,
              min_frequency: int = 2) -> BPETokenizer:
        """Learn ``vocab_size`` tokens (specials included) from ``texts``."""
        backend = _Backend(models.BPE(unk_token="<unk>"))
        backend.pre_tokenizer = pre_tokenizers.Metaspace()
        backend.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                      special_tokens=list(SPECIAL_TOKENS), show_progress=False)
        backend.train_from_iterator(texts, trainer=trainer)
        return cls(backend)

    @property
    def vocab_size(self) -> int:
        return self._backend.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self._backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``; ``<pad>``, ``<bos>`` and ``<eos>`` dropped, ``<unk>`` shown (as
        the character and word tokenizers show it)."""
        control = (self.pad_id, self.bos_id, self.eos_id)
        return self._backend.decode([int(i) for i in ids if int(i) not in control],
                                    skip_special_tokens=False)

    def id_to_token(self, id: int) -> str:
        token = self._backend.id_to_token(int(id))
        if token is None:
            raise ValueError(f"id {id} is outside the vocabulary [0, {self.vocab_size})")
        return token

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokenizer_json": self._backend.to_str()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BPETokenizer:
        return cls(_Backend.from_str(data["tokenizer_json"]))

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"
