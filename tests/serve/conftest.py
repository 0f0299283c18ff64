"""Tiny random models (a translation model, a classifier) and a whitespace tokenizer, as ``qkv
serve`` loads a model."""

import types

import pytest

import qkv
from tests.space_tokenizer import space_tokenizer


@pytest.fixture
def loaded():
    """What ``qkv.cli._load.load_model`` returns, for a tiny random translation model."""
    tokenizer = space_tokenizer()
    config = qkv.TransformerConfig(vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2,
                                   num_layers=2, d_ff=32, dropout=0.0)
    return types.SimpleNamespace(model=qkv.Transformer(config).eval(), task="translation",
                                 source_tokenizer=tokenizer, target_tokenizer=tokenizer)


LABELS = ["negative", "positive", "</script><b>x"]


@pytest.fixture
def classifier_loaded():
    """What ``load_model`` returns for a tiny random classifier (one label name is hostile)."""
    tokenizer = space_tokenizer()
    config = qkv.SequenceClassifierConfig(vocab_size=tokenizer.vocab_size, d_model=16,
                                          num_heads=2, num_layers=2, d_ff=32, dropout=0.0,
                                          labels=LABELS)
    return types.SimpleNamespace(model=qkv.SequenceClassifier(config).eval(),
                                 task="classification", source_tokenizer=tokenizer,
                                 target_tokenizer=tokenizer)
