"""The fast paths of qkv.attention.functional give the numbers of the readable math path.

* the in-place math path (no autograd, no dropout: ``_in_place_math_path``) against the
  formula step by step (``_math_path``, what autograd runs), for every kind of mask, causal or
  not, ``T ≠ S``, broadcast leading dims, reduced precision;
* the causal ``weights @ V`` by quarters of the rows, also at sizes where it is used;
* ``need_weights=True`` and ``attention_intermediates`` agree exactly, as documented;
* the fused path drops keys no query may see (long padded inputs) without changing a number;
* each falls back where it does not apply (autograd, dropout).
"""

from __future__ import annotations

import pytest
import torch

import qkv
from qkv import _memory
from qkv.attention import functional
from qkv.attention.functional import attention_intermediates, scaled_dot_product_attention

MASKS = ("none", "bool (B, 1, T, S)", "float (T, S)", "key padding", "row (S,)")


def make_mask(kind: str, T: int, S: int, generator: torch.Generator) -> torch.Tensor | None:
    if kind == "none":
        return None
    if kind.startswith("bool"):
        mask = torch.rand(2, 1, T, S, generator=generator) > 0.3
        mask[0, 0, min(1, T - 1)] = False                              # an all-masked row
        return mask
    if kind.startswith("float"):
        allowed = torch.rand(T, S, generator=generator) > 0.3
        return torch.where(allowed, torch.randn(T, S, generator=generator), float("-inf"))
    if kind == "key padding":
        return qkv.length_mask(torch.tensor([S, max(S - 3, 0)]), max_len=S)   # (B, 1, 1, S)
    return torch.rand(S, generator=generator) > 0.2                    # (S,)


def reference_steps(query, key, value, mask, causal, scale):
    """The formula step by step: the math path as autograd runs it."""
    with torch.enable_grad():
        query = query.clone().requires_grad_()
        steps = attention_intermediates(query, key, value, mask, causal=causal, scale=scale)
    return {name: getattr(steps, name).detach()
            for name in ("scores", "scaled_scores", "weights", "output")}


@pytest.mark.parametrize("by_quarters", [False, True])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("T, S", [(9, 9), (7, 11), (11, 7)])
def test_in_place_math_path_equals_the_formula(monkeypatch, by_quarters, causal, mask_kind, T, S):
    if by_quarters:                                 # causal weights @ V by blocks of rows
        monkeypatch.setattr(functional, "_CAUSAL_PRODUCT_FROM", 1)
    generator = torch.Generator().manual_seed(T * 100 + S)
    query = torch.randn(2, 3, T, 8, generator=generator)
    key, value = torch.randn(2, 3, S, 8, generator=generator), torch.randn(2, 3, S, 5,
                                                                          generator=generator)
    mask = make_mask(mask_kind, T, S, generator)
    expected = reference_steps(query, key, value, mask, causal, 0.3)
    with torch.no_grad():
        steps = attention_intermediates(query, key, value, mask, causal=causal, scale=0.3)
        output, weights = scaled_dot_product_attention(query, key, value, mask, causal=causal,
                                                       scale=0.3, need_weights=True)
    for name, tensor in expected.items():
        torch.testing.assert_close(getattr(steps, name), tensor, atol=1e-6, rtol=1e-5, msg=name)
    assert torch.equal(weights, steps.weights) and torch.equal(output, steps.output)


def test_in_place_path_broadcasts_leading_dims_and_keeps_reduced_precision():
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(1, 4, 6, 8, generator=generator)              # broadcast over B
    key = torch.randn(3, 1, 5, 8, generator=generator)                # broadcast over H
    value = torch.randn(3, 4, 5, 2, generator=generator)
    expected = reference_steps(query, key, value, None, True, 0.5)
    with torch.no_grad():
        output, weights = scaled_dot_product_attention(query, key, value, causal=True, scale=0.5,
                                                       need_weights=True)
        half, half_weights = scaled_dot_product_attention(
            query.bfloat16(), key.bfloat16(), value.bfloat16(), causal=True, scale=0.5,
            need_weights=True)
    assert weights.shape == (3, 4, 6, 5) and output.shape == (3, 4, 6, 2)
    torch.testing.assert_close(weights, expected["weights"])
    torch.testing.assert_close(output, expected["output"])
    assert half.dtype == half_weights.dtype == torch.bfloat16
    torch.testing.assert_close(half_weights.float(), weights, atol=2 ** -7, rtol=2 ** -7)


def test_in_place_path_keeps_nan_in_its_row_and_zeros_all_masked_rows():
    query, key, value = torch.randn(1, 4, 8), torch.randn(1, 6, 8), torch.randn(1, 6, 3)
    query[0, 2, 0] = float("nan")
    mask = torch.ones(1, 4, 6, dtype=torch.bool)
    mask[0, 3] = False                                                 # row 3: no key at all
    with torch.no_grad():
        output, weights = scaled_dot_product_attention(query, key, value, mask, need_weights=True)
    assert torch.isnan(output[0, 2]).all() and torch.isnan(weights[0, 2]).all()
    assert (output[0, 3] == 0).all() and (weights[0, 3] == 0).all()
    assert torch.isfinite(output[0, [0, 1]]).all()


