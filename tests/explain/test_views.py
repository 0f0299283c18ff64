"""The saliency view (HTML and PNG), the faithfulness table and ``qkv.explain.show``: tokens are
escaped, colours follow the scores as the legend says (per method, signed or not, special tokens
out of the maximum), the figure holds the same numbers, and every kind of result shows itself."""

import re

import pytest
import torch

import qkv
from qkv.explain import Attribution, Label, OutputToken, faithfulness, register_analysis, subject
from qkv.explain.analysis import ANALYSES
from qkv.explain.show import show
from qkv.views.faithfulness import render_faithfulness_fragment
from qkv.views.saliency import (
    NEGATIVE,
    POSITIVE,
    colour,
    normalise,
    render_saliency_fragment,
    render_saliency_html,
    saliency_figure,
    save_saliency_png,
)
from tests.space_tokenizer import space_tokenizer

HOSTILE = "<script>alert(1)</script>"
CELL = re.compile(r'<td class="qkv-sal-token[^"]*" data-method="([^"]*)" data-side="(\w+)" '
                  r'data-index="(\d+)" data-position="\d+" data-score="([^"]*)" '
                  r'data-value="([^"]*)" style="background: #([0-9a-f]{6}); color: #\w+" '
                  r'title="([^"]*)">([^<]*)</td>')


@pytest.fixture(scope="module")
def hostile():
    """A subject whose tokens include a script tag: a tiny classifier on a space tokenizer."""
    tokenizer = space_tokenizer()
    torch.manual_seed(0)
    model = qkv.SequenceClassifier(qkv.SequenceClassifierConfig(
        vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2, num_layers=1, d_ff=32,
        labels=["neg", "</b>pos"])).eval()
    ids = [tokenizer.bos_id, *tokenizer.encode(f"I {HOSTILE} dog"), tokenizer.eos_id]
    return subject(model, ids, Label(1), tokenizer=tokenizer)


def cells(fragment):
    """``{method: [(side, index, score, value, (r, g, b), title, text)]}`` of the drawn tokens."""
    found = {}
    for method, side, index, score, value, rgb, title, text in CELL.findall(fragment):
        found.setdefault(method, []).append(
            (side, int(index), float(score), float(value),
             tuple(int(rgb[i:i + 2], 16) for i in (0, 2, 4)), title, text))
    return found


def strength(rgb):
    return sum(255 - c for c in rgb)                    # 0 = white


def test_tokens_and_names_are_escaped(hostile):
    attribution = Attribution("m<i>", hostile, torch.tensor([0.1, 0.2, 0.9, 0.3, 0.0]))
    fragment = render_saliency_fragment(attribution)
    body = fragment.split("</style>", 1)[1]
    assert HOSTILE not in body and "<i>" not in body and "</b>pos" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "label &#x27;&lt;/b&gt;pos&#x27;" in body                # the target, named
    drawn = cells(fragment)["m&lt;i&gt;"]
    assert [text for *_, text in drawn] == [
        "&lt;bos&gt;", "I", "&lt;script&gt;alert(1)&lt;/script&gt;", "dog", "&lt;eos&gt;"]
    assert "score 0.9" in drawn[2][5]                                  # the exact score on hover
    page = render_saliency_html(attribution)
    assert page.startswith("<!DOCTYPE html>") and "https://" not in page


def test_the_top_token_gets_the_strongest_colour_and_the_order_follows_the_scores(hostile):
    scores = torch.tensor([5.0, 0.2, 0.9, 0.4, 7.0])         # <bos>, <eos> special: clipped
    fragment = render_saliency_fragment(Attribution("rollout", hostile, scores))
    drawn = cells(fragment)["rollout"]
    ordinary = drawn[1:4]
    assert [c[3] for c in ordinary] == pytest.approx([0.2 / 0.9, 1.0, 0.4 / 0.9])
    assert ordinary[1][4] == POSITIVE                                  # the top: full blue
    by_score = sorted(ordinary, key=lambda c: c[2])
    assert [strength(c[4]) for c in by_score] == sorted(strength(c[4]) for c in ordinary)
    assert drawn[0][4] == drawn[4][4] == POSITIVE and drawn[0][3] == 1.0   # clipped specials
    assert 'data-signed="false"' in fragment and "score ÷ max score (0.9" in fragment


def test_signed_scores_diverge_from_white(hostile):
    scores = torch.tensor([0.0, -2.0, 1.0, 0.5, 0.0])
    drawn = cells(render_saliency_fragment(Attribution("grad-input", hostile, scores)))
    values = [c[3] for c in drawn["grad-input"]]
    assert values == pytest.approx([0.0, -1.0, 0.5, 0.25, 0.0])
    colours = [c[4] for c in drawn["grad-input"]]
    assert colours[1] == NEGATIVE and colours[0] == (255, 255, 255)
    assert colours[2] == colour(0.5, True) and colours[2][2] > colours[2][0]   # blue-ish
    assert strength(colours[2]) > strength(colours[3]) > 0


