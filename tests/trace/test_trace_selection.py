"""Selective recording stores only what was asked: modules, layers, heads, query rows, fields."""

import pytest
import torch

from qkv.trace import RECORD_FIELDS, trace
from tests.trace.trace_models import language_model, source_ids, target_ids, transformer


def full_and_selected(model, run, **selection):
    with trace(model) as full:
        run(model)
    with trace(model, **selection) as selected:
        run(model)
    return full, selected


def run_transformer(model):
    torch.manual_seed(3)
    return model(source_ids(), target_ids())


def test_modules_by_name_and_glob_pattern():
    model = transformer()
    _, t = full_and_selected(model, run_transformer,
                             modules=["encoder.layers.0.self_attention", "*.cross_attention"])
    assert t.names() == ["encoder.layers.0.self_attention", "decoder.layers.0.cross_attention",
                         "decoder.layers.1.cross_attention"]
    _, t = full_and_selected(model, run_transformer, modules="decoder.*")
    assert all(name.startswith("decoder.") for name in t.names()) and len(t) == 4


def test_layers():
    _, t = full_and_selected(transformer(), run_transformer, layers=1)
    assert t.names() == ["encoder.layers.1.self_attention", "decoder.layers.1.self_attention",
                         "decoder.layers.1.cross_attention"]


def test_heads_keep_only_those_heads():
    model = transformer(num_heads=4)
    full, t = full_and_selected(model, run_transformer, heads=[2])
    for name in t.names():
        record, reference = t[name], full[name]
        assert record.heads.tolist() == [2] and record.num_heads == 4
        for field in ("query", "key", "value", "scores", "scaled_scores", "weights",
                      "head_outputs"):
            assert getattr(record, field).shape[1] == 1
            torch.testing.assert_close(getattr(record, field), getattr(reference, field)[:, 2:3])
        torch.testing.assert_close(record.output, reference.output)     # all heads mixed


def test_query_rows_keep_only_those_rows():
    model = transformer()
    full, t = full_and_selected(model, run_transformer, queries=[1, 3])
    for name in t.names():
        record, reference = t[name], full[name]
        assert record.query_positions.tolist() == [1, 3]
        assert record.weights.shape[2] == 2 and record.output.shape[1] == 2
        assert record.key.shape == reference.key.shape                  # every key kept
        for field in ("query", "scores", "mask", "weights", "head_outputs"):
            expected = getattr(reference, field)[:, :, [1, 3]]
            torch.testing.assert_close(getattr(record, field), expected)
        torch.testing.assert_close(record.output, reference.output[:, [1, 3]])


def test_fields_keep_only_those_fields():
    model = language_model()
    _, t = full_and_selected(model, lambda m: m(target_ids()), fields="weights")
    for name in t.names():
        assert t[name].fields() == ["weights"]
        assert t[name].query is None and t[name].output is None
    _, t = full_and_selected(model, lambda m: m(target_ids()), fields=["query", "mask"])
    assert t[t.names()[0]].fields() == ["query", "mask"]


def test_unselected_modules_store_nothing():
    model = transformer()
    _, t = full_and_selected(model, run_transformer, modules="decoder.layers.0.self_attention",
                             heads=0, queries=0, fields="weights")
    assert t.names() == ["decoder.layers.0.self_attention"]
    record = t["decoder.layers.0.self_attention"]
    assert record.weights.shape == (2, 1, 1, 5)
    assert record.fields() == ["weights"]


@pytest.mark.parametrize("selection, error, message", [
    (dict(modules="decoder.layers.9.*"), ValueError, "matches no attention module"),
    (dict(modules=3), TypeError, "names or glob patterns"),
    (dict(layers=[7]), ValueError, "matches no attention module"),
    (dict(heads=[2]), ValueError, "heads must be below num_heads = 2"),
    (dict(heads=[-1]), ValueError, "heads must be ≥ 0"),
    (dict(queries=1.5), TypeError, "queries must be an int or a list of ints"),
    (dict(queries=[True]), TypeError, "queries must hold ints"),
    (dict(fields="attention"), ValueError, "unknown 'attention'"),
])
def test_bad_selections_raise_clear_errors(selection, error, message):
    with pytest.raises(error, match=message):
        trace(transformer(), **selection)


def test_record_fields_are_documented():
    from qkv.trace import AttentionRecord

    for field in (*RECORD_FIELDS, "query_positions", "key_positions", "bias", "heads"):
        assert f"        {field}: " in AttentionRecord.__doc__
