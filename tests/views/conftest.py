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


LABELS = ["negative", "positive", "</script><b>x"]


@pytest.fixture(params=["cls", "mean"])
def classifier(request):
    """A tiny random classifier over three labels (one a hostile name), each pooling."""
    return qkv.SequenceClassifier(small(qkv.SequenceClassifierConfig, labels=LABELS,
                                        pooling=request.param)).eval()
