"""The HTML views: a valid page, the document embedded faithfully, unique ids, escaping, size."""

import json
import re
import time
from html.parser import HTMLParser

import pytest
import torch

from qkv.trace import trace
from qkv.views import (
    AttentionView,
    explore,
    page_data,
    render_fragment,
    render_html,
    save_html,
)
from qkv.views.examples import tiny_document
from qkv.views.html import asset

HOSTILE = ["<script>alert(1)</script>", "</script>", "<!--", "&amp;", "\u2028", "\"'"]


class Page(HTMLParser):
    """Collects elements, ids, script bodies and unclosed tags of a page."""

    VOID = frozenset({"meta", "link", "br", "img", "input", "hr"})

    def __init__(self):
        super().__init__()
        self.open, self.ids, self.scripts, self.tags = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag not in self.VOID:
            self.open.append(tag)
        if tag == "script":
            self.scripts.append([attrs, ""])

    def handle_data(self, data):
        if self.open and self.open[-1] == "script":
            self.scripts[-1][1] += data

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()


def parse(text):
    page = Page()
    page.feed(text)
    page.close()
    assert page.open == [], f"unclosed elements: {page.open}"
    return page


def embedded(page):
    (data,) = [body for attrs, body in page.scripts if attrs.get("type") == "application/json"]
    return json.loads(data)


def test_page_is_valid_html_and_embeds_the_document_unchanged():
    document = tiny_document(["ich", "liebe"], target=["<bos>", "I", "love"])
    page = parse(render_html(document))
    assert embedded(page) == document                             # short: the document itself
    assert [tag for tag, _ in page.tags[:3]] == ["html", "head", "meta"]


def test_two_views_on_one_page_get_unique_ids():
    document = tiny_document()
    page = parse(render_fragment(document) + render_fragment(document))
    containers = [attrs["id"] for tag, attrs in page.tags if attrs.get("class") == "qkv-view"]
    assert len(containers) == 2 and len(set(containers)) == 2
    assert len(page.ids) == len(set(page.ids))                    # containers and their data
    mounts = [body for attrs, body in page.scripts if body.startswith("window.qkvViews.mount(")]
    assert [re.search(r'mount\("([^"]+)"\)', m).group(1) for m in mounts] == containers


@pytest.mark.parametrize("token", HOSTILE)
def test_hostile_tokens_stay_data(token):
    document = tiny_document(["a", token, "b"])
    text = render_html(document)
    page = parse(text)
    assert len(page.scripts) == 3                                 # data, views JS, mount call
    assert "<script>alert" not in text and text.count("</script") == 3
    assert embedded(page)["sides"]["text"] == ["a", token, "b"]


def test_the_views_write_tokens_as_text_and_load_nothing():
    script = asset("qkv_views.js")
    assert "innerHTML" not in script and "outerHTML" not in script
    assert "</script" not in script.lower() and "<!--" not in script
    assert "insertAdjacentHTML" not in script and "document.write" not in script
    text = render_html(tiny_document())
    assert not re.search(r"""(src|href)\s*=|@import|url\(|https://""", text)


def test_notebook_object_renders_a_fresh_fragment_each_time(tmp_path):
    view = AttentionView(tiny_document(), views=("head", "step"))
    first, second = view._repr_html_(), view._repr_html_()
    assert 'data-views="head step"' in first and "<html" not in first
    assert parse(first).ids != parse(second).ids
    assert view.save(tmp_path / "v.html").read_text(encoding="utf-8").startswith("<!DOCTYPE")


def test_views_are_checked():
    with pytest.raises(ValueError, match=r"views must be a non-empty selection of \('head'"):
        render_html(tiny_document(), views=("head", "graph"))


def test_long_input_is_packed_within_a_size_budget():
    tokens = [f"w{i}" for i in range(1000)]
    document = tiny_document(tokens, num_layers=1, num_heads=2)
    start = time.perf_counter()
    text = render_html(document)
    assert time.perf_counter() - start < 10
    assert len(text.encode()) < 2_000_000                          # dense would be ~60 MB
    (record,) = embedded(parse(text))["attentions"]
    packed = record["packed"]
    assert "weights" not in record and "scores" not in record
    assert len(packed["indices"][1]) == 1000 and packed["image"]["rows"] == 256
    weights = torch.tensor(document["attentions"][0]["weights"][1][999])     # last query
    best = weights.topk(packed["top_k"])
    assert packed["indices"][1][999] == best.indices.tolist()
    assert packed["values"][1][999] == pytest.approx(best.values.tolist(), abs=1e-6)


def test_page_of_a_real_trace_carries_the_models_weights(tmp_path, language_model, tokenizer):
    document = explore(language_model, task="language_model", source_tokenizer=tokenizer,
                       text="I love my dog")
    page = parse(save_html(document, tmp_path / "a.html").read_text(encoding="utf-8"))
    with trace(language_model) as t:
        language_model(torch.tensor([[tokenizer.bos_id, *tokenizer.encode("I love my dog")]]))
    shown = embedded(page)
    assert shown == page_data(document)
    for record in shown["attentions"]:
        torch.testing.assert_close(torch.tensor(record["weights"]), t[record["name"]].weights[0],
                                   atol=1e-6, rtol=1e-5)


def test_classifier_page_embeds_the_prediction_and_its_png_draws(tmp_path, classifier, tokenizer):
    from qkv.decoding.classify import classify_texts
    from qkv.views import save_heatmap

    document = explore(classifier, task="classification", source_tokenizer=tokenizer,
                       text="the cat")
    text = save_html(document, tmp_path / "c.html").read_text(encoding="utf-8")
    page = parse(text)
    shown = embedded(page)
    assert shown == page_data(document)
    assert shown["prediction"]["labels"][2] == "</script><b>x"            # data, not markup
    assert len(page.scripts) == 3 and text.count("</script") == 3 and "<b>x" not in text
    torch.testing.assert_close(torch.tensor(shown["prediction"]["probabilities"]),
                               classify_texts(classifier, tokenizer, ["the cat"])[0],
                               atol=1e-6, rtol=0)
    png = save_heatmap(document, tmp_path / "c.png", kind="encoder")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

