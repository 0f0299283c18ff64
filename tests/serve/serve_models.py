"""A tiny translation model and a whitespace tokenizer, loaded as ``qkv serve`` loads a model
(fixtures, imported by name: a conftest.py here would clash under --doctest-modules)."""

import types

import pytest

import qkv
from qkv.tokenizers import WordTokenizer
from qkv.tokenizers.base import SPECIAL_TOKENS

__all__ = ["loaded"]

WORDS = ["I", "love", "my", "dog", "the", "cat", "<script>alert(1)</script>", "</script>"]


class SpaceTokenizer(WordTokenizer):
    """Tokens are the text's whitespace-separated words, kept whole (``<script>`` included)."""

    kind = "space-test"

    @staticmethod
    def _split(text):
        return text.split()


@pytest.fixture
def loaded():
    """What ``qkv.cli._load.load_model`` returns, for a tiny random translation model."""
    tokenizer = SpaceTokenizer([*SPECIAL_TOKENS, *WORDS])
    config = qkv.TransformerConfig(vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2,
                                   num_layers=2, d_ff=32, dropout=0.0)
    return types.SimpleNamespace(model=qkv.Transformer(config).eval(), task="translation",
                                 source_tokenizer=tokenizer, target_tokenizer=tokenizer)
