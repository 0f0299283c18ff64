"""Tiny random models and a whitespace tokenizer for the views' tests."""

import pytest

import qkv
from tests.space_tokenizer import space_tokenizer


@pytest.fixture
def tokenizer():
    return space_tokenizer()


def small(config_class, **extra):
    return config_class(vocab_size=space_tokenizer().vocab_size, d_model=16, num_heads=2,
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
