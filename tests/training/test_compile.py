"""compile_model (what ``qkv train --compile`` runs) changes how a model computes, not what."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import qkv
from qkv.training import compile as compile_module
from qkv.training.compile import OneDNNLinear, compile_model, onednn_available

needs_onednn = pytest.mark.skipif(not onednn_available(), reason="this PyTorch has no oneDNN")


def tiny_transformer() -> qkv.Transformer:
    torch.manual_seed(0)
    config = qkv.TransformerConfig(vocab_size=40, d_model=32, num_heads=4, num_layers=2,
                                   d_ff=64, dropout=0.0, pad_id=0)
    return qkv.Transformer(config)


def loss_and_gradients(model: nn.Module) -> tuple[torch.Tensor, dict]:
    src = torch.tensor([[5, 6, 7, 8, 0, 0], [9, 10, 11, 12, 13, 14]])
    tgt = torch.tensor([[1, 15, 16, 0], [1, 17, 18, 19]])
    model.zero_grad(set_to_none=True)
    loss = model(src, tgt).square().mean()
    loss.backward()
    return loss.detach(), {name: p.grad for name, p in model.named_parameters()}


@needs_onednn
def test_compiled_model_gives_the_same_loss_and_gradients():
    plain = tiny_transformer()
    compiled = compile_model(copy.deepcopy(plain))
    assert isinstance(compiled.output_layer, OneDNNLinear)
    assert isinstance(compiled.encoder.layers[0].self_attention.query_proj, OneDNNLinear)
    loss, gradients = loss_and_gradients(plain)
    compiled_loss, compiled_gradients = loss_and_gradients(compiled)
    torch.testing.assert_close(compiled_loss, loss, atol=1e-6, rtol=1e-5)
    assert gradients.keys() == compiled_gradients.keys()
    for name, gradient in gradients.items():
        torch.testing.assert_close(compiled_gradients[name], gradient, atol=1e-6, rtol=1e-5,
                                   msg=name)


@needs_onednn
def test_linear_products_match_nn_linear_with_batch_dims_and_without_bias():
    for bias in (True, False):
        reference = nn.Linear(24, 40, bias=bias)
        layer = compile_model(copy.deepcopy(reference))
        x = torch.randn(3, 7, 24, requires_grad=True)
        expected = reference(x)
        (expected_grad,) = torch.autograd.grad(expected.square().sum(), x)
        output = layer(x)
        (grad,) = torch.autograd.grad(output.square().sum(), x)
        torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=1e-5)


def test_parameters_and_checkpoints_keep_their_names():
    plain = tiny_transformer()
    compiled = compile_model(copy.deepcopy(plain))
    assert list(plain.state_dict()) == list(compiled.state_dict())
    assert compiled.output_layer.weight is compiled.tgt_embedding.token.weight   # still tied
    tiny_transformer().load_state_dict(compiled.state_dict())
    compiled.load_state_dict(plain.state_dict())


def test_falls_back_to_f_linear_where_onednn_does_not_apply():
    layer = compile_model(nn.Linear(4, 3))
    for x in (torch.randn(2, 4, dtype=torch.float64),                   # another dtype
              torch.randn(0, 4)):                                       # an empty batch
        layer = layer.to(x.dtype)
        torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight,
                                                                        layer.bias))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer.float()(torch.randn(2, 4)).dtype == torch.bfloat16


def test_without_onednn_nothing_changes(monkeypatch):
    monkeypatch.setattr(compile_module, "onednn_available", lambda: False)
    model = compile_model(tiny_transformer())
    assert not any(isinstance(module, OneDNNLinear) for module in model.modules())


def test_only_modules_are_compiled():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        compile_model("a model")
