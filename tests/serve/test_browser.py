"""End to end: the live explorer in Debian's Chromium, driven by Playwright.

uvicorn serves :func:`qkv.serve.create_app` on a free loopback port in a thread; headless
Chromium (``/usr/bin/chromium``; Playwright never downloads a browser here) opens the page, which
shows the task's default sentence at once, or the sentence of its URL; the test types others,
switches attention kind, layer and head, and the weights the page draws (the head view's
``data-weight`` lines, read through ``qkvView().shownEdges()``) must equal those qkv.trace
records. The model's output beside them — a translation, a language model's next tokens, a
classifier's labels — must be the API's and the model's, live and in a static ``qkv view`` page.
No test may leave a script error, a console error or a failed request behind. Layout at two
widths and screenshots: ``test_layout.py``.
"""

import pytest
import torch

import qkv
from qkv.decoding import greedy
from qkv.trace import trace
from qkv.views import explore, save_html
from qkv.views.explore import model_inputs
from tests.serve.browser import (
    artefact,
    assert_clean,
    link,
    ready,
    serving,
    shown_prediction,
    submit,
)
from tests.serve.conftest import LABELS
from tests.space_tokenizer import space_tokenizer


@pytest.fixture
def server(loaded):
    with serving(loaded) as url:
        yield url


@pytest.fixture
def classifier_server(classifier_loaded):
    with serving(classifier_loaded) as url:
        yield url


@pytest.fixture
def language_model_server(language_model_loaded):
    with serving(language_model_loaded) as url:
        yield url


def sides(page):
    return page.evaluate("qkvView('qkv-live').doc.sides")


def test_page_shows_the_default_sentence_and_the_weights_the_model_computes(server, page, loaded,
                                                                             tmp_path):
    page.goto(server)
    ready(page)                                                     # no submit: at once
    assert page.input_value("#qkv-text") == "I love my dog"
    assert page.evaluate("location.search") == ""
    ids = model_inputs(loaded.model, task="translation", source_tokenizer=loaded.source_tokenizer,
                       target_tokenizer=loaded.target_tokenizer, text="I love my dog",
                       max_tokens=16)                               # the same greedy target
    assert sides(page)["source"] == ["I", "love", "my", "dog", "<eos>"]
    assert sides(page)["target"] == loaded.target_tokenizer.tokens(ids["target"])
    with trace(loaded.model) as t:
        loaded.model(torch.tensor([ids["source"]]), torch.tensor([ids["target"]]))

    for kind, name, layer, head in [("encoder", "encoder.layers.0.self_attention", 0, 0),
                                    ("cross", "decoder.layers.1.cross_attention", 1, 1),
                                    ("decoder", "decoder.layers.1.self_attention", 1, 0)]:
        page.click(f"#qkv-live button.qkv-kind[data-kind='{kind}']")
        page.select_option("#qkv-live select.qkv-layer", str(layer))
        page.select_option("#qkv-live select.qkv-head-select", str(head))
        state = page.evaluate("qkvView('qkv-live').state")
        assert (state["kind"], state["layer"], state["head"]) == (kind, layer, head)
        shown = page.evaluate("qkvView('qkv-live').shownEdges()")
        expected = t[name].weights[0, head]                          # (T, S)
        drawn = torch.zeros_like(expected)
        for edge in shown:
            assert edge["head"] == head
            drawn[edge["query"], edge["key"]] = edge["weight"]
        assert len(shown) == int((expected > 0).sum())               # every nonzero weight
        torch.testing.assert_close(drawn, expected, atol=1e-6, rtol=1e-5)
    artefact(page, tmp_path, "serve-head-view.png")

    page.click("#qkv-live button.qkv-tab[data-view='step']")
    page.select_option("#qkv-live select.qkv-query", "1")
    rows = page.eval_on_selector_all("#qkv-live .qkv-steps tr[data-weight]",
                                     "rows => rows.map(r => +r.dataset.weight)")
    torch.testing.assert_close(torch.tensor(rows), t["decoder.layers.1.self_attention"]
                               .weights[0, 0, 1], atol=1e-6, rtol=1e-5)
    artefact(page, tmp_path, "serve-step-view.png")
    assert_clean(page)


def test_explorer_shows_the_greedy_translation(server, page, loaded):
    page.goto(server)
    ready(page)
    tokenizer = loaded.target_tokenizer
    output = greedy(loaded.model, torch.tensor([[4, 5, 6, 7, 2]]), bos_id=1, eos_id=2,
                    max_len=15)[0]                                  # a direct call
    assert page.text_content("#qkv-live .qkv-prediction h4") == "Translation"
    shown = page.text_content("#qkv-live .qkv-translation")
    assert shown == (tokenizer.decode(output) or "(empty: the model ended at once)")
    assert "greedy output" in page.text_content("#qkv-live .qkv-prediction .qkv-note")
    assert_clean(page)


