"""The explorer's refusals before any work: requests it will not parse, as JSON 4xx answers.

:class:`RequestLimits` wraps the explorer's ASGI application and looks only at the request line
and headers, before routing, parameter parsing, tokenizing or tracing:

* a query string of more than ``max_query_bytes`` bytes → **414**
  ``{"error": …, "limit": max_query_bytes, "bytes": n}``;
* a query parameter whose (percent-decoded) bytes are not UTF-8 → **400**
  ``{"error": …, "parameter": name}`` (Starlette would quietly turn them into U+FFFD);
* a request with a body (no route of the explorer takes one) → **413**
  ``{"error": …, "limit": 0, "bytes": n}``.

What reaches it is bounded below it: uvicorn's HTTP parser (h11) refuses a request line and
headers of more than ``h11_max_incomplete_event_size`` bytes with a plain-text 400 and closes the
connection; ``qkv serve`` sets that just above ``max_query_bytes`` (:func:`parser_limit`).
"""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

__all__ = ["RequestLimits", "invalid_utf8", "parser_limit", "query_bytes"]

HEADER_ROOM = 16 * 1024  # bytes for the headers beside the request line (h11's own default)


def query_bytes(max_chars: int) -> int:
    """The default query-string limit: room for a ``text`` and a ``target`` of ``max_chars``
    characters each, every character percent-encoded as 4 UTF-8 bytes (``%F0%9F%98%80``, 12).

    Example:
        >>> query_bytes(320)
        8704
    """
    return 2 * 12 * max_chars + 1024


def parser_limit(max_query_bytes: int) -> int:
    """The ``h11_max_incomplete_event_size`` to serve with: a query string the explorer answers
    with its own 414 must reach it, with room for the headers.

    Example:
        >>> parser_limit(8704)
        25088
    """
    return max_query_bytes + HEADER_ROOM


def invalid_utf8(query: bytes) -> tuple[str, str] | None:
    """The first query parameter whose name or value is not UTF-8 once percent-decoded, as
    ``(name, what is wrong)``; None when all are.

    Example:
        >>> invalid_utf8(b"text=I+love+%E6%88%91&target=")
        >>> invalid_utf8(b"text=ok&target=%FF%FEdog")
        ('target', 'byte 0xff at byte 0 of its value')
    """
    for piece in query.split(b"&"):
        name, _, value = piece.partition(b"=")
        for part, where in ((name, "name"), (value, "value")):
            try:
                unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError as error:
                shown = unquote_to_bytes(name).decode("utf-8", "replace")
                byte = error.object[error.start]
                return shown, f"byte 0x{byte:02x} at byte {error.start} of its {where}"
    return None


class RequestLimits:
    """ASGI middleware: the refusals of this module, answered before the application runs.

    Args:
        app: the ASGI application to guard.
        max_query_bytes: the longest query string accepted, in bytes as sent (percent-encoded).
    """

    def __init__(self, app, *, max_query_bytes: int) -> None:
        if not isinstance(max_query_bytes, int) or max_query_bytes < 1:
            raise ValueError(f"max_query_bytes must be a positive int, got {max_query_bytes!r}")
        self.app = app
        self.max_query_bytes = max_query_bytes

    async def __call__(self, scope, receive, send) -> None:
        refusal = self.refusal(scope) if scope["type"] == "http" else None
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, body = refusal
        data = json.dumps(body).encode("utf-8")
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode("ascii")),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": data})

    def refusal(self, scope) -> tuple[int, dict] | None:
        """``(status, JSON body)`` of a request to refuse, or None to let it through."""
        query = scope.get("query_string", b"")
        if len(query) > self.max_query_bytes:
            return 414, {"error": f"the query string has {len(query)} bytes, more than the limit "
                                  f"of {self.max_query_bytes}",
                         "limit": self.max_query_bytes, "bytes": len(query)}
        wrong = invalid_utf8(query)
        if wrong is not None:
            name, what = wrong
            return 400, {"error": f"the query parameter {name!r} is not valid UTF-8: {what}",
                         "parameter": name}
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length", b"").strip()
        if b"transfer-encoding" in headers or length not in (b"", b"0"):
            sent = int(length) if length.isdigit() else None    # None: chunked, or no number
            return 413, {"error": "the explorer takes no request body: send the sentence in the "
                                  "query string (GET /api/attention?text=…)",
                         "limit": 0, "bytes": sent}
        return None
