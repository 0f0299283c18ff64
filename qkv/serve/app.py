"""The live explorer: a page where you type a sentence, and the API that traces the model on it.

* ``GET /`` — the page (:mod:`qkv.serve.page`, shipped static files): a text box, and the views
  of :mod:`qkv.views.html`, drawn by the same shipped JS and CSS as a static page (inlined: the
  page loads nothing else). On load it shows the sentence of its URL (``/?text=…&target=…``, a
  permalink the page keeps up to date) or the task's default (``default_text``).
* ``GET /api/attention?text=…[&target=…]`` — the attention document of the model on ``text``
  (:func:`qkv.views.explore`, packed by :func:`qkv.views.pack.page_data`), as JSON, with the
  ``"prediction"`` of the same forward pass (a classifier's labels, a translation's text, a
  language model's next tokens), which the page shows beside the attention.
* ``GET /api/info`` — the task, the limits, the default sentence, and a classifier's ``labels``.
* ``GET /favicon.ico`` — the page's icon (it links it as a ``data:`` URL; this is for clients that
  ask anyway).

Every refusal is JSON ``{"error": …}`` (a 404 or a 405 too); a refusal by a limit names it:

* a query string over ``max_query_bytes`` bytes → 414, with ``limit`` and ``bytes``;
* a query parameter that is not UTF-8 (``?text=%FF``) → 400, with ``parameter``;
* a request body (no route takes one) → 413, with ``limit`` (0) and ``bytes``;
* no text, or only spaces → 400;
* a text or target over ``max_chars`` characters → 422, with ``limit`` and ``characters``;
* a side over ``max_tokens`` tokens → 400, with ``limit`` and ``tokens``;
* the model busy with other requests for ``max_wait`` seconds → 503, with ``limit`` (seconds)
  and a ``Retry-After`` header.

The first three are answered before routing (:mod:`qkv.serve.limits`), the character limit
before anything is tokenized, the token limit before the model runs. One trace runs at a time
(a trace hooks the shared model); the others wait in line, without holding a thread, and one
that cannot start within ``max_wait`` seconds is refused rather than left to pile up. A trace
that has started is not interrupted: ``max_tokens`` bounds its work.

Tokens and label names only ever reach the page as JSON data that the JS writes with
``textContent``.
"""

from __future__ import annotations

import threading
from typing import Any

from qkv.serve.limits import RequestLimits, query_bytes
from qkv.serve.page import explorer_page, static
from qkv.views.html import VIEWS

__all__ = ["create_app"]


def create_app(loaded: Any, *, max_tokens: int = 256, max_chars: int | None = None,
               detail: bool = True, default_text: str | None = None,
               max_query_bytes: int | None = None, max_wait: float = 10.0):
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
        max_query_bytes: the longest query string accepted, percent-encoded (default: room for
            a text and a target of ``max_chars`` characters of 4 UTF-8 bytes each,
            :func:`qkv.serve.limits.query_bytes`).
        max_wait: the most seconds a request waits for the model while others use it; then 503.

    Returns:
        a ``fastapi.FastAPI``, its limits in ``app.state.limits``; serve it with uvicorn
        (``h11_max_incomplete_event_size``: :func:`qkv.serve.limits.parser_limit`), or test it
        with ``TestClient``.
    """
    import anyio
    from fastapi import FastAPI, Query
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    from qkv.views.explore import DEFAULT_TEXTS, TASKS, TooManyTokens, explore, labels_of
    from qkv.views.pack import page_data

    if getattr(loaded, "task", None) not in TASKS:
        raise ValueError(f"loaded.task must be one of {TASKS}, got {getattr(loaded, 'task', None)!r}")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
    max_chars = 20 * max_tokens if max_chars is None else max_chars
    max_query_bytes = query_bytes(max_chars) if max_query_bytes is None else max_query_bytes
    if isinstance(max_wait, bool) or not isinstance(max_wait, (int, float)) or not max_wait > 0:
        raise ValueError(f"max_wait must be a positive number of seconds, got {max_wait!r}")
    default_text = DEFAULT_TEXTS[loaded.task] if default_text is None else default_text
    if not isinstance(default_text, str) or not default_text.strip():
        raise ValueError(f"default_text must be a non-empty sentence, got {default_text!r}")
    labels = labels_of(loaded.model) if loaded.task == "classification" else None
    line = anyio.Lock()              # requests wait here for the model, in order, no thread each
    model_lock = threading.Lock()    # one traced forward at a time: a trace hooks the shared model
    app = FastAPI(title="qkv attention explorer", docs_url=None, redoc_url=None)
    app.add_middleware(RequestLimits, max_query_bytes=max_query_bytes)
    app.state.limits = {"max_tokens": max_tokens, "max_chars": max_chars,
                        "max_query_bytes": max_query_bytes, "max_wait": max_wait}
    page_html = explorer_page(loaded.task, max_tokens=max_tokens, max_chars=max_chars,
                              default_text=default_text, labels=labels)
    icon = static("favicon.svg")

    def error(status: int, message: str, headers: dict | None = None,
              **extra: Any) -> JSONResponse:
        return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)

    @app.exception_handler(HTTPException)
    async def refused(request: Any, exception: HTTPException) -> JSONResponse:
        """404, 405…: JSON ``{"error"}`` as every other refusal, not FastAPI's ``{"detail"}``."""
        return error(exception.status_code, str(exception.detail), headers=exception.headers)

    def traced(text: str, target: str | None) -> JSONResponse:
        """The answer to one sentence; runs in a worker thread."""
        try:
            with model_lock:
                document = explore(
                    loaded.model, task=loaded.task, source_tokenizer=loaded.source_tokenizer,
                    target_tokenizer=loaded.target_tokenizer, text=text,
                    target_text=target or None, max_tokens=max_tokens, detail=detail)
        except TooManyTokens as exception:
            return error(400, str(exception), limit=exception.limit, tokens=exception.count)
        except ValueError as exception:
            return error(400, str(exception))
        return JSONResponse(page_data(document))

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page_html)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(icon, media_type="image/svg+xml")

    @app.get("/api/info")
    async def info() -> dict:
        about = {"task": loaded.task, "max_tokens": max_tokens, "max_chars": max_chars,
                 "views": list(VIEWS), "default_text": default_text}
        return about if labels is None else {**about, "labels": labels}

    @app.get("/api/attention")
    async def attention(text: str | None = Query(None), target: str | None = Query(None)):
        for what, value in (("text", text), ("target", target)):
            if value is not None and len(value) > max_chars:
                return error(422, f"{what} has {len(value)} characters, more than the limit of "
                                  f"{max_chars}", limit=max_chars, characters=len(value))
        if text is None or not text.strip():
            return error(400, "text is empty: type a sentence (/api/attention?text=…)")
        with anyio.move_on_after(max_wait) as waiting:
            await line.acquire()
        if waiting.cancelled_caught:
            return error(503, f"the model is busy: this request waited {max_wait:g} s for the "
                              f"requests before it; try again", headers={"Retry-After": "1"},
                         limit=max_wait)
        try:
            return await run_in_threadpool(traced, text, target)
        finally:
            line.release()

    return app
