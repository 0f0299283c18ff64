"""MultiHeadAttention against a per-head reference written with plain torch ops."""

import math

import pytest
import torch
import torch.nn.functional as F

import qkv
from qkv import MultiHeadAttention, causal_mask, length_mask


def reference_multi_head(attention, query, key, value, allowed=None):
    """Each head computed on its own slice of the projections, then concatenated, then W^O.

    Returns (output (B, T, E), weights (B, H, T, S)).
    """
    H, Hkv, D = attention.num_heads, attention.num_kv_heads, attention.head_dim
    if allowed is not None and allowed.dim() == 4:  # (B, 1, T, S): one mask for every head
        allowed = allowed[:, 0]
    q_all = attention.query_proj(query)
    k_all, v_all = attention.key_proj(key), attention.value_proj(value)
    heads, weights = [], []
    for h in range(H):
        kv = h // (H // Hkv)
        q = q_all[..., h * D:(h + 1) * D]
        k = k_all[..., kv * D:(kv + 1) * D]
        v = v_all[..., kv * D:(kv + 1) * D]
        scores = q @ k.transpose(-2, -1) / math.sqrt(D)
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        w = scores.softmax(-1)
        heads.append(w @ v)
        weights.append(w)
    return attention.output_proj(torch.cat(heads, dim=-1)), torch.stack(weights, dim=1)


def check_against_reference(attention, query, key=None, value=None, mask=None, causal=False,
                            allowed=None):
    key = query if key is None else key
    value = key if value is None else value
    expected_out, expected_w = reference_multi_head(attention, query, key, value, allowed)
    out, w = attention(query, key, value, mask=mask, causal=causal, need_weights=True)
    fused, none = attention(query, key, value, mask=mask, causal=causal)
    assert none is None
    B, T, E = query.shape
    assert out.shape == (B, T, E) and w.shape == (B, attention.num_heads, T, key.shape[1])
    torch.testing.assert_close(out, expected_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused, expected_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w, expected_w, atol=1e-6, rtol=1e-5)


def test_self_attention_when_key_and_value_are_omitted():
    attention = MultiHeadAttention(16, 4)
    x = torch.randn(2, 5, 16)
    out, _ = attention(x)
    torch.testing.assert_close(out, attention(x, x, x)[0])
    check_against_reference(attention, x)


def test_cross_attention_with_a_different_key_value_width():
    attention = MultiHeadAttention(16, 4, kv_dim=10)
    query, memory = torch.randn(2, 3, 16), torch.randn(2, 7, 10)
    check_against_reference(attention, query, memory, memory)
    torch.testing.assert_close(attention(query, memory)[0], attention(query, memory, memory)[0])


def test_key_and_value_widths_may_differ():
    attention = MultiHeadAttention(12, 3, kv_dim=5, value_dim=9)
    check_against_reference(attention, torch.randn(2, 4, 12), torch.randn(2, 6, 5),
                            torch.randn(2, 6, 9))


@pytest.mark.parametrize("num_kv_heads", [1, 2, 4])
def test_grouped_and_multi_query_attention(num_kv_heads):
    attention = MultiHeadAttention(32, 8, num_kv_heads=num_kv_heads)
    assert attention.key_proj.out_features == num_kv_heads * 4
    check_against_reference(attention, torch.randn(2, 5, 32), causal=True,
                            allowed=causal_mask(5))


def test_padding_and_causal_masks_reach_every_head():
    attention = MultiHeadAttention(16, 4)
    x = torch.randn(2, 5, 16)
    pad = length_mask(torch.tensor([5, 3]))                              # (B, 1, 1, S)
    check_against_reference(attention, x, mask=pad, causal=True, allowed=pad & causal_mask(5))
    _, w = attention(x, mask=pad, need_weights=True)
    assert torch.all(w[1, :, :, 3:] == 0)


def test_three_dimensional_mask_is_per_batch_and_shared_by_heads():
    attention = MultiHeadAttention(16, 4)
    x = torch.randn(2, 4, 16)
    mask = torch.rand(2, 4, 4) > 0.3                                     # (B, T, S)
    mask[..., 0] = True
    check_against_reference(attention, x, mask=mask, allowed=mask[:, None])


def test_weights_are_per_head_not_averaged():
    attention = MultiHeadAttention(16, 4)
    _, w = attention(torch.randn(1, 6, 16), need_weights=True)
    assert w.shape == (1, 4, 6, 6)
    assert not torch.allclose(w[:, 0], w[:, 1])


