"""The explorer's API through FastAPI's TestClient: documents, limits, escaping."""

import pytest
import torch
from fastapi.testclient import TestClient

from qkv.serve import create_app
from qkv.trace import trace


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