def test_the_url_keeps_the_sentence(server, page):
    page.goto(link(server, text="the cat", target="my dog"))         # a shared link
    ready(page)
    assert (page.input_value("#qkv-text"), page.input_value("#qkv-target")) == ("the cat",
                                                                                "my dog")
    assert sides(page) == {"source": ["the", "cat", "<eos>"], "target": ["<bos>", "my", "dog"]}
    assert page.text_content("#qkv-live .qkv-translation") == "my dog"
    assert "teacher-forced" in page.text_content("#qkv-live .qkv-prediction .qkv-note")

    page.fill("#qkv-target", "")
    submit(page, "I love")
    assert page.evaluate("location.search") == "?text=I+love"
    assert sides(page)["source"] == ["I", "love", "<eos>"]
    page.reload()                                                   # the link opens on it
    ready(page)
    assert page.input_value("#qkv-text") == "I love"
    assert sides(page)["source"] == ["I", "love", "<eos>"]

    page.fill("#qkv-target", "the cat")
    submit(page, "我爱狗 & love")
    assert page.evaluate("location.search") == "?text=%E6%88%91%E7%88%B1%E7%8B%97+%26+love" \
                                               "&target=the+cat"
    page.goto(page.url)
    ready(page)
    assert sides(page) == {"source": ["我爱狗", "<unk>", "love", "<eos>"],
                           "target": ["<bos>", "the", "cat"]}
    assert_clean(page)


def test_script_tokens_render_as_text(server, page, tmp_path):
    page.goto(link(server, text="<script>alert(1)</script> </script> love"))
    ready(page)
    tokens = page.eval_on_selector_all(
        "#qkv-live .qkv-token[data-side='key']",
        "nodes => nodes.map(n => [n.firstChild.nodeValue, n.querySelector('title').textContent])")
    assert tokens[:2] == [["<script>alert(1)<…", "0: <script>alert(1)</script>"],
                          ["</script>", "1: </script>"]]
    assert page.eval_on_selector_all("#qkv-live script", "nodes => nodes.length") == 0
    page.click("#qkv-live button.qkv-tab[data-view='model']")
    page.click("#qkv-live .qkv-thumb[data-layer='0'][data-head='0']")
    header = page.eval_on_selector_all("#qkv-live .qkv-matrix th",
                                       "nodes => nodes.map(n => n.textContent)")
    assert "</script>" in header
    artefact(page, tmp_path, "serve-model-view.png")
    assert_clean(page)


def test_too_long_input_shows_the_limit(server, page):
    page.goto(server)
    ready(page)
    page.fill("#qkv-text", " ".join(["love"] * 20))
    page.press("#qkv-text", "Enter")
    page.wait_for_selector("#qkv-status.qkv-error")
    assert "more than the limit of 16" in page.text_content("#qkv-status")
    assert [status for status, _ in page.bad_responses] == [400]
    assert_clean(page, expected_statuses=[400])


def test_explorer_shows_a_language_models_next_tokens(language_model_server,
                                                      language_model_loaded, page, tmp_path):
    page.goto(language_model_server)
    ready(page)
    assert page.input_value("#qkv-text") == "I love my"              # the task's default
    assert sides(page) == {"text": ["<bos>", "I", "love", "my"]}
    model, tokenizer = language_model_loaded.model, language_model_loaded.source_tokenizer
    logits = model(torch.tensor([[1, 4, 5, 6]]))[0, -1]              # a direct call
    expected = torch.softmax(logits, dim=-1).topk(10)
    api = page.evaluate("fetch('api/attention?text=' + encodeURIComponent('I love my'))"
                        ".then(r => r.json())")["prediction"]
    assert page.text_content("#qkv-live .qkv-prediction h4") == "Next token"
    best, rows = shown_prediction(page, "#qkv-live")
    assert [row["label"] for row in rows] == tokenizer.tokens(expected.indices.tolist())
    assert [row["label"] for row in rows] == api["tokens"] and best == rows[0]["label"]
    assert [row["probability"] for row in rows] == api["probabilities"]
    torch.testing.assert_close(torch.tensor([row["probability"] for row in rows]),
                               expected.values, atol=1e-6, rtol=0)
    assert [row["text"] for row in rows] == [f"{p:.4f}" for p in api["probabilities"]]
    assert [row["rank"] for row in rows] == [str(i) for i in range(1, 11)]
    artefact(page, tmp_path, "serve-next-token.png")
    assert_clean(page)


