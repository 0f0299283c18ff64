"""The explorer's Explain tab: ``/api/explain`` (the library's attributions and the analyses of
the registries, within the explorer's limits), head ablation on ``/api/attention``, and, in
Debian's Chromium, two methods and a target picked, their coloured tokens equal to the API's,
and a head clicked off flipping the classifier's prediction."""

import types

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

import qkv
from qkv.explain import METHODS, ablate, attribute, faithfulness, register_analysis
from qkv.explain.analysis import ANALYSES
from qkv.explain.texts import text_subject
from qkv.serve import create_app
from tests.serve.browser import artefact, assert_clean, ready, serving
from tests.space_tokenizer import space_tokenizer

TEXT = "I love my dog"
HEAD = "encoder.layers.0.self_attention"


def tiny(model_class, config_class, task, **options):
    tokenizer = space_tokenizer()
    torch.manual_seed(0)
    model = model_class(config_class(vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2,
                                     num_layers=2, d_ff=32, dropout=0.0, **options)).eval()
    return types.SimpleNamespace(model=model, task=task, source_tokenizer=tokenizer,
                                 target_tokenizer=tokenizer)


@pytest.fixture(scope="module")
def flipping():
    """A tiny classifier whose prediction on TEXT flips when one head is ablated: the head that
    moves the logit difference most, the output bias set at the midpoint of the two."""
    loaded = tiny(qkv.SequenceClassifier, qkv.SequenceClassifierConfig, "classification",
                  labels=["neg", "pos"])
    model, tokenizer = loaded.model, loaded.source_tokenizer
    ids = torch.tensor([[tokenizer.bos_id, *tokenizer.encode(TEXT), tokenizer.eos_id]])

    def difference(heads=None):
        with torch.no_grad():
            if heads is None:
                logits = model(ids)[0]
            else:
                with ablate(model, heads=heads):
                    logits = model(ids)[0]
        return float(logits[1] - logits[0])

    plain = difference()
    head = max(range(2), key=lambda h: abs(difference({HEAD: [h]}) - plain))
    with torch.no_grad():
        model.classifier.bias[1] -= (plain + difference({HEAD: [head]})) / 2
    assert (difference() > 0) != (difference({HEAD: [head]}) > 0)
    loaded.head = head
    return loaded


def library(loaded, method, **options):
    s = text_subject(loaded.model, task=loaded.task, source_tokenizer=loaded.source_tokenizer,
                     target_tokenizer=loaded.target_tokenizer, text=TEXT, **options)
    return attribute(s, method)


def two_methods():
    wanted = [m for m in ("rollout", "grad-input") if m in METHODS]
    return wanted if len(wanted) == 2 else list(METHODS)[:2]


def test_explain_answers_the_librarys_attributions_and_their_html(flipping):
    client = TestClient(create_app(flipping, max_tokens=16))
    methods = two_methods()
    body = client.get("/api/explain", params={"text": TEXT, "method": ",".join(methods),
                                              "target": "pos"}).json()
    assert body["target"] == "label 'pos'" and body["methods"] == methods
    for shown, method in zip(body["attributions"], methods):
        direct = library(flipping, method, target="pos").to_dict()
        assert shown["tokens"] == direct["tokens"]
        assert shown["scores"]["text"] == pytest.approx(direct["scores"]["text"], abs=1e-6)
        assert f'<tr class="qkv-sal-row" data-method="{method}"' in body["html"]
    one = client.get("/api/explain", params={"text": TEXT, "method": methods[0]}).json()
    assert one["attribution"] == one["attributions"][0]                   # one method: as is
    measured = client.get("/api/explain", params={"text": TEXT, "method": ",".join(methods),
                                                  "target": "pos", "faithfulness": "1"}).json()
    s = text_subject(flipping.model, source_tokenizer=flipping.source_tokenizer, text=TEXT,
                     target="pos")
    direct = faithfulness(s, [attribute(s, m) for m in methods])
    assert list(measured["faithfulness"]["methods"]) == methods
    for method in methods:
        assert measured["faithfulness"]["methods"][method]["aopc"] == pytest.approx(
            direct.methods[method].aopc, abs=1e-6)
    assert "random (mean ± std)" in measured["html"]
    listed = client.get("/api/explain/methods").json()
    assert listed["attribution"] == list(METHODS) and listed["analysis"] == list(ANALYSES)


