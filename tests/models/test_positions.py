"""Positional encodings: the paper's formula, learned tables, and rotary's relative property."""

import math

import pytest
import torch

from qkv import LearnedPositions, RotaryPositions, SinusoidalPositions
from qkv.models.positions import sinusoidal_table


@pytest.mark.parametrize("d_model", [6, 7, 16])
def test_sinusoidal_table_is_the_papers_formula(d_model):
    table = sinusoidal_table(40, d_model)
    for pos in (0, 1, 9, 39):
        for i in range(d_model):
            angle = pos / 10000 ** ((i - i % 2) / d_model)              # 2i for sin and cos dims
            expected = math.sin(angle) if i % 2 == 0 else math.cos(angle)
            assert table[pos, i].item() == pytest.approx(expected, abs=1e-6)


def test_sinusoidal_encoding_is_added_to_the_input():
    positions = SinusoidalPositions(d_model=8, max_len=10)
    x = torch.randn(2, 4, 8)
    out = positions.encode(x, torch.arange(3, 7))
    torch.testing.assert_close(out - x, sinusoidal_table(10, 8)[3:7].expand(2, 4, 8))
    assert positions.rotate(x, torch.arange(4)) is x
    assert not list(positions.state_dict())                              # a function, not state


def test_positions_past_max_len_raise_a_clear_error():
    positions = SinusoidalPositions(d_model=8, max_len=10)
    with pytest.raises(ValueError, match=r"\[0, 10\), got values from 5 to 11.*max_len"):
        positions.encode(torch.zeros(1, 7, 8), torch.arange(5, 12))
    with pytest.raises(TypeError, match="integer"):
        positions.encode(torch.zeros(1, 2, 8), torch.tensor([0.0, 1.0]))


def test_learned_positions_are_a_trained_table_per_batch_row():
    positions = LearnedPositions(d_model=8, max_len=10)
    x = torch.zeros(2, 3, 8)
    per_row = torch.tensor([[0, 1, 2], [4, 5, 6]])                       # (B, T)
    out = positions.encode(x, per_row)
    torch.testing.assert_close(out[1], positions.embedding.weight[4:7])
    out.sum().backward()
    assert positions.embedding.weight.grad[:7].abs().sum() > 0


def test_rotary_scores_depend_on_relative_position_only():
    rotary = RotaryPositions(head_dim=8)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(m, n):
        return (rotary.rotate(q, torch.tensor([m])) * rotary.rotate(k, torch.tensor([n]))).sum()

    torch.testing.assert_close(score(3, 1), score(12, 10), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(score(0, 0), (q * k).sum(), atol=1e-6, rtol=1e-6)
    assert not torch.allclose(score(3, 1), score(3, 2))


def test_rotary_is_a_rotation_of_each_pair_j_and_j_plus_half():
    rotary = RotaryPositions(head_dim=4, base=100.0)
    x = torch.randn(2, 3, 5, 4)
    positions = torch.arange(5)
    out = rotary.rotate(x, positions)
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))        # lengths kept
    angle = 2 * 100.0 ** (-2 * 1 / 4)                                  # pair j=1 at position 2
    c, s = math.cos(angle), math.sin(angle)
    a, b = x[..., 2, 1], x[..., 2, 3]
    torch.testing.assert_close(out[..., 2, 1], a * c - b * s)
    torch.testing.assert_close(out[..., 2, 3], b * c + a * s)


def test_rotary_needs_an_even_head_dim():
    with pytest.raises(ValueError, match="even head_dim, got 5"):
        RotaryPositions(head_dim=5)


def test_rotary_keeps_float32_frequencies_in_a_bfloat16_model():
    model = torch.nn.Sequential(RotaryPositions(head_dim=64)).to(torch.bfloat16)
    x = torch.randn(1, 1, 4096, 64)
    positions = torch.arange(4096)
    exact = RotaryPositions(head_dim=64).rotate(x, positions)
    rounded = model[0].rotate(x.to(torch.bfloat16), positions).float()
    assert (rounded - exact).abs().max() < 0.05                         # bf16 rounding only
