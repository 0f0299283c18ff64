"""KV-cached decoding: one record per step, aligned by absolute position with a full forward."""

import pytest
import torch

import qkv
from qkv.trace import trace
from tests.trace.trace_models import V, language_model, source_ids, transformer


def assert_aligned(stitched, full):
    """The stitched steps hold the full forward's rows, at the same absolute positions."""
    assert stitched.query_positions.tolist() == full.query_positions.tolist()
    assert stitched.key_positions.tolist() == full.key_positions.tolist()
    torch.testing.assert_close(stitched.weights, full.weights, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(stitched.output, full.output, atol=1e-5, rtol=1e-5)
    assert torch.equal(stitched.mask.expand_as(full.weights), full.mask.expand_as(full.weights))
    allowed = full.mask.expand_as(full.weights)
    torch.testing.assert_close(stitched.scores[allowed], full.scores[allowed], atol=1e-5,
                               rtol=1e-5)


@pytest.mark.parametrize("positions", ["sinusoidal", "rotary"])
def test_language_model_steps_align_with_full_forward(positions):
    model = language_model(positions=positions)
    ids = torch.randint(1, V, (2, 6))
    ids[1, 4:] = 0                                                      # right padding
    with trace(model) as full:
        model(ids)
    cache = qkv.KVCache()
    with trace(model) as steps:
        model(ids[:, :2], cache=cache)                                  # a prompt of 2
        for t in range(2, 6):
            model(ids[:, t:t + 1], cache=cache)
    for name in full.names():
        records = steps.records(name)
        assert [r.call for r in records] == [0, 1, 2, 3, 4]
        assert [r.query_positions.tolist() for r in records] == [[0, 1], [2], [3], [4], [5]]
        assert [r.weights.shape[-1] for r in records] == [2, 3, 4, 5, 6]
        assert steps[name, 2].query_positions.tolist() == [3]
        assert steps[name].query_positions.tolist() == [5]              # the last step
        assert_aligned(steps.stitch(name), full[name])


def test_transformer_decoding_steps_align_self_and_cross_attention():
    model = transformer()
    src = source_ids()
    tgt = torch.randint(1, V, (2, 4))
    with trace(model) as full:
        model(src, tgt)
    memory_mask = model.source_mask(src)
    memory = model.encode(src)
    cache = qkv.KVCache()
    with trace(model, "decoder.*") as steps:
        for t in range(4):
            model.decode(tgt[:, t:t + 1], memory, memory_mask, cache=cache)
    cross = steps.records("decoder.layers.1.cross_attention")
    assert [r.query_positions.tolist() for r in cross] == [[0], [1], [2], [3]]
    assert all(r.key_positions.tolist() == list(range(6)) for r in cross)
    for name in steps.names():
        assert_aligned(steps.stitch(name), full[name])


def test_tracing_each_step_separately_keeps_absolute_positions():
    model = transformer()
    src, tgt = source_ids(), torch.randint(1, V, (2, 3))
    memory, memory_mask, cache = model.encode(src), model.source_mask(src), qkv.KVCache()
    positions = []
    for t in range(3):
        with trace(model, "decoder.layers.0.cross_attention") as step:
            model.decode(tgt[:, t:t + 1], memory, memory_mask, cache=cache)
        positions.append(step["decoder.layers.0.cross_attention"].query_positions.tolist())
    assert positions == [[0], [1], [2]]


def test_tracing_only_a_later_step_gives_its_absolute_position():
    """Steps decoded untraced still count: self- and cross-attention agree on the position."""
    model = transformer()
    src, tgt = source_ids(), torch.randint(1, V, (2, 4))
    memory, memory_mask, cache = model.encode(src), model.source_mask(src), qkv.KVCache()
    for t in range(3):
        model.decode(tgt[:, t:t + 1], memory, memory_mask, cache=cache)
    with trace(model, "decoder.layers.0.*") as step:
        model.decode(tgt[:, 3:4], memory, memory_mask, cache=cache)
    assert step["decoder.layers.0.self_attention"].query_positions.tolist() == [3]
    assert step["decoder.layers.0.cross_attention"].query_positions.tolist() == [3]


def test_query_selection_records_only_the_chosen_steps():
    model = language_model()
    ids = torch.randint(1, V, (1, 5))
    cache = qkv.KVCache()
    with trace(model, queries=[1, 3]) as t:
        for step in range(5):
            model(ids[:, step:step + 1], cache=cache)
    records = t.records("layers.0.self_attention")
    assert [r.call for r in records] == [1, 3]
    stitched = t.stitch("layers.0.self_attention")
    assert stitched.weights.shape == (1, 2, 2, 4)                       # (B, H, 2 rows, S ≤ 4)
    assert stitched.weights[0, :, 0, 2:].abs().max() == 0              # step 1 saw 2 keys
    assert torch.isnan(stitched.scores[0, :, 0, 2:]).all()              # never computed


def test_stitch_of_one_record_is_that_record():
    model = language_model()
    with trace(model) as t:
        model(torch.tensor([[3, 4]]))
    assert t.stitch("layers.0.self_attention") is t["layers.0.self_attention"]
