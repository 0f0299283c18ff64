"""Tiny models and a whitespace tokenizer for the views' tests (fixtures, imported by name:
a conftest.py here would clash with the other test folders' under --doctest-modules)."""

import pytest

import qkv
from qkv.tokenizers import WordTokenizer
from qkv.tokenizers.base import SPECIAL_TOKENS

__all__ = ["encoder_model", "language_model", "tokenizer", "translation_model"]

WORDS = ["I", "love", "my", "dog", "the", "cat", "<script>alert(1)</script>", "</script>", "我爱狗"]


class SpaceTokenizer(WordTokenizer):
    """Tokens are the text's whitespace-separated words, kept whole (``</script>`` included)."""

    kind = "space-test"

    @staticmethod
    def _split(text):
        return text.split()


@pytest.fixture
def tokenizer():
    return SpaceTokenizer([*SPECIAL_TOKENS, *WORDS])


def small(config_class, **extra):
    return config_class(vocab_size=len(SPECIAL_TOKENS) + len(WORDS), d_model=16, num_heads=2,
                        num_layers=2, d_ff=32, dropout=0.0, **extra)


@pytest.fixture
def language_model():
    return qkv.LanguageModel(small(qkv.LanguageModelConfig)).eval()


@pytest.fixture
def translation_model():
    return qkv.Transformer(small(qkv.TransformerConfig)).eval()


@pytest.fixture
def encoder_model():
    return qkv.EncoderModel(small(qkv.EncoderModelConfig)).eval()
