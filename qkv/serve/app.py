"""The live explorer: a page where you type a sentence, and the API that traces the model on it.

* ``GET /`` — the page (:mod:`qkv.serve.page`, shipped static files): a text box, and the views
  of :mod:`qkv.views.html`, drawn by the same shipped JS and CSS as a static page (inlined: the
  page loads nothing else). On load it shows the sentence of its URL (``/?text=…&target=…``, a
  permalink the page keeps up to date) or the task's default (``default_text``).
* ``GET /api/attention?text=…[&target=…]`` — the attention document of the model on ``text``
  (:func:`qkv.views.explore`, packed by :func:`qkv.views.pack.page_data`), as JSON, with the
  ``"prediction"`` of the same forward pass (a classifier's labels, a translation's text, a
  language model's next tokens), which the page shows beside the attention.
* ``GET /api/attention?…&ablate=NAME:HEAD,…`` — the same, the model run with those attention
  heads zeroed (:func:`qkv.explain.ablate`; ``LAYER.HEAD`` where a layer has one attention
  module): its prediction changes, the answer names the heads in ``"ablated"``.
* ``GET /api/explain?text=…&method=M[,M2…]`` (and ``target``, ``token``, ``target_text``,
  ``reference``, ``ablate``, ``faithfulness=1``) — which tokens made the model give its target
  (:mod:`qkv.explain`): each method of the attribution registry (or ``all`` of them) gives one
  of ``attributions`` (``Attribution.to_dict()``), each analysis of the analysis registry one of
  ``reports``; ``html`` is the fragment that draws them all
  (:func:`qkv.explain.show.explanation_fragment`). With one method, ``attribution`` or
  ``report`` is that one. The target in words as :func:`qkv.explain.texts.text_subject` takes
  it: a label, a position, an output-token index; ``reference`` for an encoder. With
  ``faithfulness=1``, ``faithfulness`` is :func:`qkv.explain.faithfulness` of the attributions
  (their table in ``html``); it counts as a slow method.
* ``GET /api/explain/methods`` — the registered methods and analyses, which of them are slow,
  and the token limit for those.
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
* a slow method (``slow_methods``: attention flow, integrated gradients, patching…) asked of an
  input over ``max_slow_tokens`` tokens → 400, with ``limit``, ``tokens`` and ``method``;
* an unknown method, a target that does not fit the model, unknown heads to ablate → 400;
* the model busy with other requests for ``max_wait`` seconds → 503, with ``limit`` (seconds)
  and a ``Retry-After`` header.

The first three are answered before routing (:mod:`qkv.serve.limits`), the character limit
before anything is tokenized, the token limit before the model runs. One trace runs at a time
(a trace hooks the shared model); the others wait in line, without holding a thread, and one
that cannot start within ``max_wait`` seconds is refused rather than left to pile up. A trace
that has started is not interrupted: ``max_tokens`` bounds its work. Explanations wait in the
same line (they run the same model); ``max_slow_tokens`` bounds the slow ones.

Tokens and label names only ever reach the page as JSON data that the JS writes with
``textContent``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from qkv.serve.limits import RequestLimits, query_bytes
from qkv.serve.page import explorer_page, static
from qkv.views.html import VIEWS

__all__ = ["SLOW_METHODS", "create_app"]


# Methods whose work grows fast with the input (a max-flow per token and layer; a forward and
# backward pass per interpolation step; a forward pass per site patched): capped by
# ``max_slow_tokens`` in the explorer.
SLOW_METHODS = ("flow", "ig", "alti", "patch", "ablate", "uncertainty")


def create_app(loaded: Any, *, max_tokens: int = 256, max_chars: int | None = None,
               detail: bool = True, default_text: str | None = None,
               max_query_bytes: int | None = None, max_wait: float = 10.0,
               max_slow_tokens: int = 32, slow_methods: tuple[str, ...] = SLOW_METHODS):
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
        max_slow_tokens: the most tokens (all sides) an explanation by one of ``slow_methods``
            may have; then 400.
        slow_methods: the methods capped by ``max_slow_tokens``.

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

    from qkv.explain.texts import API_NAMES, ablation, json_ready, parse_heads, text_subject
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
    if not isinstance(max_slow_tokens, int) or max_slow_tokens < 1:
        raise ValueError(f"max_slow_tokens must be a positive int, got {max_slow_tokens!r}")
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
    app.state.explain_limits = {"max_slow_tokens": max_slow_tokens,
                                "slow_methods": list(slow_methods)}
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

    def traced(text: str, target: str | None, ablate: str | None) -> JSONResponse:
        """The answer to one sentence; runs in a worker thread."""
        try:
            heads = parse_heads(loaded.model, ablate)
            with model_lock, ablation(loaded.model, heads):
                document = explore(
                    loaded.model, task=loaded.task, source_tokenizer=loaded.source_tokenizer,
                    target_tokenizer=loaded.target_tokenizer, text=text,
                    target_text=target or None, max_tokens=max_tokens, detail=detail)
        except TooManyTokens as exception:
            return error(400, str(exception), limit=exception.limit, tokens=exception.count)
        except ValueError as exception:
            return error(400, str(exception))
        data = page_data(document)
        return JSONResponse(data if not heads else {**data, "ablated": heads})

    def explained(text: str, methods: list[str], options: dict[str, str | None],
                  ablate: str | None, measure: bool) -> JSONResponse:
        """The explanation of one sentence; runs in a worker thread."""
        from qkv.explain import ANALYSES, analyse, attribute, faithfulness
        from qkv.explain.show import explanation_fragment

        try:
            heads = parse_heads(loaded.model, ablate)
            with model_lock, ablation(loaded.model, heads):
                subject = text_subject(
                    loaded.model, task=loaded.task, source_tokenizer=loaded.source_tokenizer,
                    target_tokenizer=loaded.target_tokenizer, text=text,
                    max_tokens=max_tokens, names=API_NAMES, **options)
                slow = [m for m in methods if m in slow_methods] + (
                    ["faithfulness"] if measure else [])
                if slow and subject.num_tokens > max_slow_tokens:
                    return error(400, f"{slow[0]} is slow: it explains at most {max_slow_tokens} "
                                      f"tokens here, and this input has {subject.num_tokens}; "
                                      f"shorten it or pick another method",
                                 limit=max_slow_tokens, tokens=subject.num_tokens,
                                 method=slow[0])
                results, seconds = [], {}
                for method in methods:
                    start = time.perf_counter()
                    try:
                        results.append(analyse(subject, method) if method in ANALYSES
                                       else attribute(subject, method))
                    except (TypeError, ValueError) as exception:
                        return error(400, f"{method}: {exception}", method=method)
                    seconds[method] = time.perf_counter() - start
                attributed = [r for r in results if not isinstance(r, dict)]
                if measure and not attributed:
                    return error(400, "faithfulness measures attribution methods: pick one")
                measured = faithfulness(subject, attributed) if measure else None
        except TooManyTokens as exception:
            return error(400, str(exception), limit=exception.limit, tokens=exception.count)
        except (TypeError, ValueError) as exception:
            return error(400, str(exception))
        attributions = [r.to_dict() for r in attributed]
        reports = [r for r in results if isinstance(r, dict)]
        body = {"target": subject.target_name, "methods": methods, "ablated": heads,
                "attributions": attributions, "reports": reports, "seconds": seconds,
                "html": explanation_fragment(results + ([measured] if measure else []))}
        if measure:
            body["faithfulness"] = measured.to_dict()
        if len(methods) == 1:
            body["attribution" if attributions else "report"] = (attributions or reports)[0]
        return JSONResponse(json_ready(body))

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

    def too_long(**values: str | None) -> JSONResponse | None:
        """The 422 of the first value over ``max_chars`` characters, else None."""
        for what, value in values.items():
            if value is not None and len(value) > max_chars:
                return error(422, f"{what} has {len(value)} characters, more than the limit of "
                                  f"{max_chars}", limit=max_chars, characters=len(value))
        return None

    async def in_line(work, *args) -> JSONResponse:
        """``work(*args)`` in a worker thread once the requests before this one are done; 503
        after ``max_wait`` seconds of waiting."""
        with anyio.move_on_after(max_wait) as waiting:
            await line.acquire()
        if waiting.cancelled_caught:
            return error(503, f"the model is busy: this request waited {max_wait:g} s for the "
                              f"requests before it; try again", headers={"Retry-After": "1"},
                         limit=max_wait)
        try:
            return await run_in_threadpool(work, *args)
        finally:
            line.release()

    @app.get("/api/attention")
    async def attention(text: str | None = Query(None), target: str | None = Query(None),
                        ablate: str | None = Query(None)):
        refusal = too_long(text=text, target=target, ablate=ablate)
        if refusal is not None:
            return refusal
        if text is None or not text.strip():
            return error(400, "text is empty: type a sentence (/api/attention?text=…)")
        return await in_line(traced, text, target, ablate)

    @app.get("/api/explain/methods")
    async def explain_methods() -> dict:
        from qkv.explain import ANALYSES, METHODS

        return {"attribution": list(METHODS), "analysis": list(ANALYSES),
                "slow": [m for m in [*METHODS, *ANALYSES] if m in slow_methods],
                "max_slow_tokens": max_slow_tokens}

    @app.get("/api/explain")
    async def explain(text: str | None = Query(None), method: str | None = Query(None),
                      target: str | None = Query(None), token: str | None = Query(None),
                      target_text: str | None = Query(None),
                      reference: str | None = Query(None), ablate: str | None = Query(None),
                      faithfulness: str | None = Query(None)):
        from qkv.explain import ANALYSES, METHODS

        refusal = too_long(text=text, target=target, token=token, target_text=target_text,
                           reference=reference, method=method, ablate=ablate)
        if refusal is not None:
            return refusal
        if text is None or not text.strip():
            return error(400, "text is empty: type a sentence (/api/explain?text=…&method=…)")
        known = f"attribution methods: {', '.join(METHODS)}; analyses: {', '.join(ANALYSES)}"
        methods: list[str] = []
        for name in (part.strip() for part in (method or "").split(",")):
            for one in (list(METHODS) if name == "all" else [name] if name else []):
                if one not in METHODS and one not in ANALYSES:
                    return error(400, f"unknown method {one!r}; {known}", method=one)
                if one not in methods:
                    methods.append(one)
        if not methods:
            return error(400, f"no method: give method=NAME (or all); {known}")
        options = {"target": target or None, "token": token or None,
                   "target_text": target_text or None, "reference": reference or None}
        return await in_line(explained, text, methods, options, ablate,
                             faithfulness not in (None, "", "0", "false"))

    return app
