"""Properties of attention that hold for every shape, mask and dtype (hypothesis)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qkv import scaled_dot_product_attention

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


@st.composite
def attention_inputs(draw):
    """query (..., T, D), key (..., S, D), value (..., S, Dv), a mask for (..., T, S), causal.

    Leading dims of key/value may be 1 where the query's are not (they broadcast); T and S may be
    0; the mask is boolean or floating (random biases with -inf where masked).
    """
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    kv_lead = tuple(draw(st.sampled_from([n, 1])) for n in lead)
    T, S = draw(st.integers(0, 6)), draw(st.integers(0, 6))
    D, Dv = draw(st.integers(1, 8)), draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=dtype)

    mask_shape = draw(st.sampled_from([(*lead, T, S), (T, S), (S,)]))
    density = draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))
    mask = torch.rand(mask_shape, generator=generator) < density
    if draw(st.booleans()):  # additive float mask: -inf where masked, a random bias elsewhere
        mask = randn(*mask_shape).masked_fill(~mask, float("-inf"))
    causal = draw(st.booleans())
    return randn(*lead, T, D), randn(*kv_lead, S, D), randn(*kv_lead, S, Dv), mask, causal


PROPERTY = settings(max_examples=150, deadline=None)


def attend(query, key, value, mask, causal, need_weights):
    return scaled_dot_product_attention(
        query, key, value, mask, causal=causal, need_weights=need_weights
    )


def effective_mask(query, key, mask, causal):
    """What may attend, (..., T, S), computed independently of qkv."""
    T, S = query.shape[-2], key.shape[-2]
    allowed = mask if mask.dtype == torch.bool else mask != float("-inf")
    allowed = allowed.expand(*query.shape[:-2], T, S)
    if causal:
        query_position = torch.arange(T)[:, None] + (S - T)
        allowed = allowed & (torch.arange(S)[None, :] <= query_position)
    return allowed


@PROPERTY
@given(attention_inputs())
def test_rows_sum_to_one_or_are_all_zero(inputs):
    query, key, value, mask, causal = inputs
    _, weights = attend(query, key, value, mask, causal, need_weights=True)
    row_sums = weights.sum(-1)
    has_key = effective_mask(query, key, mask, causal).any(-1)
    tol = TOLERANCE[query.dtype]
    torch.testing.assert_close(row_sums[has_key], torch.ones_like(row_sums[has_key]),
                               atol=tol, rtol=tol)
    assert torch.all(weights[~has_key] == 0)


@PROPERTY
@given(attention_inputs())
def test_masked_keys_get_exactly_zero_weight(inputs):
    query, key, value, mask, causal = inputs
    _, weights = attend(query, key, value, mask, causal, need_weights=True)
    allowed = effective_mask(query, key, mask, causal)
    assert torch.all(weights[~allowed] == 0)
    assert torch.all(weights >= 0)


@PROPERTY
@given(attention_inputs(), st.data())
def test_permuting_keys_and_values_together_leaves_output_unchanged(inputs, data):
    query, key, value, mask, causal = inputs
    if causal:  # causality ties keys to positions; permutation invariance is for unordered keys
        causal = False
    S = key.shape[-2]
    permutation = torch.tensor(data.draw(st.permutations(range(S))), dtype=torch.long)
    for need_weights in (True, False):
        out, _ = attend(query, key, value, mask, causal, need_weights)
        permuted, _ = attend(query, key[..., permutation, :], value[..., permutation, :],
                             mask[..., permutation], causal, need_weights)
        tol = TOLERANCE[query.dtype]
        torch.testing.assert_close(permuted, out, atol=tol, rtol=tol)


@PROPERTY
@given(attention_inputs())
def test_math_and_fused_paths_agree(inputs):
    query, key, value, mask, causal = inputs
    math_out, weights = attend(query, key, value, mask, causal, need_weights=True)
    fused_out, _ = attend(query, key, value, mask, causal, need_weights=False)
    tol = TOLERANCE[query.dtype]
    torch.testing.assert_close(fused_out, math_out, atol=tol, rtol=tol)
    torch.testing.assert_close(weights @ value, math_out, atol=tol, rtol=tol)
    assert torch.isfinite(fused_out).all()


@pytest.mark.parametrize("T,S", [(1, 1), (3, 1), (1, 4)])
def test_degenerate_lengths(T, S):
    query, key, value = torch.randn(T, 2), torch.randn(S, 2), torch.randn(S, 3)
    out, weights = scaled_dot_product_attention(query, key, value, need_weights=True)
    assert out.shape == (T, 3) and weights.shape == (T, S)
    if S == 1:
        torch.testing.assert_close(out, value.expand(T, 3))
