"""Heatmaps: PNG and SVG files, one head or a grid, tokens on the axes, CJK fonts."""

import warnings

import pytest

from qkv.views import fonts, grid_figure, head_figure, save_heatmap
from qkv.views.examples import tiny_document


def test_grid_is_written_as_png_and_svg(tmp_path):
    document = tiny_document(["ich", "liebe"], target=["<bos>", "I"])
    png = save_heatmap(document, tmp_path / "grid.png", kind="cross")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = save_heatmap(document, tmp_path / "grid.svg", kind="cross").read_text()
    assert svg.startswith("<?xml") and "</svg>" in svg


def test_one_head_has_the_tokens_on_its_axes():
    figure = head_figure(tiny_document(["I", "love", "my", "dog"]), "layers.1.self_attention", 1)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["I", "love", "my", "dog"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["I", "love", "my", "dog"]


def test_grid_is_layers_by_heads():
    figure = grid_figure(tiny_document(num_layers=3, num_heads=2))
    assert len([ax for ax in figure.axes if ax.has_data()]) == 6


def test_bad_path_head_and_kind_are_named(tmp_path):
    with pytest.raises(ValueError, match="must end in .png or .svg, got 'x.jpg'"):
        save_heatmap(tiny_document(), tmp_path / "x.jpg")
    with pytest.raises(ValueError, match=r"head must be in \[0, 2\)"):
        head_figure(tiny_document(), "layers.0.self_attention", 5)
    with pytest.raises(ValueError, match="no 'cross' attention"):
        grid_figure(tiny_document(), "cross")


def test_cjk_tokens_get_a_cjk_font(tmp_path):
    if fonts.font_family_for(["狗"]) is None:
        pytest.skip("no CJK font installed (Debian: fonts-noto-cjk)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                         # no missing-glyph warning
        figure = grid_figure(tiny_document(["我", "爱", "狗"]))
        figure.savefig(tmp_path / "zh.png")
    assert fonts.font_family_for(["狗"])[0].startswith("Noto Sans CJK")


def test_missing_cjk_font_warns_and_still_draws(tmp_path, monkeypatch):
    monkeypatch.setattr(fonts, "CJK_FONTS", ("No Such Font CJK",))
    with pytest.warns(RuntimeWarning, match="no CJK font was found"):
        path = save_heatmap(tiny_document(["我", "爱"]), tmp_path / "zh.svg")
    assert path.exists()
