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
    ({"kind": "regression"}, r"kind must be one of \('classification', 'translation', "
                             r"'next_token'\), got 'regression'"),
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


def test_translation_and_next_token_predictions_are_checked():
    translated = {**tiny_document(), "prediction": {"kind": "translation", "text": "我爱我的狗",
                                                    "greedy": True}}
    assert check_document(translated) is translated
    following = {**tiny_document(), "prediction": {
        "kind": "next_token", "tokens": ["dog", "cat", "</script>"], "ids": [7, 9, 11],
        "probabilities": [0.5, 0.25, 0.25]}}
    assert check_document(following) is following


NEXT = {"kind": "next_token", "tokens": ["dog", "cat"], "probabilities": [0.5, 0.25]}


@pytest.mark.parametrize("prediction, message", [
    ({"kind": "translation"}, "lacks field.*a 'translation' prediction needs text"),
    ({"kind": "translation", "text": ["I"]}, "a translation's text must be a str, got list"),
    ({"kind": "translation", "text": "I", "greedy": "yes"}, "greedy must be true or false"),
    ({"kind": "next_token", "tokens": ["dog"]}, "needs tokens, probabilities"),
    ({**NEXT, "tokens": []}, "tokens must be a non-empty list of token strings"),
    ({**NEXT, "probabilities": [0.5]}, "one number per token, 2, got 1"),
    ({**NEXT, "probabilities": [0.25, 0.5]}, "most probable first, got \\[0.25, 0.5\\]"),
    ({**NEXT, "probabilities": [0.75, 0.5]}, "sum to at most 1, got a sum of 1.25"),
    ({**NEXT, "probabilities": [1.5, -0.5]}, r"must lie in \[0, 1\]"),
    ({**NEXT, "ids": [3, 3]}, "ids must be 2 distinct token ids"),
    ({**NEXT, "ids": [3]}, "ids must be 2 distinct token ids"),
    ({"tokens": ["dog"]}, "prediction lacks field.*kind"),
])
def test_broken_translation_and_next_token_predictions_are_named(prediction, message):
    with pytest.raises(ValueError, match=message):
        check_document({**tiny_document(), "prediction": prediction})
