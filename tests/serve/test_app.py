"""The explorer's API through FastAPI's TestClient: documents, limits, escaping, a classifier's
prediction."""

import base64
import json
import re

import pytest
import torch
from fastapi.testclient import TestClient

from qkv.decoding import greedy
from qkv.decoding.classify import classify_texts
from qkv.serve import create_app
from qkv.serve.page import static
from qkv.trace import trace
from qkv.views.html import asset
from tests.serve.conftest import LABELS


@pytest.fixture
def client(loaded):
    return TestClient(create_app(loaded, max_tokens=6))


def test_page_is_self_contained(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert 'id="qkv-text"' in response.text and "window.qkvViews" in response.text
    assert "https://" not in response.text and " src=" not in response.text
    assert '<link rel="icon" type="image/svg+xml" href="data:image/svg+xml;base64,' in response.text
    assert "{{" not in response.text                              # every slot filled


def test_page_is_the_shipped_files_with_the_models_config(client):
    text = client.get("/").text
    for name in ("explorer.js", "explorer.css"):
        assert static(name) in text
    assert asset("qkv_views.js") in text and asset("qkv_views.css") in text
    config = re.search(r'<script type="application/json" id="qkv-config">(.*?)</script>',
                       text).group(1)
    assert json.loads(config) == {"task": "translation", "views": ["head", "model", "neuron",
                                  "step"], "max_tokens": 6, "max_chars": 120,
                                  "default_text": "I love my dog"}


def test_favicon_is_the_shipped_svg(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.headers["content-type"] == "image/svg+xml"
    assert response.text == static("favicon.svg") and response.text.startswith("<svg")
    icon = re.search(r'rel="icon" type="image/svg\+xml" href="data:image/svg\+xml;base64,([^"]+)"',
                     client.get("/").text).group(1)
    assert base64.b64decode(icon).decode("utf-8") == static("favicon.svg")


def test_default_text_is_the_tasks_or_given(loaded):
    info = TestClient(create_app(loaded, default_text="the cat")).get("/api/info").json()
    assert info["default_text"] == "the cat"
    assert TestClient(create_app(loaded)).get("/api/info").json()["default_text"] == \
        "I love my dog"
    with pytest.raises(ValueError, match="default_text must be a non-empty sentence, got ' '"):
        create_app(loaded, default_text=" ")


def test_attention_is_the_models(client, loaded):
    response = client.get("/api/attention", params={"text": "I love my dog", "target": "the cat"})
    assert response.status_code == 200
    document = response.json()
    assert document["sides"] == {"source": ["I", "love", "my", "dog", "<eos>"],
                                 "target": ["<bos>", "the", "cat"]}
    assert document["prediction"] == {"kind": "translation", "text": "the cat", "greedy": False}
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


def test_limits_are_stated_and_checked(loaded):
    app = create_app(loaded, max_tokens=6, max_wait=2)
    assert app.state.limits == {"max_tokens": 6, "max_chars": 120, "max_query_bytes": 3904,
                                "max_wait": 2}                    # 2 · 12 · 120 + 1024
    for wrong in (0, -1.0, True, "10"):
        with pytest.raises(ValueError, match=f"max_wait must be a positive number of seconds, "
                                             f"got {wrong!r}"):
            create_app(loaded, max_wait=wrong)


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


def test_translation_carries_the_greedy_translation(client, loaded):
    document = client.get("/api/attention", params={"text": "I love my dog"}).json()
    tokenizer = loaded.source_tokenizer
    output = greedy(loaded.model, torch.tensor([[4, 5, 6, 7, 2]]), bos_id=1, eos_id=2,
                    max_len=5)[0]                                 # the limit, 6, less <bos>
    assert document["prediction"] == {"kind": "translation", "text": tokenizer.decode(output),
                                      "greedy": True}
    assert document["sides"]["target"] == tokenizer.tokens([1, *output])


def test_language_model_carries_its_next_tokens(language_model_loaded):
    client = TestClient(create_app(language_model_loaded, max_tokens=8))
    assert client.get("/api/info").json()["default_text"] == "I love my"
    document = client.get("/api/attention", params={"text": "I love my"}).json()
    logits = language_model_loaded.model(torch.tensor([[1, 4, 5, 6]]))[0, -1]   # a direct call
    expected = torch.softmax(logits, dim=-1).topk(10)
    prediction = document["prediction"]
    assert prediction["ids"] == expected.indices.tolist()
    assert prediction["tokens"] == language_model_loaded.source_tokenizer.tokens(prediction["ids"])
    torch.testing.assert_close(torch.tensor(prediction["probabilities"]), expected.values,
                               atol=1e-6, rtol=0)
