"""Mask helpers: shapes that broadcast over heads, the True = may-attend convention, errors."""

import pytest
import torch

from qkv import causal_mask, combine_masks, length_mask, padding_mask, scaled_dot_product_attention


def test_padding_mask_marks_real_tokens_and_broadcasts_over_heads_and_queries():
    ids = torch.tensor([[3, 4, 5, 0], [6, 0, 0, 0]])
    mask = padding_mask(ids, pad_id=0)
    assert mask.shape == (2, 1, 1, 4) and mask.dtype == torch.bool
    assert mask[:, 0, 0].tolist() == [[True, True, True, False], [True, False, False, False]]
    scores_shape = (2, 8, 5, 4)  # (B, H, T, S)
    assert torch.broadcast_shapes(mask.shape, scores_shape) == scores_shape


def test_length_mask_equals_padding_mask_of_the_same_batch():
    lengths = torch.tensor([3, 1, 4])
    ids = torch.tensor([[7, 7, 7, 1], [7, 1, 1, 1], [7, 7, 7, 7]])
    assert torch.equal(length_mask(lengths), padding_mask(ids, pad_id=1))
    assert length_mask(lengths, max_len=6).shape == (3, 1, 1, 6)


def test_padded_keys_get_no_weight():
    ids = torch.tensor([[3, 4, 0, 0]])
    x = torch.randn(1, 2, 4, 8)  # (B, H, S, D)
    _, weights = scaled_dot_product_attention(x, x, x, padding_mask(ids, 0), need_weights=True)
    assert torch.all(weights[..., 2:] == 0)


def test_causal_mask_is_lower_triangular_for_self_attention():
    assert torch.equal(causal_mask(4), torch.ones(4, 4, dtype=torch.bool).tril())


def test_causal_mask_with_cached_keys_aligns_queries_to_the_end():
    assert causal_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]
    assert causal_mask(1, 4).tolist() == [[True, True, True, True]]


def test_combine_masks_is_logical_and_with_broadcasting():
    pad = length_mask(torch.tensor([2, 3]), max_len=3)                   # (2, 1, 1, 3)
    combined = combine_masks(pad, None, causal_mask(3))
    assert combined.shape == (2, 1, 3, 3)
    expected = pad & torch.ones(3, 3, dtype=torch.bool).tril()
    assert torch.equal(combined, expected)
    assert combine_masks(None, None) is None


def test_bad_mask_helper_input_names_the_problem():
    with pytest.raises(TypeError, match="ids must be an integer tensor.*float32"):
        padding_mask(torch.zeros(2, 3), pad_id=0)
    with pytest.raises(ValueError, match=r"ids must have shape \(B, S\), got \(3\)"):
        padding_mask(torch.zeros(3, dtype=torch.long), pad_id=0)
    with pytest.raises(ValueError, match="max_len=2 is shorter than the longest length 3"):
        length_mask(torch.tensor([3, 1]), max_len=2)
    with pytest.raises(ValueError, match="lengths must be >= 0"):
        length_mask(torch.tensor([-1]))
    with pytest.raises(ValueError, match="T must be >= 0, got -1"):
        causal_mask(-1)
    with pytest.raises(TypeError, match="max_len must be an integer, got float 4.5"):
        length_mask(torch.tensor([3]), max_len=4.5)
    with pytest.raises(TypeError, match=r"masks\[1\] has dtype torch.float32"):
        combine_masks(None, torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"do not broadcast together: \(2, 3\), \(4, 3\)"):
        combine_masks(torch.ones(2, 3, dtype=torch.bool), torch.ones(4, 3, dtype=torch.bool))
