"""End to end: the live explorer in Debian's Chromium, driven by Playwright.

uvicorn serves :func:`qkv.serve.create_app` on a free loopback port in a thread; headless
Chromium (``/usr/bin/chromium``; Playwright never downloads a browser here) types a sentence,
switches attention kind, layer and head, and the weights the page draws (the head view's
``data-weight`` lines, read through ``qkvView().shownEdges()``) must equal those qkv.trace
records. Screenshots go to ``tmp_path`` and to ``$QKV_ARTIFACTS`` (default ``tests/artifacts``).
"""

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

from qkv.serve import create_app
from qkv.trace import trace
from qkv.views.explore import model_inputs

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"{CHROMIUM} is missing (Debian: apt-get install chromium)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(loaded):
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
    yield f"http://127.0.0.1:{port}/"
    instance.should_exit = True
    thread.join(10)


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
