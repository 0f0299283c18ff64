"""scaled_dot_product_attention against closed forms, PyTorch's SDPA, and its own two paths."""

import math

import pytest
import torch
import torch.nn.functional as F

from qkv import causal_mask, scaled_dot_product_attention


def both_paths(*args, **kwargs):
    """(math output, math weights, fused output) for the same call."""
    math_out, weights = scaled_dot_product_attention(*args, need_weights=True, **kwargs)
    fused_out, none = scaled_dot_product_attention(*args, need_weights=False, **kwargs)
    assert none is None
    return math_out, weights, fused_out


# --- closed forms -------------------------------------------------------------------------------

def test_closed_form_two_keys_with_unit_scale():
    # scores = [0, ln 3] → softmax = [1/4, 3/4] → output = 1/4 · 1 + 3/4 · 0
    query = torch.tensor([[1.0]])
    key = torch.tensor([[0.0], [math.log(3.0)]])
    value = torch.tensor([[1.0], [0.0]])
    out, w, fused = both_paths(query, key, value, scale=1.0)
    torch.testing.assert_close(w, torch.tensor([[0.25, 0.75]]))
    torch.testing.assert_close(out, torch.tensor([[0.25]]))
    torch.testing.assert_close(fused, torch.tensor([[0.25]]))


def test_default_scale_is_one_over_sqrt_head_dim():
    # D = 4: scores = [0, 4], divided by √4 = 2 → softmax([0, 2])
    query = torch.ones(1, 4)
    key = torch.stack([torch.zeros(4), torch.ones(4)])
    value = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    out, w, fused = both_paths(query, key, value)
    e2 = math.exp(2.0)
    expected_w = torch.tensor([[1 / (1 + e2), e2 / (1 + e2)]])
    torch.testing.assert_close(w, expected_w)
    torch.testing.assert_close(out, expected_w @ value)
    torch.testing.assert_close(fused, expected_w @ value)


def test_boolean_mask_true_means_may_attend():
    query, key = torch.zeros(1, 2), torch.zeros(3, 2)  # equal scores everywhere
    value = torch.eye(3)
    mask = torch.tensor([[True, False, True]])
    out, w, fused = both_paths(query, key, value, mask)
    torch.testing.assert_close(w, torch.tensor([[0.5, 0.0, 0.5]]))
    torch.testing.assert_close(fused, torch.tensor([[0.5, 0.0, 0.5]]))


# --- against PyTorch's SDPA ---------------------------------------------------------------------

SHAPES = [  # (leading dims, T, S, D, Dv)
    ((), 5, 5, 8, 8),
    ((3,), 4, 7, 8, 5),
    ((2, 4), 6, 6, 16, 16),
    ((2, 3), 1, 9, 8, 4),
]


@pytest.mark.parametrize("lead,T,S,D,Dv", SHAPES)
@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
def test_both_paths_match_torch_sdpa(lead, T, S, D, Dv, mask_kind):
    query, key, value = torch.randn(*lead, T, D), torch.randn(*lead, S, D), torch.randn(*lead, S, Dv)
    mask = None
    if mask_kind == "bool":
        mask = torch.rand(*lead, T, S) > 0.4
        mask[..., 0] = True  # keep every row non-empty: SDPA's answer is then unambiguous
    elif mask_kind == "float":
        mask = torch.randn(*lead, T, S)
    expected = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    out, w, fused = both_paths(query, key, value, mask)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w @ value, out, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("lead", [(), (2, 3)])
def test_causal_matches_torch_is_causal_for_self_attention(lead):
    x = torch.randn(*lead, 6, 8)
    expected = F.scaled_dot_product_attention(x, x, x, is_causal=True)
    out, w, fused = both_paths(x, x, x, causal=True)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)
    assert torch.all(w.triu(diagonal=1) == 0)


def test_causal_blocks_future_keys():
    x = torch.randn(5, 4)
    _, w = scaled_dot_product_attention(x, x, x, causal=True, need_weights=True)
    future = ~torch.ones(5, 5, dtype=torch.bool).tril()
    assert torch.all(w[future] == 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(5))


def test_causal_with_fewer_queries_aligns_to_the_last_keys():
    # two new queries after three cached keys: query i sits at position 3 + i
    query, key, value = torch.randn(2, 2, 8), torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    allowed = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    expected = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed)
    out, w, fused = both_paths(query, key, value, causal=True)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)
    assert torch.all(w[:, 0, 4] == 0)


@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.float32])
def test_causal_combines_with_mask(mask_dtype):
    query, key, value = torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8)
    padding = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)[:, None, None]
    mask = padding if mask_dtype == torch.bool else torch.zeros(padding.shape).masked_fill(
        ~padding, float("-inf"))
    reference = F.scaled_dot_product_attention(
        query, key, value, attn_mask=padding & causal_mask(6))
    out, w, fused = both_paths(query, key, value, mask, causal=True)
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused, reference, atol=1e-5, rtol=1e-5)
    assert torch.all(w[0, :, :, 4:] == 0)


