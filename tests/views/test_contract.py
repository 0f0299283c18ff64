"""Documents a view cannot render are refused with a message naming what is wrong."""

import pytest

from qkv.views import check_document, render_html
from qkv.views.examples import tiny_document


def test_not_a_dict():
    with pytest.raises(TypeError, match="must be a dict, got list"):
        render_html([])


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("sides"), "needs a 'sides' field"),
    (lambda d: d.update(attentions=[]), "non-empty list"),
    (lambda d: d["attentions"][0].update(kind="self"), "kind must be one of"),
    (lambda d: d["attentions"][0].update(key_side="source"), "key_side 'source' is not a side"),
    (lambda d: d["attentions"][0].pop("weights"), "lacks field"),
    (lambda d: d["attentions"][0]["weights"].pop(), r"\(H, T, S\) = \(2, 4, 4\), got \(1, 4, 4\)"),
])
def test_broken_documents_are_named(change, message):
    document = tiny_document()
    change(document)
    with pytest.raises(ValueError, match=message):
        check_document(document)


def predicted(**changes):
    document = tiny_document()
    document["prediction"] = {"kind": "classification", "labels": ["ham", "spam", "eggs"],
                              "probabilities": [0.2, 0.7, 0.1], "label": "spam",
                              "logits": [0.0, 1.25, -0.69], **changes}
    return document


def test_a_prediction_is_optional_and_checked():
    assert "prediction" not in check_document(tiny_document())
    document = predicted()
    assert check_document(document) is document


@pytest.mark.parametrize("changes, message", [
    ({"kind": "regression"}, r"kind must be one of \('classification',\), got 'regression'"),
    ({"labels": ["ham", "spam"]}, "probabilities must have one number per label, 2, got 3"),
    ({"labels": ["ham", "ham", "eggs"]}, "labels must be distinct"),
    ({"labels": "ham spam eggs"}, "labels must be a list of at least 2 label names"),
    ({"probabilities": [0.2, 0.7, "0.1"]}, "probabilities must be a list of numbers"),
    ({"probabilities": [0.2, 0.7, 0.2]}, "must sum to 1, got a sum of 1.1"),
    ({"probabilities": [-0.2, 1.1, 0.1]}, r"must lie in \[0, 1\]"),
    ({"label": "ham"}, r"most probable label, 'spam' \(0.7\), got 'ham' \(0.2\)"),
    ({"label": "toast"}, "got 'toast', not one of the labels"),
    ({"logits": [0.0, float("nan"), 1.0]}, "logits must be finite"),
])
def test_broken_predictions_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        check_document(predicted(**changes))


def test_prediction_missing_fields_are_named():
    document = predicted()
    del document["prediction"]["label"]
    with pytest.raises(ValueError, match="prediction lacks field"):
        check_document(document)
    with pytest.raises(TypeError, match="'prediction' must be a dict, got list"):
        check_document({**tiny_document(), "prediction": []})
