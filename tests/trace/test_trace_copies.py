"""A trace copies what it must and no more, and its records stay independent.

Without autograd the outermost trace keeps a call's scores and scaled scores as they come (no
one else holds them); everything the caller or another trace can reach is copied. These tests
pin that the records are still independent tensors with the right numbers.
"""

from __future__ import annotations

import torch

import qkv
from qkv.trace import trace
from qkv.trace.document import _floats
from tests.trace.trace_models import encoder_model, language_model


def storage(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage().data_ptr()


def test_inference_records_equal_autograd_records():
    model = encoder_model()
    ids = torch.tensor([[3, 4, 5, 6, 0]])
    with trace(model) as with_grad:
        model(ids)
    with torch.inference_mode(), trace(model) as without:
        model(ids)
    for name in with_grad.names():
        for field in with_grad[name].fields():
            torch.testing.assert_close(getattr(without[name], field),
                                       getattr(with_grad[name], field), msg=f"{name}.{field}")


def test_returned_weights_are_not_the_recorded_ones():
    attention = qkv.MultiHeadAttention(d_model=8, num_heads=2)
    with torch.no_grad(), trace(attention) as recorded:
        _, weights = attention(torch.randn(1, 3, 8), need_weights=True)
    record = recorded[""]
    assert storage(weights) != storage(record.weights)
    weights.zero_()                                                     # the caller's to change
    assert record.weights.sum() > 0


def test_nested_traces_share_no_tensor():
    model = language_model()
    with torch.inference_mode(), trace(model) as outer, trace(model) as inner:
        model(torch.tensor([[3, 4, 5]]))
    for name in inner.names():
        for field in inner[name].fields():
            if field != "mask":                                         # bools: copied anyway
                assert storage(getattr(inner[name], field)) != storage(
                    getattr(outer[name], field)), f"{name}.{field}"


def test_fields_of_one_record_share_no_memory():
    model = encoder_model()
    with torch.inference_mode(), trace(model) as recorded:
        model(torch.tensor([[3, 4, 5, 6]]))
    record = recorded[recorded.names()[0]]
    pointers = [storage(getattr(record, field)) for field in record.fields()]
    assert len(set(pointers)) == len(pointers)


def test_changing_a_record_inside_a_training_step_does_not_break_backward():
    model = language_model().train()
    with trace(model) as recorded:
        loss = model(torch.tensor([[3, 4, 5]])).square().mean()
    for name in recorded.names():
        for field in ("scores", "scaled_scores", "weights"):
            getattr(recorded[name], field).add_(1.0)
    loss.backward()                                                     # no in-place error
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_selected_heads_and_rows_are_the_full_record_cut():
    model = encoder_model()
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    with torch.inference_mode(), trace(model) as full:
        model(ids)
    with torch.inference_mode(), trace(model, heads=[1], queries=[0, 3]) as cut:
        model(ids)
    for name in full.names():
        torch.testing.assert_close(cut[name].scores, full[name].scores[:, [1]][:, :, [0, 3]])
        torch.testing.assert_close(cut[name].weights, full[name].weights[:, [1]][:, :, [0, 3]])


def test_document_floats_keep_six_significant_digits_at_every_magnitude():
    values = torch.tensor([1.23456789e-30, -9.87654321e10, 0.000123456789, 0.0, 1.0, 123456.789,
                           float("nan"), float("inf")])
    assert _floats(values) == [1.23457e-30, -98765400000.0, 0.000123457, 0.0, 1.0, 123457.0, None,
                               None]