def test_an_analysis_answers_its_report_and_its_html(flipping):
    @register_analysis("test-length", html=lambda r: f"<p class=length>{r['n']}</p>")
    def length(subject, **options):
        return {"kind": "test-length", "target": subject.target_name, "n": subject.num_tokens}

    try:
        client = TestClient(create_app(flipping, max_tokens=16))
        body = client.get("/api/explain", params={"text": TEXT, "method": "test-length"}).json()
        assert body["report"] == {"kind": "test-length", "target": body["target"], "n": 6}
        assert body["html"] == "<p class=length>6</p>"
    finally:
        ANALYSES.pop("test-length", None)


def test_explain_refusals_name_what_is_wrong(flipping):
    client = TestClient(create_app(flipping, max_tokens=16, max_slow_tokens=4,
                                   slow_methods=(two_methods()[0],)))
    slow = two_methods()[0]
    cases = [({"text": TEXT, "method": slow}, 400, f"{slow} is slow: it explains at most 4 "
                                                    f"tokens here, and this input has 6"),
             ({"text": TEXT, "method": "nope"}, 400, "unknown method 'nope'; attribution"),
             ({"text": TEXT}, 400, "no method: give method=NAME"),
             ({"text": " ", "method": slow}, 400, "text is empty"),
             ({"text": "dog " * 100, "method": slow}, 422, "more than the limit of 320"),
             ({"text": TEXT, "method": slow, "target": "7"}, 400, "target 7 is out of range"),
             ({"text": TEXT, "method": slow, "reference": "x"}, 400,
              "reference is for an encoder"),
             ({"text": TEXT, "method": slow, "ablate": "0.9"}, 400, "head 9 is out of range")]
    for params, status, message in cases:
        response = client.get("/api/explain", params=params)
        assert response.status_code == status and message in response.json()["error"], params
    assert client.get("/api/explain", params=cases[0][0]).json()["limit"] == 4


def test_targets_of_a_translation_and_an_encoder(loaded):
    client = TestClient(create_app(loaded, max_tokens=16))
    body = client.get("/api/explain", params={"text": TEXT, "method": "all", "target": "1",
                                              "target_text": "the cat"}).json()
    assert body["target"] == "output token 'cat'" and body["methods"] == list(METHODS)
    assert body["attributions"][0]["tokens"]["target"] == ["<bos>", "the"]
    encoder = tiny(qkv.EncoderModel, qkv.EncoderModelConfig, "encoder")
    client = TestClient(create_app(encoder, max_tokens=16))
    method = two_methods()[0]
    refused = client.get("/api/explain", params={"text": TEXT, "method": method})
    assert refused.status_code == 400 and "give reference" in refused.json()["error"]
    body = client.get("/api/explain", params={"text": TEXT, "method": method,
                                              "reference": "the cat"}).json()
    assert body["target"] == "similarity to the reference"
    assert body["attributions"][0]["scores"]["text"] == pytest.approx(library(
        encoder, method, reference="the cat").to_dict()["scores"]["text"], abs=1e-6)


