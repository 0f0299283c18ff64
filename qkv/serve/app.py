"""The live explorer: a page where you type a sentence, and the API that traces the model on it.

* ``GET /`` — the page: a text box, and the views of :mod:`qkv.views.html`, drawn by the same
  shipped JS and CSS as a static page (inlined: the page loads nothing else).
* ``GET /api/attention?text=…[&target=…]`` — the attention document of the model on ``text``
  (:func:`qkv.views.explore`, packed by :func:`qkv.views.pack.page_data`), as JSON; a
  classifier's carries its ``"prediction"``, which the page shows beside the attention. Too many
  tokens → HTTP 400 ``{"error": …, "limit": N, "tokens": n}``; empty text → 400; text longer than
  ``max_chars`` characters → 422 before anything is tokenized.
* ``GET /api/info`` — the task, the limits, and a classifier's ``labels``.

Tokens and label names only ever reach the page as JSON data that the JS writes with
``textContent``.
"""

from __future__ import annotations

import html
import threading
from typing import Any

from qkv.views.html import VIEWS, asset, page, script_json

__all__ = ["create_app"]

_PAGE_SCRIPT = """
(function () {
  "use strict";
  var config = %(config)s;
  var form = document.getElementById("qkv-form"), status = document.getElementById("qkv-status");
  var container = document.getElementById("qkv-live");
  function show(text, error) { status.textContent = text; status.className = error ? "qkv-error" : ""; }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var params = new URLSearchParams({text: document.getElementById("qkv-text").value});
    var target = document.getElementById("qkv-target");
    if (target && target.value) { params.set("target", target.value); }
    show("tracing…", false);
    fetch("api/attention?" + params.toString()).then(function (response) {
      return response.json().then(function (body) { return {ok: response.ok, body: body}; });
    }).then(function (result) {
      if (!result.ok) { show(result.body.error || JSON.stringify(result.body), true); return; }
      show("", false);
      window.qkvViews.render(container, result.body, {views: config.views});
      container.setAttribute("data-ready", "1");
    }).catch(function (error) { show(String(error), true); });
  });
})();
"""


def _page_html(task: str, max_tokens: int, max_chars: int, labels: list[str] | None) -> str:
    about = task if labels is None else f"{task}, {len(labels)} labels"
    target = ('<label>target (optional, else greedy) <input id="qkv-target" name="target" '
              f'maxlength="{max_chars}" size="40"></label>' if task == "translation" else "")
    body = (
        "<style>body { font: 14px system-ui, sans-serif; margin: 16px; } "
        ".qkv-error { color: #b00; } #qkv-form { margin-bottom: 8px; }</style>\n"
        f"<style>{asset('qkv_views.css')}</style>\n"
        f'<h2>qkv · attention explorer <small id="qkv-task" data-task="{html.escape(task)}">'
        f"({html.escape(about)})</small></h2>\n"
        '<form id="qkv-form"><label>text <input id="qkv-text" name="text" '
        f'maxlength="{max_chars}" size="60" value="I love my dog" autofocus></label> {target} '
        '<button type="submit" id="qkv-go">Show attention</button> '
        f"<small>at most {max_tokens} tokens</small></form>\n"
        '<div id="qkv-status" role="status"></div>\n<div id="qkv-live"></div>\n'
        f"<script>{asset('qkv_views.js')}</script>\n"
        f"<script>{_PAGE_SCRIPT % {'config': script_json({'views': list(VIEWS)})}}</script>\n"
    )
    return page(body, title="qkv · attention explorer")


def create_app(loaded: Any, *, max_tokens: int = 256, max_chars: int | None = None,
               detail: bool = True):
    """The FastAPI application of ``qkv serve``.

    Args:
        loaded: what :func:`qkv.cli._load.load_model` returns: ``.model`` (eval mode), ``.task``
            (``"translation"``, ``"language_model"``, ``"encoder"`` or ``"classification"``, for
            a ``qkv.SequenceClassifier``), ``.source_tokenizer``, ``.target_tokenizer``.
        max_tokens: the most tokens one side may have.
        max_chars: the most characters of text accepted (default ``20 · max_tokens``).
        detail: send queries, keys, values… (the neuron and step views need them).

    Returns:
        a ``fastapi.FastAPI``; serve it with uvicorn, or test it with ``TestClient``.
    """
    from fastapi import FastAPI, Query
    from fastapi.responses import HTMLResponse, JSONResponse

    from qkv.views.explore import TASKS, TooManyTokens, explore, labels_of
    from qkv.views.pack import page_data

    if getattr(loaded, "task", None) not in TASKS:
        raise ValueError(f"loaded.task must be one of {TASKS}, got {getattr(loaded, 'task', None)!r}")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
    max_chars = 20 * max_tokens if max_chars is None else max_chars
    labels = labels_of(loaded.model) if loaded.task == "classification" else None
    lock = threading.Lock()  # one traced forward at a time: a trace hooks the shared model
    app = FastAPI(title="qkv attention explorer", docs_url=None, redoc_url=None)
    page_html = _page_html(loaded.task, max_tokens, max_chars, labels)

    def error(status: int, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse({"error": message, **extra}, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page_html)

    @app.get("/api/info")
    def info() -> dict:
        about = {"task": loaded.task, "max_tokens": max_tokens, "max_chars": max_chars,
                 "views": list(VIEWS)}
        return about if labels is None else {**about, "labels": labels}

    @app.get("/api/attention")
    def attention(text: str = Query(...), target: str | None = Query(None)):
        for what, value in (("text", text), ("target", target)):
            if value is not None and len(value) > max_chars:
                return error(422, f"{what} has {len(value)} characters, more than the limit of "
                                  f"{max_chars}", limit=max_chars, characters=len(value))
        if not text.strip():
            return error(400, "text is empty: type a sentence")
        try:
            with lock:
                document = explore(
                    loaded.model, task=loaded.task, source_tokenizer=loaded.source_tokenizer,
                    target_tokenizer=loaded.target_tokenizer, text=text,
                    target_text=target or None, max_tokens=max_tokens, detail=detail)
        except TooManyTokens as exception:
            return error(400, str(exception), limit=exception.limit, tokens=exception.count)
        except ValueError as exception:
            return error(400, str(exception))
        return JSONResponse(page_data(document))

    return app