def test_float_mask_is_added_to_the_scaled_scores():
    query, key, value = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)
    bias = torch.randn(3, 5)
    _, w = scaled_dot_product_attention(query, key, value, bias, need_weights=True)
    expected = torch.softmax(query @ key.T / 2.0 + bias, dim=-1)
    torch.testing.assert_close(w, expected)


def test_custom_scale():
    query, key, value = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    expected = F.scaled_dot_product_attention(query, key, value, scale=0.3)
    out, _, fused = both_paths(query, key, value, scale=0.3)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)


def test_leading_dims_broadcast():
    query = torch.randn(2, 4, 3, 8)
    key, value = torch.randn(1, 4, 5, 8), torch.randn(1, 4, 5, 8)
    expected = F.scaled_dot_product_attention(query, key.expand(2, -1, -1, -1),
                                              value.expand(2, -1, -1, -1))
    out, _, fused = both_paths(query, key, value)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.bfloat16, 2e-2)])
def test_other_dtypes(dtype, tol):
    query, key, value = (torch.randn(2, 5, 8, dtype=dtype) for _ in range(3))
    mask = torch.rand(2, 5, 5) > 0.3
    mask[..., 0] = True
    out, w, fused = both_paths(query, key, value, mask, causal=True)
    assert out.dtype == w.dtype == fused.dtype == dtype
    reference = F.scaled_dot_product_attention(
        query.double(), key.double(), value.double(), attn_mask=mask & causal_mask(5))
    torch.testing.assert_close(out.double(), reference, atol=tol, rtol=tol)
    torch.testing.assert_close(fused.double(), reference, atol=tol, rtol=tol)


# --- rows whose keys are all masked -------------------------------------------------------------

def empty_row_cases():
    bool_mask = torch.ones(2, 4, 5, dtype=torch.bool)
    bool_mask[0, 1] = False
    bool_mask[1, 3] = False
    float_mask = torch.zeros(2, 4, 5).masked_fill(~bool_mask, float("-inf"))
    return {
        "bool": dict(mask=bool_mask),
        "float": dict(mask=float_mask),
        "causal, more queries than keys": dict(causal=True),
        "bool and causal": dict(mask=bool_mask, causal=True),
    }


@pytest.mark.parametrize("case", list(empty_row_cases()))
def test_all_masked_rows_give_zeros_never_nan(case):
    kwargs = empty_row_cases()[case]
    T = 4 if "mask" in kwargs else 7  # causal with T=7 > S=5: the first two queries see nothing
    query = torch.randn(2, T, 8, requires_grad=True)
    key = torch.randn(2, 5, 8, requires_grad=True)
    value = torch.randn(2, 5, 3, requires_grad=True)
    out, w, fused = both_paths(query, key, value, **kwargs)
    if "mask" in kwargs:
        m = kwargs["mask"]
        empty = ~(m if m.dtype == torch.bool else m != float("-inf")).any(-1)
    else:
        empty = torch.tensor([True, True, False, False, False, False, False]).expand(2, -1)
    assert empty.any()
    for tensor in (out, w, fused):
        assert torch.isfinite(tensor).all()
        assert torch.all(tensor[empty] == 0)
    torch.testing.assert_close(out, fused, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w[~empty].sum(-1), torch.ones(int((~empty).sum())))
    (out.sum() + fused.sum()).backward()
    for tensor in (query, key, value):
        assert torch.isfinite(tensor.grad).all()
    assert torch.all(query.grad[empty] == 0)


# --- gradients and dropout ----------------------------------------------------------------------

