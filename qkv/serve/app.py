"""The live explorer: a page where you type a sentence, and the API that traces the model on it.

* ``GET /`` — the page (:mod:`qkv.serve.page`, shipped static files): a text box, and the views
  of :mod:`qkv.views.html`, drawn by the same shipped JS and CSS as a static page (inlined: the
  page loads nothing else). On load it shows the sentence of its URL (``/?text=…&target=…``, a
  permalink the page keeps up to date) or the task's default (``default_text``).
* ``GET /api/attention?text=…[&target=…]`` — the attention document of the model on ``text``
  (:func:`qkv.views.explore`, packed by :func:`qkv.views.pack.page_data`), as JSON, with the
  ``"prediction"`` of the same forward pass (a classifier's labels, a translation's text, a
  language model's next tokens), which the page shows beside the attention. Too many
  tokens → HTTP 400 ``{"error": …, "limit": N, "tokens": n}``; empty text → 400; text longer than
  ``max_chars`` characters → 422 before anything is tokenized.
* ``GET /api/info`` — the task, the limits, the default sentence, and a classifier's ``labels``.
* ``GET /favicon.ico`` — the page's icon (it links it as a ``data:`` URL; this is for clients that
  ask anyway).

Tokens and label names only ever reach the page as JSON data that the JS writes with
``textContent``.
"""

from __future__ import annotations

import threading
from typing import Any

from qkv.serve.page import explorer_page, static
from qkv.views.html import VIEWS

__all__ = ["create_app"]


def create_app(loaded: Any, *, max_tokens: int = 256, max_chars: int | None = None,
               detail: bool = True, default_text: str | None = None):
    """The FastAPI application of ``qkv serve``.

    Args:
        loaded: what :func:`qkv.cli._load.load_model` returns: ``.model`` (eval mode), ``.task``
            (``"translation"``, ``"language_model"``, ``"encoder"`` or ``"classification"``, for
            a ``qkv.SequenceClassifier``), ``.source_tokenizer``, ``.target_tokenizer``.
        max_tokens: the most tokens one side may have.
        max_chars: the most characters of text accepted (default ``20 · max_tokens``).
        detail: send queries, keys, values… (the neuron and step views need them).
        default_text: the sentence the page shows on load (default: the task's,
            :data:`qkv.views.explore.DEFAULT_TEXTS`, e.g. "I love my dog").

    Returns:
        a ``fastapi.FastAPI``; serve it with uvicorn, or test it with ``TestClient``.
    """
    from fastapi import FastAPI, Query
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    from qkv.views.explore import DEFAULT_TEXTS, TASKS, TooManyTokens, explore, labels_of
    from qkv.views.pack import page_data

    if getattr(loaded, "task", None) not in TASKS:
        raise ValueError(f"loaded.task must be one of {TASKS}, got {getattr(loaded, 'task', None)!r}")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
    max_chars = 20 * max_tokens if max_chars is None else max_chars
    default_text = DEFAULT_TEXTS[loaded.task] if default_text is None else default_text
    if not isinstance(default_text, str) or not default_text.strip():
        raise ValueError(f"default_text must be a non-empty sentence, got {default_text!r}")
    labels = labels_of(loaded.model) if loaded.task == "classification" else None
    lock = threading.Lock()  # one traced forward at a time: a trace hooks the shared model
    app = FastAPI(title="qkv attention explorer", docs_url=None, redoc_url=None)
    page_html = explorer_page(loaded.task, max_tokens=max_tokens, max_chars=max_chars,
                              default_text=default_text, labels=labels)
    icon = static("favicon.svg")

    def error(status: int, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse({"error": message, **extra}, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page_html)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(icon, media_type="image/svg+xml")

    @app.get("/api/info")
    def info() -> dict:
        about = {"task": loaded.task, "max_tokens": max_tokens, "max_chars": max_chars,
                 "views": list(VIEWS), "default_text": default_text}
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
