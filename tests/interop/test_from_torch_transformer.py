"""from_torch on nn.Transformer*: converted layers, stacks and whole models compute what PyTorch does."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qkv
from qkv import from_torch, mask_from_torch

E, H, FF = 16, 4, 32
B, S, T = 3, 7, 5

pytestmark = pytest.mark.filterwarnings(
    "ignore:enable_nested_tensor is True", "ignore:.*mismatched key_padding_mask and attn_mask",
    "ignore:The PyTorch API of nested tensors is in prototype stage")


def randomize(module):
    """Random weights *and* biases/LayerNorm affines, so that every copied number matters."""
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0.0, 0.3)
    return module.eval()


def to_torch(x, batch_first):
    """qkv takes (B, T, E); a batch_first=False PyTorch module takes (T, B, E)."""
    return x if batch_first else x.transpose(0, 1)


def source_padding():
    """PyTorch polarity: True = padding. Lengths 7, 4, 6."""
    return torch.arange(S)[None, :] >= torch.tensor([[S], [4], [6]])


def target_padding():
    return torch.arange(T)[None, :] >= torch.tensor([[T], [T], [3]])


def causal_float_mask():
    return nn.Transformer.generate_square_subsequent_mask(T)          # 0 / -inf, PyTorch's helper


def assert_close_where_valid(actual, expected, padding):
    """Compare (B, L, E) outputs at non-padding positions (PyTorch's encoder fast path writes 0
    at padding positions; their values are meaningless either way)."""
    valid = ~padding
    torch.testing.assert_close(actual[valid], expected[valid], atol=1e-5, rtol=1e-5)


options = pytest.mark.parametrize("batch_first", [True, False])
norms = pytest.mark.parametrize("norm_first", [False, True])
activations = pytest.mark.parametrize(
    "activation", ["relu", "gelu", F.gelu, torch.relu, nn.GELU("tanh")],
    ids=["relu", "gelu", "F.gelu", "torch.relu", "GELU-tanh"])


@options
@norms
@activations
def test_encoder_layer_equals_pytorch_with_source_padding(batch_first, norm_first, activation):
    reference = randomize(nn.TransformerEncoderLayer(E, H, FF, activation=activation,
                                                     batch_first=batch_first, norm_first=norm_first))
    layer = from_torch(reference)
    assert isinstance(layer, qkv.EncoderLayer)
    assert isinstance(layer.self_attention_residual, qkv.PreNorm if norm_first else qkv.PostNorm)
    x, padding = torch.randn(B, S, E), source_padding()
    expected = to_torch(reference(to_torch(x, batch_first), src_key_padding_mask=padding),
                        batch_first)
    actual = layer(x, mask_from_torch(key_padding_mask=padding))
    assert_close_where_valid(actual, expected, padding)


@options
@norms
@activations
def test_decoder_layer_equals_pytorch_with_causal_padding_and_memory_masks(
        batch_first, norm_first, activation):
    reference = randomize(nn.TransformerDecoderLayer(E, H, FF, activation=activation,
                                                     batch_first=batch_first, norm_first=norm_first))
    layer = from_torch(reference)
    assert isinstance(layer, qkv.DecoderLayer)
    tgt, memory = torch.randn(B, T, E), torch.randn(B, S, E)
    tgt_padding, src_padding = target_padding(), source_padding()
    expected = to_torch(reference(
        to_torch(tgt, batch_first), to_torch(memory, batch_first), tgt_mask=causal_float_mask(),
        tgt_key_padding_mask=tgt_padding, memory_key_padding_mask=src_padding), batch_first)
    actual = layer(tgt, memory, tgt_mask=mask_from_torch(key_padding_mask=tgt_padding),
                   memory_mask=mask_from_torch(key_padding_mask=src_padding))   # causal=True
    assert_close_where_valid(actual, expected, tgt_padding)


@options
@norms
def test_transformer_equals_pytorch_with_all_masks(batch_first, norm_first):
    reference = randomize(nn.Transformer(E, H, num_encoder_layers=2, num_decoder_layers=3,
                                         dim_feedforward=FF, batch_first=batch_first,
                                         norm_first=norm_first))
    model = from_torch(reference)
    assert isinstance(model, qkv.EncoderDecoder)
    assert (len(model.encoder.layers), len(model.decoder.layers)) == (2, 3)
    src, tgt = torch.randn(B, S, E), torch.randn(B, T, E)
    src_padding, tgt_padding = source_padding(), target_padding()
    memory_mask = torch.rand(T, S) < 0.3                                 # PyTorch: True = blocked
    memory_mask[:, 0] = False                                           # every query keeps a key
    expected = to_torch(reference(
        to_torch(src, batch_first), to_torch(tgt, batch_first), tgt_mask=causal_float_mask(),
        memory_mask=memory_mask, src_key_padding_mask=src_padding,
        tgt_key_padding_mask=tgt_padding, memory_key_padding_mask=src_padding), batch_first)
    actual = model(src, tgt,
                   src_mask=mask_from_torch(key_padding_mask=src_padding),
                   tgt_mask=mask_from_torch(key_padding_mask=tgt_padding),
                   memory_mask=mask_from_torch(key_padding_mask=src_padding,
                                               attn_mask=memory_mask))
    assert_close_where_valid(actual, expected, tgt_padding)


@norms
def test_encoder_stack_keeps_its_final_norm(norm_first):
    layer = nn.TransformerEncoderLayer(E, H, FF, batch_first=True, norm_first=norm_first)
    reference = randomize(nn.TransformerEncoder(layer, num_layers=2, norm=nn.LayerNorm(E, eps=1e-6),
                                                enable_nested_tensor=False))
    encoder = from_torch(reference)
    assert isinstance(encoder, qkv.Encoder) and encoder.norm.eps == 1e-6
    x, padding = torch.randn(B, S, E), source_padding()
    torch.testing.assert_close(encoder(x, mask_from_torch(key_padding_mask=padding)),
                               reference(x, src_key_padding_mask=padding), atol=1e-5, rtol=1e-5)


def test_decoder_without_causal_mask_matches_with_causal_false():
    """PyTorch's decoder sees later positions unless masked; qkv's needs causal=False for that."""
    layer = nn.TransformerDecoderLayer(E, H, FF, batch_first=True)
    reference = randomize(nn.TransformerDecoder(layer, num_layers=2))
    decoder = from_torch(reference)
    assert decoder.norm is None
    tgt, memory = torch.randn(B, T, E), torch.randn(B, S, E)
    expected = reference(tgt, memory)
    torch.testing.assert_close(decoder(tgt, memory, causal=False), expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(decoder(tgt, memory), expected, atol=1e-3)


def test_converted_layer_keeps_dropout_eps_bias_and_training_mode():
    reference = nn.TransformerEncoderLayer(E, H, FF, dropout=0.25, layer_norm_eps=1e-7, bias=False,
                                           batch_first=True)
    layer = from_torch(reference)
    assert layer.training
    assert layer.feed_forward.dropout.p == layer.feed_forward_residual.dropout.p == 0.25
    assert layer.self_attention.dropout == 0.25
    assert layer.self_attention_residual.norm.eps == 1e-7
    assert layer.feed_forward.inner.bias is None and layer.self_attention_residual.norm.bias is None


def test_converted_model_is_independent_of_the_source():
    reference = randomize(nn.TransformerEncoderLayer(E, H, FF, batch_first=True))
    layer = from_torch(reference)
    x = torch.randn(B, S, E)
    before = layer(x)
    with torch.no_grad():
        reference.linear1.weight.zero_()
    torch.testing.assert_close(layer(x), before)


def test_converted_model_trains_with_gradients_everywhere():
    reference = nn.Transformer(E, H, 1, 1, FF, batch_first=True, dropout=0.0)
    model = from_torch(reference)
    model(torch.randn(B, S, E), torch.randn(B, T, E)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_unsupported_activation_is_refused_by_name():
    reference = nn.TransformerEncoderLayer(E, H, FF, activation=nn.SiLU(), batch_first=True)
    with pytest.raises(ValueError, match=r"activations ReLU .* and GELU .*got SiLU\(\)"):
        from_torch(reference)