def test_gradients_of_both_paths_agree():
    inputs = [torch.randn(2, 3, 6, 8, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    mask = torch.rand(2, 1, 6, 6) > 0.3
    grads = []
    for need_weights in (True, False):
        out, _ = scaled_dot_product_attention(*inputs, mask, causal=True, need_weights=need_weights)
        grads.append(torch.autograd.grad(out.pow(2).sum(), inputs))
    for g_math, g_fused in zip(*grads):
        torch.testing.assert_close(g_math, g_fused)


def test_math_path_passes_gradcheck():
    inputs = [torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    mask = torch.tensor([[True, True, False], [True, False, False], [False, False, False]])

    def attention(q, k, v):
        return scaled_dot_product_attention(q, k, v, mask, need_weights=True)[0]

    assert torch.autograd.gradcheck(attention, inputs)


def test_dropout_returns_the_weights_it_applied():
    torch.manual_seed(1)
    query, key, value = torch.randn(2, 6, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    out, w = scaled_dot_product_attention(query, key, value, dropout_p=0.5, need_weights=True)
    _, clean = scaled_dot_product_attention(query, key, value, need_weights=True)
    torch.testing.assert_close(w @ value, out)
    dropped = w == 0
    assert dropped.any() and (~dropped).any()
    torch.testing.assert_close(w[~dropped], clean[~dropped] * 2.0)  # kept weights scaled by 1/(1-p)


def test_fused_path_applies_dropout():
    torch.manual_seed(2)
    query, key, value = torch.randn(3, 6, 8), torch.randn(3, 6, 8), torch.randn(3, 6, 8)
    plain, _ = scaled_dot_product_attention(query, key, value)
    dropped, _ = scaled_dot_product_attention(query, key, value, dropout_p=0.5)
    assert not torch.allclose(plain, dropped)


# --- bad input ----------------------------------------------------------------------------------

def test_head_dim_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"query.*\(2, 3, 8\).*key.*\(2, 5, 7\)"):
        scaled_dot_product_attention(torch.randn(2, 3, 8), torch.randn(2, 5, 7), torch.randn(2, 5, 7))


def test_key_value_length_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"key.*\(5, 8\).*value.*\(4, 8\)"):
        scaled_dot_product_attention(torch.randn(3, 8), torch.randn(5, 8), torch.randn(4, 8))


def test_mask_not_broadcastable_names_both_shapes():
    with pytest.raises(ValueError, match=r"mask of shape \(3, 4\).*\(2, 3, 5\)"):
        scaled_dot_product_attention(torch.randn(2, 3, 8), torch.randn(2, 5, 8),
                                     torch.randn(2, 5, 8), torch.ones(3, 4, dtype=torch.bool))


def test_mask_that_would_grow_the_output_is_rejected():
    with pytest.raises(ValueError, match=r"mask of shape \(4, 3, 5\)"):
        scaled_dot_product_attention(torch.randn(3, 8), torch.randn(5, 8), torch.randn(5, 8),
                                     torch.ones(4, 3, 5, dtype=torch.bool))


def test_leading_dims_that_do_not_broadcast_are_named():
    with pytest.raises(ValueError, match=r"query \(2\).*key \(3\)"):
        scaled_dot_product_attention(torch.randn(2, 3, 8), torch.randn(3, 5, 8), torch.randn(3, 5, 8))


@pytest.mark.parametrize("name", ["query", "key", "value"])
def test_integer_tensors_are_rejected(name):
    tensors = {"query": torch.randn(3, 4), "key": torch.randn(5, 4), "value": torch.randn(5, 4)}
    tensors[name] = tensors[name].long()
    with pytest.raises(TypeError, match=rf"{name} must be a floating-point tensor.*int64"):
        scaled_dot_product_attention(**tensors)


def test_mixed_dtypes_are_rejected():
    with pytest.raises(TypeError, match=r"key must have the same dtype as query \(torch.float32\)"):
        scaled_dot_product_attention(torch.randn(3, 4), torch.randn(5, 4).double(), torch.randn(5, 4))


def test_integer_mask_is_rejected():
    with pytest.raises(TypeError, match=r"mask must be boolean.*int64"):
        scaled_dot_product_attention(torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 4),
                                     torch.ones(3, 5, dtype=torch.long))


def test_zero_head_dim_is_rejected():
    with pytest.raises(ValueError, match=r"query must have a head dim D > 0, got shape \(3, 0\)"):
        scaled_dot_product_attention(torch.randn(3, 0), torch.randn(5, 0), torch.randn(5, 4))


def test_mask_on_another_device_is_rejected():
    with pytest.raises(ValueError, match="mask is on meta but query is on cpu"):
        scaled_dot_product_attention(torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 4),
                                     torch.ones(3, 5, dtype=torch.bool, device="meta"))


def test_float_mask_of_another_float_dtype_is_cast_to_the_query_dtype():
    query, key, value = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)
    bias = torch.randn(3, 5, dtype=torch.float64)
    out, w, fused = both_paths(query, key, value, bias)
    assert out.dtype == w.dtype == fused.dtype == torch.float32
    expected = F.scaled_dot_product_attention(query, key, value, attn_mask=bias.float())
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_math_path_is_at_least_as_accurate_as_the_fused_kernel_in_low_precision(dtype):
    query, key, value = (torch.randn(2, 4, 64, 32) * 3 for _ in range(3))
    mask = torch.rand(2, 1, 64, 64) > 0.2
    exact = F.scaled_dot_product_attention(query.double(), key.double(), value.double(),
                                           attn_mask=mask)
    low = [t.to(dtype) for t in (query, key, value)]
    out, _, fused = both_paths(*low, mask)
    math_error = (out.double() - exact).abs().max()
    fused_error = (fused.double() - exact).abs().max()
    assert math_error <= fused_error * 1.05


def test_non_tensor_and_one_dimensional_inputs_are_rejected():
    with pytest.raises(TypeError, match="query must be a torch.Tensor, got list"):
        scaled_dot_product_attention([[1.0]], torch.randn(5, 4), torch.randn(5, 4))
    with pytest.raises(ValueError, match=r"query must have at least 2 dimensions.*\(4\)"):
        scaled_dot_product_attention(torch.randn(4), torch.randn(5, 4), torch.randn(5, 4))


@pytest.mark.parametrize("kwargs,error", [
    (dict(dropout_p=1.0), ValueError),
    (dict(dropout_p=-0.1), ValueError),
    (dict(dropout_p="0.1"), TypeError),
    (dict(scale="0.5"), TypeError),
    (dict(scale=float("nan")), ValueError),
    (dict(causal="no"), TypeError),
    (dict(need_weights=1), TypeError),
])
def test_bad_options_are_rejected(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        scaled_dot_product_attention(torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 4),
                                     **kwargs)