def test_explorer_shows_a_classifiers_prediction(classifier_server, classifier_loaded, page,
                                                 tmp_path):
    page.goto(classifier_server)
    assert page.text_content("#qkv-task") == "(classification, 3 labels)"
    submit(page, "I love my dog the cat")
    page.wait_for_selector("#qkv-live .qkv-prediction")
    api = page.evaluate("fetch('api/attention?text=' + encodeURIComponent('I love my dog the cat'))"
                        ".then(r => r.json())")["prediction"]
    best, rows = shown_prediction(page, "#qkv-live")
    order = sorted(range(len(LABELS)), key=lambda i: -api["probabilities"][i])
    assert best == api["label"] == rows[0]["label"]
    assert [row["label"] for row in rows] == [api["labels"][i] for i in order]
    assert [row["probability"] for row in rows] == [api["probabilities"][i] for i in order]
    assert [row["text"] for row in rows] == [f"{api['probabilities'][i]:.4f}" for i in order]
    assert [row["rank"] for row in rows] == ["1", "2", "3"]
    assert "</script><b>x" in [row["label"] for row in rows]           # shown as text
    assert all(row["children"] == 0 for row in rows)
    assert page.eval_on_selector_all("#qkv-live .qkv-prediction b, #qkv-live script",
                                     "nodes => nodes.length") == 0

    model = classifier_loaded.model
    with trace(model) as t:
        model(torch.tensor([[1, 4, 5, 6, 7, 8, 9, 2]]))
    page.select_option("#qkv-live select.qkv-layer", "1")
    page.select_option("#qkv-live select.qkv-head-select", "1")
    expected = t["encoder.layers.1.self_attention"].weights[0, 1]     # (T, S)
    drawn = torch.zeros_like(expected)
    for edge in page.evaluate("qkvView('qkv-live').shownEdges()"):
        drawn[edge["query"], edge["key"]] = edge["weight"]
    torch.testing.assert_close(drawn, expected, atol=1e-6, rtol=1e-5)
    artefact(page, tmp_path, "serve-classifier-head-view.png")

    for view, selector, count in [("model", ".qkv-thumb", 4),                   # 2 layers × 2 heads
                                  ("neuron", ".qkv-neuron tr[data-dim]", 8),    # D = 16 / 2
                                  ("step", ".qkv-steps tr[data-weight]", 8)]:   # 8 keys
        page.click(f"#qkv-live button.qkv-tab[data-view='{view}']")
        assert page.eval_on_selector_all(f"#qkv-live {selector}", "n => n.length") == count, view
        assert shown_prediction(page, "#qkv-live") == (best, rows)    # the panel stays
    assert_clean(page)


def test_static_page_ranks_the_ten_most_probable_of_many_labels(page, tmp_path):
    tokenizer = space_tokenizer()
    labels = [f"label {i}" for i in range(11)] + ["</script><b>x"]
    model = qkv.SequenceClassifier(qkv.SequenceClassifierConfig(
        vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2, num_layers=2, d_ff=32,
        dropout=0.0, labels=labels)).eval()
    torch.nn.init.normal_(model.classifier.weight, std=0.3)           # spread-out probabilities
    document = explore(model, task="classification", source_tokenizer=tokenizer, text="the cat")
    path = save_html(document, tmp_path / "classifier.html")
    page.goto(path.as_uri())
    page.wait_for_selector(".qkv-prediction")
    best, rows = shown_prediction(page, ".qkv-view")
    probabilities = document["prediction"]["probabilities"]
    order = sorted(range(len(labels)), key=lambda i: -probabilities[i])[:10]
    assert best == document["prediction"]["label"]
    assert [row["label"] for row in rows] == [labels[i] for i in order]
    assert [row["probability"] for row in rows] == [probabilities[i] for i in order]
    assert "The 10 most probable of 12 labels." in page.text_content(".qkv-prediction")
    artefact(page, tmp_path, "view-classifier.png")
    assert_clean(page)


def test_static_page_shows_a_translation_and_next_tokens(page, tmp_path, loaded,
                                                         language_model_loaded):
    tokenizer = space_tokenizer()
    translated = explore(loaded.model, task="translation", source_tokenizer=tokenizer,
                         text="I love my dog", target_text="我爱狗 </script>")
    page.goto(save_html(translated, tmp_path / "translation.html").as_uri())
    text = translated["prediction"]["text"]
    assert "我爱狗" in text and "</script>" in text                     # as the tokenizer decodes
    assert page.text_content(".qkv-view .qkv-translation") == text
    assert "teacher-forced" in page.text_content(".qkv-view .qkv-prediction")
    artefact(page, tmp_path, "view-translation.png")

    following = explore(language_model_loaded.model, task="language_model",
                        source_tokenizer=tokenizer, text="the cat")
    page.goto(save_html(following, tmp_path / "language-model.html").as_uri())
    best, rows = shown_prediction(page, ".qkv-view")
    prediction = following["prediction"]
    assert [(row["label"], row["probability"]) for row in rows] == list(
        zip(prediction["tokens"], prediction["probabilities"]))
    assert best == prediction["tokens"][0]
    artefact(page, tmp_path, "view-next-token.png")
    assert_clean(page)
