"""End to end: the live explorer in Debian's Chromium, driven by Playwright.

uvicorn serves :func:`qkv.serve.create_app` on a free loopback port in a thread; headless
Chromium (``/usr/bin/chromium``; Playwright never downloads a browser here) types a sentence,
switches attention kind, layer and head, and the weights the page draws (the head view's
``data-weight`` lines, read through ``qkvView().shownEdges()``) must equal those qkv.trace
records. For a classifier, the labels and probabilities the page shows (live, and in a static
``qkv view`` page) must be the API's. Screenshots go to ``tmp_path`` and to ``$QKV_ARTIFACTS``
(default ``tests/artifacts``).
"""

import os
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

import qkv
from qkv.serve import create_app
from qkv.trace import trace
from qkv.views import explore, save_html
from qkv.views.explore import model_inputs
from tests.serve.conftest import LABELS
from tests.space_tokenizer import space_tokenizer

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"{CHROMIUM} is missing (Debian: apt-get install chromium)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(loaded):
    """The explorer of ``loaded`` served by uvicorn in a thread; yields its URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(create_app(loaded, max_tokens=16), host="127.0.0.1", port=port,
                            log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        instance.should_exit = True
        thread.join(10)


@pytest.fixture
def server(loaded):
    with serving(loaded) as url:
        yield url


@pytest.fixture
def classifier_server(classifier_loaded):
    with serving(classifier_loaded) as url:
        yield url


@pytest.fixture
def page():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.on("dialog", lambda dialog: (page.errors.append("dialog: " + dialog.message),
                                          dialog.dismiss()))
        yield page
        browser.close()


def artefact(page, tmp_path, name):
    path = page.screenshot(path=tmp_path / name, full_page=True) and tmp_path / name
    folder = Path(os.environ.get("QKV_ARTIFACTS") or Path(__file__).parents[1] / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, folder / name)
    return path


def submit(page, text):
    page.evaluate("document.getElementById('qkv-live').removeAttribute('data-ready')")
    page.fill("#qkv-text", text)
    page.press("#qkv-text", "Enter")
    page.wait_for_selector("#qkv-live[data-ready='1'] .qkv-edges line", state="attached",
                           timeout=20_000)


def test_page_shows_the_weights_the_model_computes(server, page, loaded, tmp_path):
    page.goto(server)
    submit(page, "I love my dog")
    ids = model_inputs(loaded.model, task="translation", source_tokenizer=loaded.source_tokenizer,
                       target_tokenizer=loaded.target_tokenizer, text="I love my dog",
                       max_tokens=16)                               # the same greedy target
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
    assert page.errors == []


def test_script_tokens_render_as_text(server, page, tmp_path):
    page.goto(server)
    submit(page, "<script>alert(1)</script> </script> love")
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
    assert page.errors == []


def test_too_long_input_shows_the_limit(server, page):
    page.goto(server)
    page.fill("#qkv-text", " ".join(["love"] * 20))
    page.press("#qkv-text", "Enter")
    page.wait_for_selector("#qkv-status.qkv-error")
    assert "more than the limit of 16" in page.text_content("#qkv-status")


def shown_prediction(page, scope):
    """The prediction panel as the reader sees it: the best label, and each row's cells."""
    best = page.text_content(f"{scope} .qkv-predicted-label")
    rows = page.eval_on_selector_all(f"{scope} .qkv-ranking tr[data-label]", """
        rows => rows.map(r => ({rank: r.cells[0].textContent, label: r.cells[1].textContent,
                                children: r.cells[1].children.length,
                                text: r.cells[2].textContent,
                                probability: +r.dataset.probability}))""")
    return best, rows


def test_explorer_shows_a_classifiers_prediction(classifier_server, classifier_loaded, page,
                                                 tmp_path):
    page.goto(classifier_server)
    assert page.text_content("#qkv-task") == "(classification, 3 labels)"
    submit(page, "I love my dog")
    page.wait_for_selector("#qkv-live .qkv-prediction")
    api = page.evaluate("fetch('api/attention?text=' + encodeURIComponent('I love my dog'))"
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
        model(torch.tensor([[1, 4, 5, 6, 7, 2]]))
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
                                  ("step", ".qkv-steps tr[data-weight]", 6)]:   # 6 keys
        page.click(f"#qkv-live button.qkv-tab[data-view='{view}']")
        assert page.eval_on_selector_all(f"#qkv-live {selector}", "n => n.length") == count, view
        assert shown_prediction(page, "#qkv-live") == (best, rows)    # the panel stays
    assert page.errors == []


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
    assert page.errors == []
