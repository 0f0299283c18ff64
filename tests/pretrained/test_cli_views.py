"""The glass box on the real model: ``qkv view minilm`` and ``qkv serve minilm`` show the
attention weights that transformers computes for all-MiniLM-L6-v2."""

import pytest
import torch

from qkv.cli._load import load_model
from qkv.cli.main import main

transformers = pytest.importorskip("transformers")
fastapi_testclient = pytest.importorskip("fastapi.testclient")


@pytest.fixture(scope="module")
def reference_attentions(minilm_folder):
    """transformers' attention weights of "I love my dog": 6 layers of (12, T, T)."""
    model = transformers.AutoModel.from_pretrained(str(minilm_folder), attn_implementation="eager")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_folder))
    inputs = tokenizer(["I love my dog"], return_tensors="pt")
    with torch.no_grad():
        attentions = model.eval()(**inputs, output_attentions=True).attentions
    tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    return tokens, [a[0] for a in attentions]


def test_serve_minilm_shows_transformers_weights(minilm, reference_attentions):
    from qkv.serve import create_app

    client = fastapi_testclient.TestClient(create_app(load_model("minilm")))
    response = client.get("/api/attention", params={"text": "I love my dog"})
    assert response.status_code == 200
    document = response.json()
    tokens, expected = reference_attentions
    assert document["sides"]["text"] == tokens == ["[CLS]", "i", "love", "my", "dog", "[SEP]"]
    names = [record["name"] for record in document["attentions"]]
    assert names == [f"layers.{i}.self_attention" for i in range(6)]
    for record, weights in zip(document["attentions"], expected):
        assert (torch.tensor(record["weights"]) - weights).abs().max() < 1e-4


def test_view_minilm_writes_the_page_and_heatmap(tmp_path, minilm, capsys):
    page, grid = tmp_path / "minilm.html", tmp_path / "minilm.png"
    assert main(["view", "minilm", "I love my dog", "-o", str(page), "--png", str(grid)]) == 0
    html = page.read_text(encoding="utf-8")
    assert "[CLS]" in html and "layers.5.self_attention" in html
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(page) in capsys.readouterr().out


def test_commands_that_cannot_run_minilm_say_which_can(minilm):
    for command in (["translate", "minilm", "hi"], ["generate", "minilm", "hi"]):
        with pytest.raises(SystemExit, match="encoder-only model.*qkv embed"):
            main(command)
    with pytest.raises(SystemExit, match="pretrained model.*pass --data"):
        main(["evaluate", "minilm"])
