"""The live explorer under attack: every limit answers a clear JSON 4xx (or 503), and hostile
text — as tokens, as a translation, as label names, in the page and in a static ``qkv view`` page
— stays text.

Limits: the real ``qkv serve`` process on a free loopback port (its parser's settings are the
CLI's), a tiny language model, ``--max-tokens 8``: so 160 characters, 4,864 query bytes
(:func:`qkv.serve.limits.query_bytes`). The busy model (503) is served in a thread, so that its
forward can be slowed down.

Hostile text: Debian's Chromium (Playwright, as ``tests/serve``) opens the explorer of models
whose tokenizer keeps each payload whole as one token, submits every payload, clicks through
every view, and asserts that no payload ran (``window.__pwned`` stays undefined, no dialog
opened, no element or handler was added) and that each is shown literally.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import types

import httpx
import pytest

import qkv
from qkv.cli.main import main
from qkv.tokenizers import CharTokenizer, WordTokenizer
from qkv.tokenizers.base import SPECIAL_TOKENS
from qkv.training.checkpoint import save_checkpoint
from tests.serve.browser import assert_clean, link, qkv_serve, ready, serving, submit
from tests.serve.conftest import browser, page  # noqa: F401  (Playwright fixtures)

PAYLOADS = [
    "</script><script>window.__pwned=1</script>",
    '"><img src=x onerror="window.__pwned=1">',
    "javascript:window.__pwned=1",
    "<svg onload=window.__pwned=1>",
    "<img src=x onerror=alert(document.domain)>",
]
# Elements or handlers a payload would add if it were parsed as HTML; the page has none.
# The Explain tab's own frame (sandboxed: no script runs in it) is the one iframe the page has.
INJECTED = ("img, iframe:not(#qkv-explain-frame), object, embed, a[href], [onerror], [onload], [onclick], "
            "[src^='javascript'], [href^='javascript']")


# ----------------------------------------------------------------------------- the limits


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``qkv serve`` of a tiny language model, ``--max-tokens 8``; yields its URL."""
    tokenizer = WordTokenizer.train(["I love my dog", "the cat"])
    config = qkv.LanguageModelConfig(vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2,
                                     num_layers=2, d_ff=32, dropout=0.0)
    folder = save_checkpoint(tmp_path_factory.mktemp("attack") / "run",
                             model=qkv.LanguageModel(config), task="language_model",
                             source_tokenizer=tokenizer, target_tokenizer=tokenizer, step=1)
    with qkv_serve(folder, "--max-tokens", "8") as (url, process):
        yield url
        assert process.poll() is None, process.output()      # it survived every attack