@pytest.mark.parametrize("grad, dropout, applies", [
    (False, 0.0, True), (True, 0.0, False), (False, 0.1, False)])
def test_in_place_path_only_without_autograd_and_dropout(grad, dropout, applies):
    query = torch.randn(2, 3, 4, requires_grad=grad)
    assert functional._in_place_applies(query, query, query, None, dropout) == applies
    with torch.no_grad():                                              # no_grad: no graph
        assert functional._in_place_applies(query, query, query, None, dropout) == (
            dropout == 0.0)


def test_math_path_gradients_flow_with_autograd():
    query = torch.randn(2, 5, 8, requires_grad=True)
    key, value = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    output, weights = scaled_dot_product_attention(query, key, value, causal=True,
                                                   need_weights=True)
    fused, _ = scaled_dot_product_attention(query, key, value, causal=True)
    (grad_math,) = torch.autograd.grad(output.sum(), query)
    (grad_fused,) = torch.autograd.grad(fused.sum(), query)
    torch.testing.assert_close(grad_math, grad_fused)


@pytest.mark.parametrize("causal", [False, True])
def test_fused_path_drops_keys_no_query_sees_without_changing_a_number(causal):
    S = functional._UNSEEN_KEYS_FROM + 40
    generator = torch.Generator().manual_seed(1)
    query = torch.randn(2, 2, 24, 8, generator=generator, requires_grad=True)
    key = torch.randn(2, 2, S, 8, generator=generator, requires_grad=True)
    value = torch.randn(2, 2, S, 4, generator=generator, requires_grad=True)
    mask = qkv.length_mask(torch.tensor([S - 100, 30]), max_len=S)     # last 100 keys: nobody
    fused, _ = scaled_dot_product_attention(query, key, value, mask, causal=causal)
    math, _ = scaled_dot_product_attention(query, key, value, mask, causal=causal,
                                           need_weights=True)
    torch.testing.assert_close(fused, math, atol=1e-5, rtol=1e-5)
    ours = torch.autograd.grad(fused.sum(), (query, key, value))
    theirs = torch.autograd.grad(math.sum(), (query, key, value))
    for mine, expected in zip(ours, theirs):
        torch.testing.assert_close(mine, expected, atol=1e-5, rtol=1e-4)
    assert (ours[1][..., S - 100:, :] == 0).all()                      # keys no query sees
    trimmed_key, trimmed_value, trimmed_mask = functional._without_unseen_keys(
        key, value, mask)
    assert trimmed_key.shape[-2] == trimmed_value.shape[-2] == trimmed_mask.shape[-1] == S - 100


def test_fused_path_zeros_all_masked_rows_without_autograd():
    query, key, value = torch.randn(1, 3, 8), torch.randn(1, 5, 8), torch.randn(1, 5, 2)
    mask = torch.tensor([[True] * 5, [False] * 5, [True, False, False, False, False]])
    with torch.no_grad():
        output, _ = scaled_dot_product_attention(query, key, value, mask)
    assert (output[0, 1] == 0).all()
    torch.testing.assert_close(output[0, 2], value[0, 0])


def test_large_buffers_are_plain_tensors_with_or_without_huge_pages(monkeypatch):
    big = _memory.empty((3, 1024, 1024), dtype=torch.float32, device=torch.device("cpu"))
    assert big.shape == (3, 1024, 1024) and big.is_contiguous()
    big.fill_(1.0)
    assert big.sum().item() == 3 * 1024 * 1024
    monkeypatch.setattr(_memory, "_madvise", lambda: None)             # another OS
    other = _memory.empty((3, 1024, 1024), dtype=torch.float64, device=torch.device("cpu"))
    assert other.dtype == torch.float64 and other.shape == (3, 1024, 1024)


@pytest.mark.parametrize("T, S", [(300, 300), (260, 300), (300, 260)])
def test_causal_product_by_quarters_at_full_size_equals_sdpa(T, S):
    generator = torch.Generator().manual_seed(T + S)
    query = torch.randn(1, 2, T, 16, generator=generator)
    key, value = torch.randn(1, 2, S, 16, generator=generator), torch.randn(1, 2, S, 8,
                                                                           generator=generator)
    expected = reference_steps(query, key, value, None, True, 0.25)
    with torch.no_grad():
        output, weights = scaled_dot_product_attention(query, key, value, causal=True, scale=0.25,
                                                       need_weights=True)
    torch.testing.assert_close(weights, expected["weights"])
    torch.testing.assert_close(output, expected["output"], atol=1e-5, rtol=1e-5)
