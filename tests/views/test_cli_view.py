"""``qkv view``: the HTML page and the heatmap grids of a loaded model."""

import types

import pytest

from qkv.cli.main import main


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
    assert "wrote" in capsys.readouterr().out


def test_view_reports_too_long_input(tmp_path, loaded):
    with pytest.raises(SystemExit, match="more than the limit of 3"):
        main(["view", "ckpt", "I love my dog", "-o", str(tmp_path / "a.html"),
              "--max-tokens", "3"])