def raw_request(url: str, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection as it is; what came back before the server closed."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        try:
            for start in range(0, len(data), 65536):
                connection.sendall(data[start:start + 65536])
        except OSError:                                        # refused: it stopped reading
            pass
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
        except OSError:
            pass
    return answer


@pytest.mark.parametrize("params, status, body", [
    ({"text": "x" * 161}, 422, {"limit": 160, "characters": 161}),
    ({"text": "I", "target": "x" * 200}, 422, {"limit": 160, "characters": 200}),
    ({"text": "I love my dog the cat I love my dog"}, 400, {"limit": 8, "tokens": 11}),
    ({"text": "\U0001f600" * 160, "target": "\U0001f600" * 160}, 400, {"limit": 8, "tokens": 161}),
    ({"text": "a" * 4900}, 414, {"limit": 4864, "bytes": 4905}),
    ({"text": "  "}, 400, {}),
    ({}, 400, {}),
], ids=["characters", "target-characters", "tokens", "widest-query-in-bounds", "query-bytes",
        "blank", "missing"])
def test_each_limit_is_a_json_4xx_naming_it(served, params, status, body):
    response = httpx.get(f"{served}/api/attention", params=params)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert {key: answer[key] for key in body} == body and set(answer) == {"error", *body}
    for key, value in body.items():                             # the message names the limit
        assert key != "limit" or str(value) in answer["error"]


@pytest.mark.parametrize("query, parameter", [
    ("text=%FF%FEdog", "text"),
    ("text=I&target=%C3%28", "target"),                # a lead byte without its continuation
    ("text=%C0%AF", "text"),                           # an overlong "/"
    ("text=%ED%A0%80", "text"),                        # a UTF-16 surrogate
    ("te%FFxt=dog", "te\ufffdxt"),                     # in the name
])
def test_a_query_that_is_not_utf8_is_a_400(served, query, parameter):
    response = httpx.get(f"{served}/api/attention?{query}")
    assert response.status_code == 400
    assert response.json()["parameter"] == parameter
    assert "not valid UTF-8" in response.json()["error"]


def test_raw_bytes_that_are_not_utf8_are_a_400(served):
    answer = raw_request(served, b"GET /api/attention?text=\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")                 # the parser's own refusal


def test_a_request_body_is_a_413(served):
    for response in (httpx.request("GET", f"{served}/api/attention?text=I", content=b"x" * 100),
                     httpx.post(f"{served}/api/attention?text=I", content=b"x" * 10_000),
                     httpx.post(f"{served}/api/attention?text=I", content=iter([b"x", b"y"]))):
        assert response.status_code == 413
        assert response.json()["limit"] == 0 and "no request body" in response.json()["error"]
    assert httpx.post(f"{served}/api/attention?text=I").json() == {"error": "Method Not Allowed"}
    assert httpx.get(f"{served}/nowhere").json() == {"error": "Not Found"}


@pytest.mark.parametrize("size", [100_000, 1 << 20, 16 << 20])
def test_a_huge_query_string_is_refused_early(served, size):
    start = time.perf_counter()
    answer = raw_request(served, b"GET /api/attention?text=" + b"a" * size
                         + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    status = answer.split(b"\r\n", 1)[0]
    assert status in (b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 414 Request-URI Too Long"), answer
    assert time.perf_counter() - start < 5                      # it did not read 16 MiB
    assert httpx.get(f"{served}/api/attention", params={"text": "I love"}).status_code == 200


def slow_language_model(seconds: float):
    """A tiny language model whose every forward sleeps ``seconds`` and sets ``.tracing``."""
    tokenizer = WordTokenizer.train(["I love my dog"])
    model = qkv.LanguageModel(qkv.LanguageModelConfig(
        vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2, num_layers=2, d_ff=32,
        dropout=0.0)).eval()
    tracing = threading.Event()

    def slowly(module, inputs):
        tracing.set()
        time.sleep(seconds)

    model.register_forward_pre_hook(slowly)
    return types.SimpleNamespace(model=model, task="language_model", source_tokenizer=tokenizer,
                                 target_tokenizer=tokenizer, tracing=tracing)


def test_a_request_the_busy_model_cannot_start_in_time_is_a_503():
    loaded = slow_language_model(1.5)
    with serving(loaded, max_wait=0.3) as url:
        first = {}
        thread = threading.Thread(target=lambda: first.update(response=httpx.get(
            f"{url}api/attention", params={"text": "I love"}, timeout=30)))
        thread.start()
        assert loaded.tracing.wait(10)                          # the first one holds the model
        start = time.perf_counter()
        info = httpx.get(f"{url}api/info", timeout=30)          # answered meanwhile
        assert info.status_code == 200 and time.perf_counter() - start < 1.0
        refused = httpx.get(f"{url}api/attention", params={"text": "my dog"}, timeout=30)
        waited = time.perf_counter() - start
        thread.join()
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["limit"] == 0.3 and "busy" in refused.json()["error"]
        assert 0.3 <= waited < 1.5                             # refused before the model was free
        assert first["response"].status_code == 200
        again = httpx.get(f"{url}api/attention", params={"text": "my dog"}, timeout=30)
        assert again.status_code == 200                       # the line moves on


# ------------------------------------------------------------------- hostile text, in a browser


class PayloadTokenizer(WordTokenizer):
    """Each payload is one token, whatever spaces it holds; other words are split on spaces."""

    kind = "payload-test"
    _PIECE = re.compile("|".join(map(re.escape, sorted(PAYLOADS, key=len, reverse=True)))
                        + r"|\S+")

    @staticmethod
    def _split(text):
        return PayloadTokenizer._PIECE.findall(text)


def payload_models():
    """A translation model, a language model and a classifier labelled with the payloads, over
    a vocabulary of 10 tokens (so a language model's top 10 are all of them)."""
    tokenizer = PayloadTokenizer([*SPECIAL_TOKENS, "I", *PAYLOADS])
    sizes = dict(vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2, num_layers=2,
                 d_ff=32, dropout=0.0)
    models = {"translation": qkv.Transformer(qkv.TransformerConfig(**sizes)),
              "language_model": qkv.LanguageModel(qkv.LanguageModelConfig(**sizes)),
              "classification": qkv.SequenceClassifier(qkv.SequenceClassifierConfig(
                  **sizes, labels=PAYLOADS))}
    return {task: types.SimpleNamespace(model=model.eval(), task=task, source_tokenizer=tokenizer,
                                        target_tokenizer=tokenizer)
            for task, model in models.items()}


@pytest.fixture(scope="module")
def models():
    return payload_models()


def assert_inert(page):
    """No payload ran: nothing set ``window.__pwned``, no dialog or script error, no element or
    handler a payload would add, no script but the page's own three (or a static page's)."""
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.eval_on_selector_all(INJECTED, "nodes => nodes.map(n => n.outerHTML)") == []
    assert_clean(page)


def test_the_check_sees_a_payload_that_runs(page):
    """The control: parsed as HTML, the payloads do run, and ``assert_inert`` would see it."""
    page.set_content('<div id="sink"></div>')
    page.evaluate("payload => { document.getElementById('sink').innerHTML = payload; }",
                  PAYLOADS[1])
    page.wait_for_function("window.__pwned === 1")
    page.evaluate("payload => { document.getElementById('sink').innerHTML = payload; }",
                  PAYLOADS[4])
    page.wait_for_function("document.querySelector('#sink img')")
    deadline = time.monotonic() + 10
    while not page.errors and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert [error.split(":")[0] for error in page.errors] == ["dialog"]    # alert(…) ran
    assert page.eval_on_selector_all(INJECTED, "nodes => nodes.length") == 1


def clicked_through_views(page, scope):
    """Every view drawn once (model view: one head opened), for the payloads to meet them all."""
    page.click(f"{scope} button.qkv-tab[data-view='model']")
    page.click(f"{scope} .qkv-thumb[data-layer='0'][data-head='0']")
    header = page.eval_on_selector_all(f"{scope} .qkv-matrix th",
                                       "nodes => nodes.map(n => n.textContent)")
    for view in ("neuron", "step", "head"):
        page.click(f"{scope} button.qkv-tab[data-view='{view}']")
    return header


def short(token):
    """A token as the views label it where room is short (``short`` in ``qkv_views.js``)."""
    return token[:17] + "…" if len(token) > 18 else token


def key_titles(page, scope):
    """The full text of each key token of the head view (shown cut short, whole in its title)."""
    return page.eval_on_selector_all(f"{scope} .qkv-token[data-side='key'] title",
                                     "nodes => nodes.map(n => n.textContent)")


def test_payloads_typed_into_the_explorer_stay_text(models, page):
    with serving(models["translation"]) as url:
        page.goto(url)
        for payload in PAYLOADS:
            page.fill("#qkv-target", payload)
            submit(page, f"I {payload}")
            assert page.evaluate("qkvView('qkv-live').doc.sides") == {
                "source": ["I", payload, "<eos>"], "target": ["<bos>", payload]}
            assert key_titles(page, "#qkv-live") == ["0: I", f"1: {payload}", "2: <eos>"]
            assert page.text_content("#qkv-live .qkv-translation") == payload
            assert page.text_content("#qkv-live .qkv-title") == f"I {payload} → {payload}"
            assert short(payload) in clicked_through_views(page, "#qkv-live")
            assert page.evaluate("Object.fromEntries(new URLSearchParams(location.search))") \
                == {"text": f"I {payload}", "target": payload}               # the permalink
            assert_inert(page)

        page.goto(link(url, text=" ".join(PAYLOADS), target=PAYLOADS[0]))   # a shared link
        ready(page)
        assert page.input_value("#qkv-text") == " ".join(PAYLOADS)
        assert key_titles(page, "#qkv-live") == [f"{i}: {p}" for i, p in enumerate(PAYLOADS)] \
            + ["5: <eos>"]
        assert_inert(page)


def test_a_payload_as_the_default_sentence_stays_text(models, page):
    with serving(models["language_model"], default_text=PAYLOADS[0]) as url:
        page.goto(url)
        ready(page)
        assert page.input_value("#qkv-text") == PAYLOADS[0]
        assert key_titles(page, "#qkv-live") == ["0: <bos>", f"1: {PAYLOADS[0]}"]
        assert_inert(page)


def ranked_labels(page, scope):
    return page.eval_on_selector_all(
        f"{scope} .qkv-ranking tr[data-label]",
        "rows => rows.map(r => [r.cells[1].textContent, r.cells[1].children.length])")


def test_payload_tokens_and_labels_in_the_prediction_stay_text(models, page):
    with serving(models["language_model"]) as url:              # next tokens: all 10 of them
        page.goto(link(url, text="I"))
        ready(page)
        shown = ranked_labels(page, "#qkv-live")
        assert sorted(shown) == sorted([[token, 0] for token in [*SPECIAL_TOKENS, "I", *PAYLOADS]])
        assert_inert(page)
    with serving(models["classification"]) as url:              # label names
        page.goto(link(url, text="I " + PAYLOADS[1]))
        ready(page)
        assert sorted(ranked_labels(page, "#qkv-live")) == sorted([[p, 0] for p in PAYLOADS])
        assert page.text_content("#qkv-live .qkv-predicted-label") in PAYLOADS
        clicked_through_views(page, "#qkv-live")
        assert_inert(page)


def test_payloads_in_a_static_qkv_view_page_stay_text(tmp_path, page, capsys):
    tokenizer = CharTokenizer.train(PAYLOADS + ["I love my dog"])    # real, saved tokenizers
    sizes = dict(vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2, num_layers=2,
                 d_ff=32, dropout=0.0)
    translation = save_checkpoint(tmp_path / "translation", task="translation",
                                  model=qkv.Transformer(qkv.TransformerConfig(**sizes)),
                                  source_tokenizer=tokenizer, target_tokenizer=tokenizer, step=1)
    classifier = save_checkpoint(tmp_path / "classifier", task="classification",
                                 model=qkv.SequenceClassifier(qkv.SequenceClassifierConfig(
                                     **sizes, labels=PAYLOADS)),
                                 source_tokenizer=tokenizer, target_tokenizer=tokenizer, step=1)
    for payload in PAYLOADS:
        output = tmp_path / "translation.html"
        assert main(["view", str(translation), payload, "--target", payload,
                     "-o", str(output)]) == 0
        page.goto(output.as_uri())
        page.wait_for_selector(".qkv-view .qkv-translation")
        assert page.title() == f"qkv · {payload} → {payload}"
        assert page.text_content(".qkv-view .qkv-translation") == payload
        assert "".join(title.split(": ", 1)[1] for title in key_titles(page, ".qkv-view")) \
            == payload + "<eos>"
        clicked_through_views(page, ".qkv-view")
        assert_inert(page)

    output = tmp_path / "classifier.html"
    assert main(["view", str(classifier), PAYLOADS[0], "-o", str(output)]) == 0
    page.goto(output.as_uri())
    page.wait_for_selector(".qkv-view .qkv-prediction")
    assert sorted(ranked_labels(page, ".qkv-view")) == sorted([[p, 0] for p in PAYLOADS])
    clicked_through_views(page, ".qkv-view")
    assert_inert(page)
    assert "prediction: " in capsys.readouterr().out