def test_ablated_heads_change_the_prediction_the_attention_answers(flipping):
    client = TestClient(create_app(flipping, max_tokens=16))
    plain = client.get("/api/attention", params={"text": TEXT}).json()
    off = client.get("/api/attention", params={"text": TEXT,
                                               "ablate": f"{HEAD}:{flipping.head}"}).json()
    assert "ablated" not in plain and off["ablated"] == {HEAD: [flipping.head]}
    assert plain["prediction"]["label"] != off["prediction"]["label"]
    shorthand = client.get("/api/attention", params={"text": TEXT,
                                                     "ablate": f"0.{flipping.head}"}).json()
    assert shorthand["prediction"] == off["prediction"]
    wrong = client.get("/api/attention", params={"text": TEXT, "ablate": "nowhere:0"})
    assert wrong.status_code == 400 and "no attention module is named 'nowhere'" in \
        wrong.json()["error"]


def tokens_shown(page):
    """The saliency cells inside the explanation's frame, as the page draws them."""
    frame = page.frame_locator("#qkv-explain-frame")
    return frame.locator("td.qkv-sal-token").evaluate_all("""cells => cells.map(c => ({
        method: c.dataset.method, index: +c.dataset.index, score: +c.dataset.score,
        special: c.classList.contains('qkv-sal-special'), text: c.textContent,
        background: getComputedStyle(c).backgroundColor}))""")


def strength(css):
    """How far a CSS ``rgb(r, g, b)`` is from white."""
    return sum(255 - int(x) for x in css[css.index("(") + 1:-1].split(","))


def explained(page):
    page.wait_for_selector("#qkv-explain[data-ready='1']", state="attached", timeout=30_000)


def test_explain_tab_in_the_browser(flipping, page, tmp_path):
    methods, label = two_methods(), "pos"
    with serving(flipping) as url:
        page.goto(url)
        ready(page)
        page.click("#qkv-tabs button[data-tab='explain']")
        assert page.is_hidden("#qkv-live") and page.is_visible("#qkv-explain")
        page.wait_for_selector("#qkv-explain[data-methods='1']", state="attached")
        for box in page.query_selector_all("#qkv-methods input[name=method]"):
            box.set_checked(box.get_attribute("value") in methods)
        page.select_option("#qkv-explain-target", label="label 1: pos")
        page.click("#qkv-explain-go")
        explained(page)
        api = httpx.get(f"{url}api/explain", params={"text": TEXT, "method": ",".join(methods),
                                                     "target": label}).json()
        cells = tokens_shown(page)
        for method, attribution in zip(methods, api["attributions"]):
            row = [c for c in cells if c["method"] == method]
            assert [c["text"] for c in row] == attribution["tokens"]["text"]
            assert [c["score"] for c in row] == pytest.approx(attribution["scores"]["text"],
                                                              rel=1e-6, abs=1e-9)
            ordinary = [c for c in row if not c["special"]]
            top = max(ordinary, key=lambda c: abs(c["score"]))
            assert strength(top["background"]) == max(strength(c["background"])
                                                      for c in ordinary)
        assert "label 'pos'" in page.text_content("#qkv-explain-status")
        artefact(page, tmp_path, "serve-explain-tab.png")

        before = page.text_content("#qkv-explain-prediction")
        page.evaluate("document.getElementById('qkv-explain').removeAttribute('data-ready')")
        page.click(f"#qkv-heads button[data-name='{HEAD}'][data-head='{flipping.head}']")
        explained(page)                                          # redone under the ablation
        after = page.text_content("#qkv-explain-prediction")
        assert before.startswith("prediction: ") and after.startswith("prediction: ")
        assert before.split()[1] != after.split()[1] and "1 head(s) ablated" in after
        assert page.get_attribute(f"#qkv-heads button[data-name='{HEAD}'][data-head="
                                  f"'{flipping.head}']", "aria-pressed") == "true"
        assert page.text_content("#qkv-ablated-list") == f"{HEAD}:{flipping.head}"
        page.click("#qkv-tabs button[data-tab='attention']")     # the attention tab follows
        assert page.text_content("#qkv-live .qkv-predicted-label") == after.split()[1]
        page.click("#qkv-ablated-clear")
        page.wait_for_function("document.getElementById('qkv-explain-prediction')"
                               f".textContent === {before!r}")
        assert_clean(page)
