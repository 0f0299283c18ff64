"""attention_document: a trace as the JSON-able dict the views render."""

import json

import pytest
import torch

import qkv
from qkv.trace import attention_document, document_to_json, trace
from tests.trace.trace_models import V, language_model, transformer

SOURCE = ["ich", "liebe", "meinen", "hund", "<pad>", "<pad>"]
TARGET = ["<s>", "I", "love", "my", "dog"]


@pytest.fixture
def translation():
    model = transformer()
    src = torch.tensor([[3, 4, 5, 6, 0, 0], [7, 8, 9, 10, 11, 12]])
    tgt = torch.tensor([[1, 13, 14, 15, 16], [1, 17, 18, 0, 0]])
    with trace(model) as t:
        model(src, tgt)
    return t


def test_document_follows_the_format(translation):
    doc = attention_document(translation, {"source": SOURCE, "target": TARGET}, title="demo")
    assert doc["version"] == 1 and doc["title"] == "demo"
    assert doc["sides"] == {"source": SOURCE, "target": TARGET}
    entries = {entry["name"]: entry for entry in doc["attentions"]}
    assert list(entries) == translation.names()
    sides = {name: (e["kind"], e["query_side"], e["key_side"]) for name, e in entries.items()}
    assert sides["encoder.layers.0.self_attention"] == ("encoder", "source", "source")
    assert sides["decoder.layers.1.self_attention"] == ("decoder", "target", "target")
    assert sides["decoder.layers.1.cross_attention"] == ("cross", "target", "source")
    cross = entries["decoder.layers.1.cross_attention"]
    H, T, S, D, E = 2, 5, 6, 8, 16
    assert (cross["layer"], cross["num_heads"], cross["head_dim"]) == (1, H, D)
    assert cross["query_positions"] == list(range(T)) and cross["key_positions"] == list(range(S))
    shapes = {"weights": (H, T, S), "query": (H, T, D), "key": (H, S, D), "value": (H, S, D),
              "scores": (H, T, S), "mask": (T, S), "head_outputs": (H, T, D), "output": (T, E)}
    for field, shape in shapes.items():
        assert torch.tensor(cross[field]).shape == shape, field
    assert cross["scale"] == pytest.approx(D ** -0.5, rel=1e-5)
    assert cross["mask"][0] == [1, 1, 1, 1, 0, 0]                      # source padding


def test_document_numbers_are_the_recorded_ones_rounded(translation):
    doc = attention_document(translation, {"source": SOURCE, "target": TARGET})
    record = translation["decoder.layers.0.cross_attention"]
    entry = doc["attentions"][3]
    assert entry["name"] == "decoder.layers.0.cross_attention"
    for field in ("weights", "query", "scores", "head_outputs"):
        expected = getattr(record, field)[0].double()
        torch.testing.assert_close(torch.tensor(entry[field], dtype=torch.float64), expected,
                                   rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(torch.tensor(entry["output"], dtype=torch.float64),
                               record.output[0].double(),
                               rtol=1e-5, atol=1e-9)
    for row in entry["weights"][0]:
        assert all(len(repr(value).lstrip("-0.").replace(".", "").rstrip("0")) <= 6
                   or "e" in repr(value) for value in row)


def test_batch_index_picks_the_sequence(translation):
    doc = attention_document(translation, {"source": SOURCE, "target": TARGET}, batch_index=1)
    record = translation["encoder.layers.0.self_attention"]
    torch.testing.assert_close(torch.tensor(doc["attentions"][0]["weights"], dtype=torch.float64),
                               record.weights[1].double(), rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="batch_index must be in"):
        attention_document(translation, {"source": SOURCE, "target": TARGET}, batch_index=2)


def test_without_detail_only_weights(translation):
    doc = attention_document(translation, {"source": SOURCE, "target": TARGET}, detail=False)
    for entry in doc["attentions"]:
        assert not {"query", "key", "value", "scores", "scale", "mask", "head_outputs",
                    "output"} & set(entry)


def test_one_stack_models_use_the_only_side():
    model = language_model()
    with trace(model) as t:
        model(torch.tensor([[3, 4, 5]]))
    doc = attention_document(t, {"text": ["a", "b", "c"]})
    assert {(e["query_side"], e["key_side"]) for e in doc["attentions"]} == {("text", "text")}
    assert doc["attentions"][0]["mask"] == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]


def test_sides_can_be_overridden(translation):
    tokens = {"de": SOURCE, "en": TARGET}
    doc = attention_document(translation, tokens, sides={
        "encoder": ("de", "de"), "decoder": ("en", "en"), "cross": ("en", "de")})
    assert doc["attentions"][3]["query_side"] == "en"
    with pytest.raises(ValueError, match="reads side 'source'"):
        attention_document(translation, tokens)


def test_token_counts_must_match(translation):
    with pytest.raises(ValueError, match=r"S = 6 keys but tokens\['source'\] has 4 tokens"):
        attention_document(translation, {"source": SOURCE[:4], "target": TARGET})
    with pytest.raises(ValueError, match=r"tokens\['target'\] has 6 tokens"):
        attention_document(translation, {"source": SOURCE, "target": TARGET + ["x"]})
    model = transformer()
    with trace(model, "*.cross_attention") as cross_only:
        model(torch.randint(1, V, (1, 6)), torch.randint(1, V, (1, 5)))
    with pytest.raises(ValueError, match=r"T = 5 queries \(positions 0…4\) but tokens"):
        attention_document(cross_only, {"source": SOURCE, "target": TARGET + ["x"]})
    with pytest.raises(TypeError, match="list of token strings"):
        attention_document(translation, {"source": "ich liebe", "target": TARGET})
    with pytest.raises(TypeError, match="must hold strings"):
        attention_document(translation, {"source": [1, 2, 3, 4, 5, 6], "target": TARGET})
    with pytest.raises(TypeError, match="qkv.trace.Trace"):
        attention_document({}, {"text": []})


def test_query_selection_needs_tokens_for_the_chosen_rows_only():
    model = language_model()
    with trace(model, queries=[2]) as t:
        model(torch.tensor([[3, 4, 5, 6]]))
    doc = attention_document(t, {"text": ["a", "b", "c", "d"]})
    assert doc["attentions"][0]["query_positions"] == [2]
    assert torch.tensor(doc["attentions"][0]["weights"]).shape == (2, 1, 4)


def test_json_is_strict_and_safe_to_embed():
    model = language_model()
    cache = qkv.KVCache()
    with trace(model, queries=[0, 2]) as t:                             # unseen keys: NaN scores
        for step in range(3):
            model(torch.randint(1, V, (1, 1)), cache=cache)
    doc = attention_document(t, {"text": ["</script><b>", "&", "x"]})
    assert doc["attentions"][0]["scores"][0][0] == [doc["attentions"][0]["scores"][0][0][0],
                                                    None, None]
    text = document_to_json(doc)
    assert "<" not in text and ">" not in text and "NaN" not in text
    assert json.loads(text) == doc


def test_an_empty_trace_is_an_error():
    with pytest.raises(ValueError, match="holds no records"):
        attention_document(trace(language_model()), {"text": []})


def test_repeated_full_forwards_show_the_last_call():
    model = language_model()
    with trace(model) as t:
        model(torch.tensor([[3, 4, 5]]))
        model(torch.tensor([[6, 7, 8]]))
    doc = attention_document(t, {"text": ["a", "b", "c"]}, detail=False)
    expected = t["layers.1.self_attention"].weights[0].double()
    torch.testing.assert_close(torch.tensor(doc["attentions"][1]["weights"], dtype=torch.float64),
                               expected, rtol=1e-5, atol=1e-9)
