"""The explorer's API through FastAPI's TestClient: documents, limits, escaping, a classifier's
prediction."""

import pytest
import torch
from fastapi.testclient import TestClient

from qkv.decoding.classify import classify_texts
from qkv.serve import create_app
from qkv.trace import trace
from tests.serve.conftest import LABELS


@pytest.fixture
def client(loaded):
    return TestClient(create_app(loaded, max_tokens=6))


def test_page_is_self_contained(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert 'id="qkv-text"' in response.text and "window.qkvViews" in response.text
    assert "https://" not in response.text and " src=" not in response.text


def test_attention_is_the_models(client, loaded):
    response = client.get("/api/attention", params={"text": "I love my dog", "target": "the cat"})
    assert response.status_code == 200
    document = response.json()
    assert document["sides"] == {"source": ["I", "love", "my", "dog", "<eos>"],
                                 "target": ["<bos>", "the", "cat"]}
    with trace(loaded.model) as t:
        loaded.model(torch.tensor([[4, 5, 6, 7, 2]]), torch.tensor([[1, 8, 9]]))
    for record in document["attentions"]:
        torch.testing.assert_close(torch.tensor(record["weights"]), t[record["name"]].weights[0],
                                   atol=1e-6, rtol=1e-5)


def test_too_many_tokens_is_a_400_naming_the_limit(client):
    response = client.get("/api/attention", params={"text": "I love my dog the cat"})
    assert response.status_code == 400
    assert response.json() == {"error": response.json()["error"], "limit": 6, "tokens": 7}
    assert "more than the limit of 6" in response.json()["error"]


def test_too_many_characters_is_a_422_before_tokenizing(client):
    response = client.get("/api/attention", params={"text": "x" * 121})
    assert response.status_code == 422 and response.json()["limit"] == 120


def test_empty_text_is_a_400(client):
    response = client.get("/api/attention", params={"text": "  "})
    assert response.status_code == 400 and "empty" in response.json()["error"]


def test_script_tokens_travel_as_json_data(client):
    response = client.get("/api/attention",
                          params={"text": "<script>alert(1)</script> </script>", "target": "I"})
    assert response.headers["content-type"] == "application/json"
    assert response.json()["sides"]["source"][:2] == ["<script>alert(1)</script>", "</script>"]


def test_binding_defaults_to_loopback():
    from qkv.cli.main import build_parser

    args = build_parser().parse_args(["serve", "ckpt"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)


@pytest.fixture
def classifier_client(classifier_loaded):
    return TestClient(create_app(classifier_loaded, max_tokens=8))


def test_classifier_attention_carries_the_models_prediction(classifier_client, classifier_loaded):
    model, tokenizer = classifier_loaded.model, classifier_loaded.source_tokenizer
    response = classifier_client.get("/api/attention", params={"text": "the cat"})
    assert response.status_code == 200
    document = response.json()
    assert document["sides"] == {"text": ["<bos>", "the", "cat", "<eos>"]}
    with trace(model) as t:
        model(torch.tensor([[1, 8, 9, 2]]))
    assert [a["name"] for a in document["attentions"]] == t.names()
    for record in document["attentions"]:
        torch.testing.assert_close(torch.tensor(record["weights"]), t[record["name"]].weights[0],
                                   atol=1e-6, rtol=1e-5)
    expected = classify_texts(model, tokenizer, ["the cat"])[0]
    prediction = document["prediction"]
    torch.testing.assert_close(torch.tensor(prediction["probabilities"]), expected,
                               atol=1e-6, rtol=0)
    assert prediction["label"] == LABELS[int(expected.argmax())]


def test_classifier_labels_travel_as_json_data(classifier_client):
    info = classifier_client.get("/api/info").json()
    assert (info["task"], info["labels"]) == ("classification", LABELS)
    response = classifier_client.get("/api/attention", params={"text": "I"})
    assert response.headers["content-type"] == "application/json"
    assert response.json()["prediction"]["labels"][2] == "</script><b>x"
    page = classifier_client.get("/").text
    assert '<small id="qkv-task" data-task="classification">(classification, 3 labels)' in page
    assert "<b>x" not in page                                   # labels come only from the API


def test_translation_info_has_no_labels(client):
    assert "labels" not in client.get("/api/info").json()


def test_a_classification_task_needs_a_classifier(loaded):
    loaded.task = "classification"
    with pytest.raises(ValueError, match="needs a qkv.SequenceClassifier .* got Transformer"):
        create_app(loaded)
