"""Tiny models for the trace tests: every family, with padding, dropout off."""

import torch

import qkv

TINY = dict(d_model=16, num_heads=2, num_layers=2, d_ff=32, max_len=64, dropout=0.0)
V = 30


def transformer(**changes) -> qkv.Transformer:
    return qkv.Transformer(qkv.TransformerConfig(vocab_size=V, **{**TINY, **changes})).eval()


def language_model(**changes) -> qkv.LanguageModel:
    return qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=V, **{**TINY, **changes})).eval()


def encoder_model(**changes) -> qkv.EncoderModel:
    return qkv.EncoderModel(qkv.EncoderModelConfig(vocab_size=V, **{**TINY, **changes})).eval()


def classifier(**changes) -> qkv.SequenceClassifier:
    config = qkv.SequenceClassifierConfig(vocab_size=V, labels=["a", "b", "c"],
                                          **{**TINY, **changes})
    return qkv.SequenceClassifier(config).eval()


def source_ids() -> torch.Tensor:
    src = torch.randint(1, V, (2, 6))
    src[1, 4:] = 0                                                      # source padding
    return src


def target_ids() -> torch.Tensor:
    tgt = torch.randint(1, V, (2, 5))
    tgt[1, 3:] = 0                                                      # target padding
    return tgt


# name → (model factory, call on the model)
FAMILIES = {
    "transformer": (transformer, lambda model: model(source_ids(), target_ids())),
    "transformer-prenorm-rotary": (
        lambda: transformer(norm_first=True, positions="rotary"),
        lambda model: model(source_ids(), target_ids())),
    "language-model": (language_model, lambda model: model(target_ids())),
    "language-model-rotary": (lambda: language_model(positions="rotary"),
                              lambda model: model(target_ids())),
    "encoder-model": (encoder_model, lambda model: model(source_ids())),
    "classifier-mean-pooler": (lambda: classifier(pooling="mean", pooler=True),
                               lambda model: model(source_ids())),
}

