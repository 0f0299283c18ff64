"""A trace is faithful: same outputs as untraced, and the records recompute one another."""

import io

import pytest
import torch
from einops import rearrange

import qkv
from qkv.trace import AttentionRecord, trace


def replay(model, run):
    """Run twice from the same random state: untraced, then traced."""
    torch.manual_seed(1)
    plain = run(model)
    torch.manual_seed(1)
    with trace(model) as t:
        traced = run(model)
    return plain, traced, t


def modules_by_name(model):
    return dict(model.named_modules())


def test_traced_forward_equals_untraced(family):
    model, run = family
    plain, traced, t = replay(model, run)
    torch.testing.assert_close(traced, plain, atol=1e-6, rtol=1e-6)
    assert len(t) == sum(isinstance(m, qkv.MultiHeadAttention) for m in model.modules())


def test_weights_times_values_merged_through_output_proj_give_output(family):
    model, run = family
    _, _, t = replay(model, run)
    modules = modules_by_name(model)
    for name in t.names():
        record = t[name]
        heads = record.weights @ record.value                           # (B, H, T, D)
        torch.testing.assert_close(heads, record.head_outputs, atol=1e-6, rtol=1e-5)
        concat = rearrange(heads, "b h t d -> b t (h d)")               # (B, T, E)
        torch.testing.assert_close(concat, record.concat, atol=1e-6, rtol=1e-5)
        output = modules[name].output_proj(concat)                      # (B, T, E)
        torch.testing.assert_close(output, record.output, atol=1e-6, rtol=1e-5)


def test_softmax_of_masked_scaled_scores_gives_weights(family):
    model, run = family
    _, _, t = replay(model, run)
    for name in t.names():
        record = t[name]
        D = record.query.shape[-1]
        assert record.scale == pytest.approx(D ** -0.5)
        torch.testing.assert_close(record.scores, record.query @ record.key.transpose(-2, -1))
        torch.testing.assert_close(record.scaled_scores, record.scores * record.scale)
        expected = record.logits().softmax(-1).nan_to_num(0.0)          # all-masked rows → 0
        torch.testing.assert_close(record.weights, expected, atol=1e-6, rtol=1e-5)
        assert record.weights[~record.mask.expand_as(record.weights)].abs().max() == 0


def test_mask_combines_padding_and_causality():
    from tests.trace.trace_models import source_ids, target_ids, transformer

    model = transformer()
    src, tgt = source_ids(), target_ids()
    with trace(model) as t:
        model(src, tgt)
    cross = t["decoder.layers.0.cross_attention"].mask                  # (B, 1, T, S)
    assert cross.shape == (2, 1, 5, 6) and cross.dtype == torch.bool
    assert torch.equal(cross[:, 0], (src != 0)[:, None, :].expand(2, 5, 6))
    self_mask = t["decoder.layers.0.self_attention"].mask               # (B, 1, T, T)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    assert torch.equal(self_mask[:, 0], causal & (tgt != 0)[:, None, :])
    encoder = t["encoder.layers.1.self_attention"]
    assert encoder.kind == "encoder" and encoder.mask.shape == (2, 1, 6, 6)
    assert t["decoder.layers.1.self_attention"].kind == "decoder"
    assert t["decoder.layers.1.cross_attention"].kind == "cross"


def test_all_masked_rows_record_zero_weights_and_output():
    attention = qkv.MultiHeadAttention(d_model=8, num_heads=2)
    mask = torch.tensor([[True, True, False], [False, False, False]])   # (T, S), row 1 empty
    with trace(attention) as t:
        attention(torch.randn(1, 2, 8), torch.randn(1, 3, 8), mask=mask)
    record = t[""]
    assert not record.mask[0, 0, 1].any()
    assert record.weights[0, :, 1].abs().max() == 0
    assert record.head_outputs[0, :, 1].abs().max() == 0
    assert torch.isfinite(record.weights).all()


def test_names_are_stable():
    from tests.trace.trace_models import encoder_model, language_model, transformer

    with trace(model := transformer()) as t:
        model(torch.tensor([[3, 4]]), torch.tensor([[1, 5, 6]]))
    assert t.names() == [
        "encoder.layers.0.self_attention", "encoder.layers.1.self_attention",
        "decoder.layers.0.self_attention", "decoder.layers.0.cross_attention",
        "decoder.layers.1.self_attention", "decoder.layers.1.cross_attention",
    ]
    assert [t[name].layer for name in t.names()] == [0, 1, 0, 0, 1, 1]
    for make in (language_model, encoder_model):
        with trace(model := make(num_layers=3)) as t:
            model(torch.tensor([[3, 4]]))
        assert t.names() == [f"layers.{i}.self_attention" for i in range(3)]
    attention = qkv.MultiHeadAttention(d_model=8, num_heads=2)
    with trace(attention) as t:
        attention(torch.randn(1, 3, 8))
    assert t.names() == [""] and t[""].layer is None


