"""Configs: the paper's names and defaults, validated once with errors that say what is wrong."""

import dataclasses

import pytest

import qkv
from qkv import EncoderModelConfig, LanguageModelConfig, TransformerConfig


def test_defaults_are_the_papers_choices():
    config = TransformerConfig(vocab_size=100)
    assert (config.d_model, config.num_heads, config.num_layers, config.d_ff) == (512, 8, 6, 2048)
    assert (config.dropout, config.positions, config.activation) == (0.1, "sinusoidal", "relu")
    assert not config.norm_first and config.scale_embeddings and config.target_vocab_size == 100


def test_base_is_table_3_with_one_shared_vocabulary():
    config = TransformerConfig.base(vocab_size=37000)
    assert (config.num_layers, config.d_model, config.d_ff, config.num_heads) == (6, 512, 2048, 8)
    assert config.dropout == 0.1 and config.head_dim == 64
    assert config.share_embeddings and config.tie_output


def test_base_has_the_papers_parameter_count_order():
    """Paper, Table 3: 65M for the base model. With a 37,000-token shared vocabulary (tied to the
    output layer) qkv's is 63,082,496 — the README reports this figure."""
    model = qkv.Transformer(TransformerConfig.base(vocab_size=37000))
    count = sum(p.numel() for p in model.parameters())                 # shared tensors once
    assert count == 63_082_496
    per_layer_encoder = 4 * (512 * 512 + 512) + 2 * 512 * 2048 + 2048 + 512 + 2 * 2 * 512
    per_layer_decoder = per_layer_encoder + 4 * (512 * 512 + 512) + 2 * 512
    assert count == 37000 * 512 + 6 * (per_layer_encoder + per_layer_decoder)


def test_big_is_table_3():
    config = TransformerConfig.big(vocab_size=100)
    assert (config.d_model, config.d_ff, config.num_heads, config.dropout) == (1024, 4096, 16, 0.3)


def test_configs_round_trip_through_a_dict():
    config = LanguageModelConfig(vocab_size=50, d_model=32, num_heads=4, positions="rotary")
    assert LanguageModelConfig(**config.to_dict()) == config
    assert dataclasses.replace(config, num_layers=2).num_layers == 2


@pytest.mark.parametrize("changes, message", [
    (dict(d_model=30, num_heads=4), r"d_model \(30\) must be divisible by num_heads \(4\)"),
    (dict(num_layers=0), r"num_layers must be >= 1, got 0"),
    (dict(dropout=1.5), "dropout"),
    (dict(pad_id=100), r"pad_id \(100\) must be a token id below vocab_size \(100\)"),
    (dict(positions="absolute"), "positions must be one of 'sinusoidal', 'learned', 'rotary'"),
    (dict(activation="swish"), "activation must be one of"),
    (dict(d_model=12, num_heads=4, positions="rotary"), "head dim d_model / num_heads = 3"),
    (dict(norm_eps=0), "norm_eps must be a positive number"),
    (dict(norm_eps=True), "norm_eps must be a positive number"),
    (dict(norm_eps=float("inf")), "norm_eps must be a positive number"),
])
def test_invalid_fields_raise_value_error_naming_them(changes, message):
    with pytest.raises(ValueError, match=message):
        LanguageModelConfig(vocab_size=100, **changes)


def test_wrong_field_types_raise_type_error():
    with pytest.raises(TypeError, match="d_model"):
        EncoderModelConfig(vocab_size=10, d_model=16.0)
    with pytest.raises(TypeError, match="norm_first"):
        EncoderModelConfig(vocab_size=10, norm_first="yes")


def test_shared_embeddings_need_one_vocabulary():
    with pytest.raises(ValueError, match="vocab_size is 100 and tgt_vocab_size is 80"):
        TransformerConfig(vocab_size=100, tgt_vocab_size=80, share_embeddings=True)


def test_models_refuse_another_familys_config():
    with pytest.raises(TypeError, match="must be a LanguageModelConfig, got TransformerConfig"):
        qkv.LanguageModel(TransformerConfig(vocab_size=10))


def test_replace_derives_the_target_vocabulary_afresh():
    config = TransformerConfig(vocab_size=100)
    assert config.tgt_vocab_size is None and config.target_vocab_size == 100
    assert dataclasses.replace(config, vocab_size=200).target_vocab_size == 200
    assert dataclasses.replace(TransformerConfig.base(100), vocab_size=200).vocab_size == 200