def test_heads_are_independent_slices_of_the_projection():
    # zeroing head 2's slice of W^O removes exactly head 2's contribution
    attention = MultiHeadAttention(16, 4, bias=False)
    x = torch.randn(1, 5, 16)
    _, w = attention(x, need_weights=True)
    v = attention.value_proj(x).view(1, 5, 4, 4).transpose(1, 2)         # (B, H, S, D)
    head_2 = (w[:, 2] @ v[:, 2]) @ attention.output_proj.weight[:, 8:12].T
    full, _ = attention(x)
    with torch.no_grad():
        attention.output_proj.weight[:, 8:12] = 0
    without_head_2, _ = attention(x)
    torch.testing.assert_close(full - without_head_2, head_2, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("need_weights", [True, False])
def test_dropout_only_in_training_mode(need_weights):
    attention = MultiHeadAttention(16, 4, dropout=0.5)
    x = torch.randn(2, 5, 16)
    attention.eval()
    torch.testing.assert_close(attention(x, need_weights=need_weights)[0],
                               attention(x, need_weights=need_weights)[0])
    attention.train()
    first, w = attention(x, need_weights=need_weights)
    second, _ = attention(x, need_weights=need_weights)
    assert not torch.allclose(first, second)
    if need_weights:
        assert (w == 0).any()


def test_backward_reaches_every_parameter():
    attention = MultiHeadAttention(16, 4, num_kv_heads=2)
    out, _ = attention(torch.randn(2, 5, 16), torch.randn(2, 3, 16), causal=False)
    out.sum().backward()
    for name, parameter in attention.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_matches_sdpa_on_projected_heads():
    attention = MultiHeadAttention(16, 2)
    x = torch.randn(3, 4, 16)
    q = attention.query_proj(x).view(3, 4, 2, 8).transpose(1, 2)
    k = attention.key_proj(x).view(3, 4, 2, 8).transpose(1, 2)
    v = attention.value_proj(x).view(3, 4, 2, 8).transpose(1, 2)
    heads = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    expected = attention.output_proj(heads.transpose(1, 2).reshape(3, 4, 16))
    torch.testing.assert_close(attention(x, causal=True)[0], expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kwargs,message", [
    (dict(d_model=10, num_heads=3), r"d_model \(10\) must be divisible by num_heads \(3\)"),
    (dict(d_model=16, num_heads=4, num_kv_heads=3), r"num_kv_heads \(3\) must divide num_heads"),
    (dict(d_model=0, num_heads=1), "d_model must be >= 1, got 0"),
    (dict(d_model=16, num_heads=4, dropout=1.5), r"dropout must be in \[0, 1\), got 1.5"),
])
def test_bad_configuration_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiHeadAttention(**kwargs)


def test_wrongly_typed_configuration_is_a_type_error():
    with pytest.raises(TypeError, match="num_heads must be an integer, got float 4.0"):
        MultiHeadAttention(16, 4.0)


def test_bad_inputs_name_the_argument_and_shapes():
    attention = MultiHeadAttention(16, 4, kv_dim=8)
    query = torch.randn(2, 5, 16)
    with pytest.raises(ValueError, match=r"query must have shape \(B, T, E\) with last dim 16, "
                                         r"got \(2, 5, 12\)"):
        attention(torch.randn(2, 5, 12), torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match=r"key must have shape \(B, S, kv_dim\) with last dim 8"):
        attention(query, torch.randn(2, 5, 16))
    with pytest.raises(ValueError, match=r"same batch size B.*\(2, 5, 16\).*\(3, 4, 8\)"):
        attention(query, torch.randn(3, 4, 8))
    with pytest.raises(ValueError, match=r"same number of positions S.*\(2, 4, 8\).*\(2, 6, 8\)"):
        attention(query, torch.randn(2, 4, 8), torch.randn(2, 6, 8))
    with pytest.raises(TypeError, match="query must be a floating-point tensor"):
        attention(torch.ones(2, 5, 16, dtype=torch.long), torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match=r"mask of shape \(2, 7\) does not broadcast to "
                                         r"\(B, H, T, S\) = \(2, 4, 5, 5\)"):
        attention(query, torch.randn(2, 5, 8), mask=torch.ones(2, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"qkv.mask_from_torch\(attn_mask=mask, num_heads=4\)"):
        attention(query, torch.randn(2, 5, 8), mask=torch.ones(8, 5, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be a torch.Tensor, got list"):
        attention(query, torch.randn(2, 5, 8), mask=[[True]])


def test_rotary_attention_refuses_cross_attention_and_bad_positions():
    attention = qkv.MultiHeadAttention(16, 4, rotary=qkv.RotaryPositions(head_dim=4))
    x = torch.randn(2, 5, 16)
    with pytest.raises(ValueError, match="self-attention only"):
        attention(x, torch.randn(2, 3, 16))
    with pytest.raises(ValueError, match=r"positions must have shape \(T,\) = \(5,\) or \(B, T\)"):
        attention(x, positions=torch.arange(4))
    shifted = attention(x, positions=torch.arange(10, 15))[0]           # relative: same output
    torch.testing.assert_close(shifted, attention(x)[0], atol=1e-5, rtol=1e-5)


def test_static_cache_reuses_the_first_keys_and_values():
    attention = qkv.MultiHeadAttention(16, 4, kv_dim=8)
    cache = qkv.attention.cache.AttentionCache(static=True)
    memory = torch.randn(2, 7, 8)
    first, _ = attention(torch.randn(2, 1, 16), memory, cache=cache)
    key = cache.key
    query = torch.randn(2, 1, 16)
    again, _ = attention(query, memory * 0, cache=cache)              # memory ignored once filled
    assert cache.key is key
    torch.testing.assert_close(again, attention(query, memory)[0])
