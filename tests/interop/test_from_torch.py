"""from_torch: a converted nn.MultiheadAttention computes what PyTorch computes."""

import pytest
import torch
from torch import nn

import qkv
from qkv import from_torch, mask_from_torch


def torch_inputs(reference, query, key, value):
    """qkv takes (B, T, E); a batch_first=False PyTorch module takes (T, B, E)."""
    if reference.batch_first:
        return query, key, value
    return query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)


def randomize(module):
    """PyTorch initialises biases to zero; random values make every copied number count."""
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0.0, 0.3)


def run_reference(reference, query, key, value, **masks):
    out, weights = reference(*torch_inputs(reference, query, key, value), need_weights=True,
                             average_attn_weights=False, **masks)
    return (out if reference.batch_first else out.transpose(0, 1)), weights


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask and attn_mask")
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kv_dims", [(None, None), (6, 6), (6, 9)])
@pytest.mark.parametrize("mask_kind", ["none", "key_padding", "attn_bool", "attn_float", "both",
                                       "float_padding_and_bool_attn"])
def test_outputs_and_per_head_weights_equal_pytorch(batch_first, bias, kv_dims, mask_kind):
    kdim, vdim = kv_dims
    reference = nn.MultiheadAttention(16, 4, bias=bias, kdim=kdim, vdim=vdim,
                                      batch_first=batch_first).eval()
    randomize(reference)
    attention = from_torch(reference)
    assert isinstance(attention, qkv.MultiHeadAttention)
    B, T, S = 3, 5, 7
    query = torch.randn(B, T, 16)
    key, value = torch.randn(B, S, kdim or 16), torch.randn(B, S, vdim or 16)

    masks = {}
    if mask_kind in ("key_padding", "both"):
        masks["key_padding_mask"] = torch.arange(S)[None, :] >= torch.tensor([[7], [4], [2]])
    if mask_kind in ("attn_bool", "both"):
        attn = torch.rand(T, S) > 0.6
        attn[:, 0] = False  # PyTorch: True = masked; keep key 0 open so no row is empty
        masks["attn_mask"] = attn
    if mask_kind == "attn_float":
        masks["attn_mask"] = torch.randn(T, S)
    if mask_kind == "float_padding_and_bool_attn":
        masks["key_padding_mask"] = torch.randn(B, S)
        masks["attn_mask"] = torch.eye(T, S, dtype=torch.bool)

    expected_out, expected_w = run_reference(reference, query, key, value, **masks)
    mask = mask_from_torch(**masks)
    out, w = attention(query, key, value, mask=mask, need_weights=True)
    fused, _ = attention(query, key, value, mask=mask)
    torch.testing.assert_close(out, expected_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused, expected_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w, expected_w, atol=1e-5, rtol=1e-5)


def test_per_head_three_dimensional_attn_mask():
    reference = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    randomize(reference)
    attention = from_torch(reference)
    x = torch.randn(2, 4, 8)
    attn = torch.rand(2 * 2, 4, 4) > 0.5                                 # (B·H, T, S)
    attn[..., 0] = False
    expected_out, expected_w = run_reference(reference, x, x, x, attn_mask=attn)
    out, w = attention(x, mask=mask_from_torch(attn_mask=attn, num_heads=2), need_weights=True)
    torch.testing.assert_close(out, expected_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w, expected_w, atol=1e-5, rtol=1e-5)


def test_float_attn_mask_combines_with_key_padding():
    attn = torch.randn(3, 4)
    padding = torch.tensor([[False, False, True, True]])
    mask = mask_from_torch(key_padding_mask=padding, attn_mask=attn)
    assert mask.shape == (1, 1, 3, 4)
    assert torch.all(mask[..., 2:] == float("-inf"))
    torch.testing.assert_close(mask[0, 0, :, :2], attn[:, :2])


def test_training_mode_dtype_and_dropout_are_kept():
    reference = nn.MultiheadAttention(8, 2, dropout=0.25).double().train()
    attention = from_torch(reference)
    assert attention.training and attention.dropout == 0.25
    assert all(p.dtype == torch.float64 for p in attention.parameters())


def test_converted_module_is_independent_of_the_source():
    reference = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    attention = from_torch(reference)
    x = torch.randn(1, 3, 8)
    before = attention(x)[0]
    with torch.no_grad():
        reference.out_proj.weight.add_(1.0)
    torch.testing.assert_close(attention(x)[0], before)


def test_subclasses_of_supported_modules_convert():
    class Custom(nn.MultiheadAttention):
        pass

    reference = Custom(8, 2, batch_first=True).eval()
    randomize(reference)
    x = torch.randn(1, 3, 8)
    torch.testing.assert_close(from_torch(reference)(x)[0], reference(x, x, x)[0],
                               atol=1e-6, rtol=1e-5)


def test_unsupported_modules_and_options_are_named():
    with pytest.raises(TypeError, match="cannot convert Linear; supported: torch.nn.MultiheadAttention"):
        from_torch(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="add_bias_kv=True or add_zero_attn=True"):
        from_torch(nn.MultiheadAttention(8, 2, add_bias_kv=True))
    with pytest.raises(ValueError, match="add_bias_kv=True or add_zero_attn=True"):
        from_torch(nn.MultiheadAttention(8, 2, add_zero_attn=True))


def test_mask_from_torch_rejects_bad_masks():
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(B, S\), got \(4\)"):
        mask_from_torch(key_padding_mask=torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="needs num_heads"):
        mask_from_torch(attn_mask=torch.zeros(4, 3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(12, 5, 7\) is not \(B·H, T, S\) for num_heads=5"):
        mask_from_torch(attn_mask=torch.zeros(12, 5, 7, dtype=torch.bool), num_heads=5)
    with pytest.raises(TypeError, match="attn_mask must be boolean.*int64"):
        mask_from_torch(attn_mask=torch.zeros(3, 3, dtype=torch.long))
    assert mask_from_torch() is None
