"""``qkv view``: the HTML page and the heatmap grids of a loaded model (a classifier's: through
the real checkpoint loader, with its prediction)."""

import json
import re
import types

import pytest
import torch

import qkv
from qkv.cli.main import main
from qkv.decoding.classify import classify_texts
from qkv.tokenizers import WordTokenizer


@pytest.fixture
def loaded(monkeypatch, translation_model, tokenizer):
    result = types.SimpleNamespace(model=translation_model, task="translation",
                                   source_tokenizer=tokenizer, target_tokenizer=tokenizer)
    module = types.ModuleType("qkv.cli._load")
    module.load_model = lambda spec: result
    monkeypatch.setitem(__import__("sys").modules, "qkv.cli._load", module)
    return result


def test_view_writes_html_and_one_grid_per_kind(tmp_path, loaded, capsys):
    out = tmp_path / "attention.html"
    assert main(["view", "ckpt", "I love my dog", "-o", str(out), "--target", "the cat",
                 "--png", str(tmp_path / "grid.png")]) == 0
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    for kind in ("encoder", "decoder", "cross"):
        assert (tmp_path / f"grid-{kind}.png").read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert "translation: 'the cat'" in out and "wrote" in out


def test_view_reports_too_long_input(tmp_path, loaded):
    with pytest.raises(SystemExit, match="more than the limit of 3"):
        main(["view", "ckpt", "I love my dog", "-o", str(tmp_path / "a.html"),
              "--max-tokens", "3"])


def test_view_of_a_classifier_checkpoint_shows_its_prediction(tmp_path, capsys):
    tokenizer = WordTokenizer.train(["I love my dog", "the cat"])
    model = qkv.SequenceClassifier(qkv.SequenceClassifierConfig(
        vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2, num_layers=2, d_ff=32,
        dropout=0.0, labels=["negative", "positive", "</script><b>x"])).eval()
    folder = qkv.save_checkpoint(tmp_path / "run", model=model, task="classification",
                                 source_tokenizer=tokenizer, target_tokenizer=tokenizer, step=0)
    out, png = tmp_path / "c.html", tmp_path / "c.png"
    assert main(["view", str(folder), "I love my dog", "-o", str(out), "--png", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"                  # one kind: the path itself
    text = out.read_text(encoding="utf-8")
    data = re.search(r'<script type="application/json"[^>]*>(.*?)</script>', text).group(1)
    document = json.loads(data)
    assert [a["name"] for a in document["attentions"]] == ["encoder.layers.0.self_attention",
                                                          "encoder.layers.1.self_attention"]
    expected = classify_texts(model, tokenizer, ["I love my dog"])[0]
    prediction = document["prediction"]
    assert prediction["labels"] == ["negative", "positive", "</script><b>x"]
    torch.testing.assert_close(torch.tensor(prediction["probabilities"]), expected,
                               atol=1e-6, rtol=0)
    best = prediction["labels"][int(expected.argmax())]
    assert prediction["label"] == best
    assert f"prediction: {best!r} {expected.max().item():.4f}" in capsys.readouterr().out


def test_view_of_a_language_model_prints_its_next_tokens(tmp_path, monkeypatch, language_model,
                                                        tokenizer, capsys):
    result = types.SimpleNamespace(model=language_model, task="language_model",
                                   source_tokenizer=tokenizer, target_tokenizer=tokenizer)
    module = types.ModuleType("qkv.cli._load")
    module.load_model = lambda spec: result
    monkeypatch.setitem(__import__("sys").modules, "qkv.cli._load", module)
    assert main(["view", "ckpt", "I love my", "-o", str(tmp_path / "lm.html")]) == 0
    ids = torch.tensor([[tokenizer.bos_id, *tokenizer.encode("I love my")]])
    best = torch.softmax(language_model(ids)[0, -1], dim=-1).topk(3)
    expected = ", ".join(f"{tokenizer.id_to_token(i)!r} {p:.4f}"
                         for i, p in zip(best.indices.tolist(), best.values.tolist()))
    assert f"next token: {expected}" in capsys.readouterr().out
