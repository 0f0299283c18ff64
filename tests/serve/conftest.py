"""Tiny random models (a translation model, a language model, a classifier) and a whitespace
tokenizer, as ``qkv serve`` loads a model; Chromium and a page that records every error."""

import types
from pathlib import Path

import pytest

import qkv
from tests.serve.browser import ARGS, CHROMIUM
from tests.space_tokenizer import space_tokenizer


@pytest.fixture
def loaded():
    """What ``qkv.cli._load.load_model`` returns, for a tiny random translation model."""
    tokenizer = space_tokenizer()
    config = qkv.TransformerConfig(vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2,
                                   num_layers=2, d_ff=32, dropout=0.0)
    return types.SimpleNamespace(model=qkv.Transformer(config).eval(), task="translation",
                                 source_tokenizer=tokenizer, target_tokenizer=tokenizer)


@pytest.fixture
def language_model_loaded():
    """What ``load_model`` returns for a tiny random language model."""
    tokenizer = space_tokenizer()
    config = qkv.LanguageModelConfig(vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2,
                                     num_layers=2, d_ff=32, dropout=0.0)
    return types.SimpleNamespace(model=qkv.LanguageModel(config).eval(), task="language_model",
                                 source_tokenizer=tokenizer, target_tokenizer=tokenizer)


LABELS = ["negative", "positive", "</script><b>x"]


@pytest.fixture
def classifier_loaded():
    """What ``load_model`` returns for a tiny random classifier (one label name is hostile)."""
    tokenizer = space_tokenizer()
    config = qkv.SequenceClassifierConfig(vocab_size=tokenizer.vocab_size, d_model=16,
                                          num_heads=2, num_layers=2, d_ff=32, dropout=0.0,
                                          labels=LABELS)
    return types.SimpleNamespace(model=qkv.SequenceClassifier(config).eval(),
                                 task="classification", source_tokenizer=tokenizer,
                                 target_tokenizer=tokenizer)


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium, one per test module (skipped where it is missing)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh page (1100 × 900) that records script errors and dialogs (``.errors``), console
    errors (``.console_errors``), failed requests and HTTP errors (``.failed_requests``,
    ``.bad_responses``): see :func:`tests.serve.browser.assert_clean`."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.errors, page.console_errors, page.failed_requests, page.bad_responses = [], [], [], []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("dialog", lambda dialog: (page.errors.append("dialog: " + dialog.message),
                                      dialog.dismiss()))
    page.on("console", lambda message: message.type == "error"
            and page.console_errors.append(message.text))
    page.on("requestfailed", lambda request: page.failed_requests.append(
        (request.url, request.failure)))
    page.on("response", lambda response: response.status >= 400
            and page.bad_responses.append((response.status, response.url)))
    yield page
    context.close()
