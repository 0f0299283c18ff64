"""The live explorer's page: shipped static files filled in with the model's config.

The page (``qkv/serve/static/index.html``), its script (``explorer.js``), its style
(``explorer.css``) and its icon (``favicon.svg``) ship as package data, beside the views' assets
(``qkv/views/assets``). :func:`explorer_page` inlines them all, so the page loads nothing else,
and passes the model's settings to the script as JSON in a ``<script type="application/json"
id="qkv-config">`` element (:func:`qkv.views.html.script_json`); the only other text it fills in
is escaped (:func:`fill`).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping
from importlib import resources

from qkv.views.html import VIEWS, asset, script_json

__all__ = ["explorer_page", "favicon", "fill", "static"]

_SLOT = re.compile(r"\{\{(\w+)\}\}")
_CLOSERS = ("</script", "</style", "<!--")  # an inlined file holding one would break the page


def static(name: str) -> str:
    """The text of a shipped file of the explorer: ``"index.html"``, ``"explorer.js"``…"""
    return resources.files("qkv.serve").joinpath("static", name).read_text(encoding="utf-8")


def favicon() -> str:
    """The explorer's icon (``static/favicon.svg``) as a ``data:`` URL, for ``<link rel=icon>``.

    Example:
        >>> favicon().startswith("data:image/svg+xml;base64,")
        True
    """
    svg = static("favicon.svg").encode("utf-8")
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


def fill(template: str, slots: Mapping[str, str]) -> str:
    """``template`` with every ``{{name}}`` replaced by ``slots[name]``, in one pass.

    The values are inserted as they are (escape them first); a slot the template lacks, or a
    ``{{name}}`` without a value, is a ValueError.

    Example:
        >>> fill("<b>{{who}}</b> {{n}}", {"who": "you", "n": "{{n}}"})
        '<b>you</b> {{n}}'
        >>> fill("{{who}}", {})
        Traceback (most recent call last):
        ...
        ValueError: the template has slot(s) ['who'] without a value; given: []
    """
    names = set(_SLOT.findall(template))
    if names - set(slots) or set(slots) - names:
        missing, unused = sorted(names - set(slots)), sorted(set(slots) - names)
        raise ValueError(f"the template has slot(s) {missing} without a value; given: "
                         f"{sorted(slots)}" if missing else
                         f"the template has no slot(s) {unused}; its slots: {sorted(names)}")
    return _SLOT.sub(lambda match: slots[match.group(1)], template)


def _inlined(name: str, text: str) -> str:
    """``text`` of a file to inline in ``<script>`` or ``<style>``, refused if it could end it."""
    for closer in _CLOSERS:
        if closer in text.lower():
            raise ValueError(f"{name} cannot be inlined: it contains {closer!r}")
    return text


def explorer_page(task: str, *, max_tokens: int, max_chars: int, default_text: str,
                  labels: list[str] | None = None) -> str:
    """The explorer's HTML page for a model of ``task``.

    Args:
        task: the model's task (``"translation"`` shows a target box).
        max_tokens, max_chars: the limits the page states and the text box keeps.
        default_text: the sentence the page traces on load when its URL names none.
        labels: a classifier's label names; the page states only how many (names travel as
            JSON data from the API, never in the page).

    Returns:
        the page, self-contained: its style, scripts and icon inline.

    Example:
        >>> text = explorer_page("language_model", max_tokens=8, max_chars=160,
        ...                      default_text="I love my")
        >>> '"default_text": "I love my"' in text, "https://" in text, " src=" in text
        (True, False, False)
    """
    about = task if labels is None else f"{task}, {len(labels)} labels"
    config = {"task": task, "views": list(VIEWS), "max_tokens": max_tokens,
              "max_chars": max_chars, "default_text": default_text}
    return fill(static("index.html"), {
        "favicon": favicon(),
        "views_css": _inlined("qkv_views.css", asset("qkv_views.css")),
        "explorer_css": _inlined("explorer.css", static("explorer.css")),
        "task": html.escape(task, quote=True),
        "about": html.escape(about),
        "max_chars": str(int(max_chars)),
        "max_tokens": str(int(max_tokens)),
        "config": script_json(config),
        "views_js": _inlined("qkv_views.js", asset("qkv_views.js")),
        "explorer_js": _inlined("explorer.js", static("explorer.js")),
    })