def test_methods_sit_side_by_side_each_normalised_on_its_own():
    tokenizer = space_tokenizer()
    model = qkv.Transformer(qkv.TransformerConfig(vocab_size=tokenizer.vocab_size, d_model=16,
                                                  num_heads=2, num_layers=1, d_ff=32)).eval()
    s = subject(model, {"source": tokenizer.encode("I love my dog") + [tokenizer.eos_id],
                        "target": [tokenizer.bos_id, *tokenizer.encode("the cat")]},
                OutputToken(1), tokenizer=tokenizer)
    N = s.num_tokens
    small = Attribution("small", s, torch.linspace(0.0, 0.01, N))
    large = Attribution("large", s, torch.linspace(0.0, 100.0, N))
    fragment = render_saliency_fragment([small, large])
    drawn = cells(fragment)
    assert list(drawn) == ["small", "large"]
    assert [c[3] for c in drawn["small"]] == pytest.approx([c[3] for c in drawn["large"]])
    assert [c[0] for c in drawn["small"]] == (["source"] * len(s.ids["source"])
                                               + ["target"] * len(s.ids["target"]))
    assert re.search(r'<th class="qkv-sal-side" colspan="\d+">source</th>', fragment)
    assert "What made the model give" in fragment and s.target_name.split("'")[1] in fragment


def test_normalise_leaves_special_tokens_out_of_the_maximum():
    result = normalise([10.0, 1.0, 2.0], special=[True, False, False])
    assert result == {"signed": False, "scale": 2.0, "values": [1.0, 0.5, 1.0]}
    assert normalise([0.0, 0.0])["values"] == [0.0, 0.0]              # no division by 0
    assert normalise([float("nan"), 1.0])["values"] == [None, 1.0]


def test_png_holds_the_normalised_scores_in_one_row_per_method(hostile, tmp_path):
    a = Attribution("a", hostile, torch.tensor([0.0, 1.0, 3.0, 2.0, 0.0]))
    b = Attribution("b", hostile, torch.tensor([0.0, -4.0, 2.0, 1.0, 0.0]))
    figure = saliency_figure([a, b])
    rows = [ax.images[0].get_array()[0].tolist() for ax in figure.axes]
    assert rows == [pytest.approx([0.0, 1 / 3, 1.0, 2 / 3, 0.0]),
                    pytest.approx([0.0, -1.0, 0.5, 0.25, 0.0])]
    assert [ax.get_yticklabels()[0].get_text() for ax in figure.axes] == ["a", "b"]
    assert figure.axes[1].images[0].get_clim() == (-1.0, 1.0)
    path = save_saliency_png([a, b], tmp_path / "fig.png")
    data = path.read_bytes()
    assert data[:4] == b"\x89PNG" and len(data) > 2000
    with pytest.raises(ValueError, match="must end in .png or .svg"):
        save_saliency_png(a, tmp_path / "fig.jpg")


def test_show_draws_attributions_reports_and_faithfulness(hostile, tmp_path):
    a = Attribution("a", hostile, torch.tensor([0.0, 1.0, 3.0, 2.0, 0.0]))
    b = Attribution("b", hostile, torch.tensor([0.0, 3.0, 1.0, 2.0, 0.0]))

    @register_analysis("test-report", html=lambda report: f"<p class=tr>{report['n']}</p>")
    def run(subject, **options):
        return {"kind": "test-report", "target": subject.target_name, "n": 41 + 1}

    try:
        result = faithfulness(hostile, [a, b], random_orders=2)
        view = show([a, b, run(hostile), result])
        fragment = view._repr_html_()
        assert fragment.count('class="qkv-saliency"') == 1               # a and b share one
        assert list(cells(fragment)) == ["a", "b"]
        assert "<p class=tr>42</p>" in fragment
        table = render_faithfulness_fragment(result)
        for name, perturbation in result.methods.items():
            row = re.search(rf'<tr data-method="{name}">(.*?)</tr>', fragment).group(1)
            shown = dict(re.findall(r'data-metric="(\w+)" data-value="([^"]*)"', row))
            assert float(shown["aopc"]) == pytest.approx(perturbation.aopc)
            assert float(shown["comprehensiveness"]) == pytest.approx(
                perturbation.comprehensiveness)
        assert "random (mean ± std)" in table
        assert view.save(tmp_path / "page.html").read_text().startswith("<!DOCTYPE html>")
        assert view.save_png(tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        ANALYSES.pop("test-report", None)
    with pytest.raises(TypeError, match="show\\(\\) draws an Attribution"):
        show(42)
    with pytest.raises(ValueError, match="no analysis is registered as 'gone'"):
        show({"kind": "gone"})
