"""Tokenizers: text ↔ ids, with special tokens, saved with every checkpoint."""

from qkv.tokenizers.base import SPECIAL_TOKENS, Tokenizer, register_tokenizer, tokenizer_from_dict
from qkv.tokenizers.bpe import BPETokenizer
from qkv.tokenizers.vocab import CharTokenizer, WordTokenizer

__all__ = ["SPECIAL_TOKENS", "Tokenizer", "register_tokenizer", "tokenizer_from_dict",
           "BPETokenizer", "CharTokenizer", "WordTokenizer", "train_tokenizer"]

_KINDS = {"char": CharTokenizer, "word": WordTokenizer, "bpe": BPETokenizer}


def train_tokenizer(kind: str, texts, *, vocab_size: int | None = None) -> Tokenizer:
    """Train a tokenizer of ``kind`` (``"char"``, ``"word"`` or ``"bpe"``) on ``texts``.

    ``vocab_size`` caps the vocabulary (specials included); BPE defaults to 8,000.

    Example:
        >>> train_tokenizer("char", ["abba"]).vocab_size                 # 4 specials + a, b
        6
    """
    if kind not in _KINDS:
        raise ValueError(f"tokenizer must be one of {', '.join(_KINDS)}, got {kind!r}")
    texts = list(texts)
    if kind == "bpe":
        return BPETokenizer.train(texts, vocab_size=vocab_size or 8000)
    return _KINDS[kind].train(texts, max_size=vocab_size)