def test_grouped_query_keys_and_values_are_recorded_per_query_head():
    attention = qkv.MultiHeadAttention(d_model=16, num_heads=4, num_kv_heads=2)
    x = torch.randn(2, 5, 16)
    with trace(attention) as t:
        output, _ = attention(x)
    record = t[""]
    assert record.key.shape == record.value.shape == (2, 4, 5, 4)       # (B, H, S, D)
    assert torch.equal(record.key[:, 0], record.key[:, 1])              # heads 0, 1 share kv 0
    torch.testing.assert_close(output, record.output)


def test_queries_and_keys_are_recorded_after_rotation():
    from tests.trace.trace_models import language_model

    model = language_model(positions="rotary", num_layers=1)
    ids = torch.tensor([[3, 4, 5, 6]])
    with trace(model) as t:
        model(ids)
    attention = model.layers[0].self_attention
    x = model.embedding(ids, torch.arange(4))                           # post-norm: the input
    q = rearrange(attention.query_proj(x), "b t (h d) -> b h t d", h=2)
    expected = attention.rotary.rotate(q, torch.arange(4))
    torch.testing.assert_close(t["layers.0.self_attention"].query, expected)


def test_records_are_plain_detached_copies_that_save(family):
    model, run = family
    model.train()                                                       # grads on, dropout 0
    with trace(model) as t:
        run(model)
    record = t[t.names()[0]]
    assert isinstance(record, AttentionRecord)
    for field in record.fields():
        assert not getattr(record, field).requires_grad
    buffer = io.BytesIO()
    torch.save({name: t[name] for name in t.names()}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    torch.testing.assert_close(loaded[t.names()[0]].weights, record.weights)
    assert record.to("cpu").weights.device.type == "cpu"


def test_traced_training_step_gives_the_same_gradients(family):
    model, run = family
    model.train()

    def gradients(traced):
        model.zero_grad()
        torch.manual_seed(2)
        if traced:
            with trace(model):
                loss = run(model).float().pow(2).mean()
        else:
            loss = run(model).float().pow(2).mean()
        loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()
                if p.grad is not None}

    plain, traced = gradients(False), gradients(True)
    assert plain.keys() == traced.keys() and plain
    for name in plain:
        torch.testing.assert_close(traced[name], plain[name], atol=1e-5, rtol=1e-4, msg=name)


def test_untraced_modules_take_the_fused_path(monkeypatch):
    from qkv.attention import multi_head
    from tests.trace.trace_models import transformer

    calls = []
    original = multi_head.attention_intermediates
    monkeypatch.setattr(multi_head, "attention_intermediates",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    model = transformer()
    src, tgt = torch.tensor([[3, 4]]), torch.tensor([[1, 5]])
    model(src, tgt)
    assert calls == []                                                  # no trace: fused only
    with trace(model, "decoder.layers.1.cross_attention"):
        model(src, tgt)
    assert len(calls) == 1                                              # only the traced one
    model(src, tgt)
    assert len(calls) == 1                                              # off again after exit
    assert all("recorder" not in m.__dict__ for m in model.modules())


def test_nested_traces_both_record():
    from tests.trace.trace_models import language_model

    model = language_model()
    with trace(model) as outer:
        with trace(model, layers=1) as inner:
            model(torch.tensor([[3, 4]]))
        model(torch.tensor([[5]]))
    assert inner.names() == ["layers.1.self_attention"]
    assert len(outer.records("layers.1.self_attention")) == 2
    assert all("recorder" not in m.__dict__ for m in model.modules())


def test_need_weights_returns_the_recorded_weights():
    attention = qkv.MultiHeadAttention(d_model=8, num_heads=2)
    with trace(attention) as t:
        _, weights = attention(torch.randn(1, 3, 8), need_weights=True)
    torch.testing.assert_close(weights, t[""].weights)


def test_bad_arguments_raise_clear_errors():
    from tests.trace.trace_models import language_model

    model = language_model()
    with pytest.raises(TypeError, match="torch.nn.Module"):
        trace("not a model")
    with pytest.raises(ValueError, match="contains no qkv.MultiHeadAttention"):
        trace(torch.nn.Linear(2, 2))
    with pytest.raises(KeyError, match="layers.0.cross_attention"):
        trace(model)["layers.0.cross_attention"]
