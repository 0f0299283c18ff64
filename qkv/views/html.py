"""Interactive HTML views of an attention document: one pipeline for pages and notebooks.

:func:`render_fragment` is the whole rendering: a ``<div>`` with a unique id, the packed document
(:func:`qkv.views.pack.page_data`) as JSON in a ``<script type="application/json">`` (every ``<``,
``>`` and ``&`` escaped as ``\\u003c``…, so a ``</script>`` token cannot end it), the shipped CSS
and JS (``qkv/views/assets``) inline, and one call that mounts the view. The page
(:func:`render_html`), the notebook object (:class:`AttentionView`) and ``qkv serve`` wrap the same
fragment or the same assets; nothing is loaded from the network.
"""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

from qkv.views.contract import check_document
from qkv.views.pack import page_data

__all__ = [
    "VIEWS",
    "AttentionView",
    "asset",
    "page",
    "render_fragment",
    "render_html",
    "save_html",
    "script_json",
]

VIEWS = ("head", "model", "neuron", "step")


def asset(name: str) -> str:
    """The text of a shipped asset, ``"qkv_views.js"`` or ``"qkv_views.css"``."""
    return resources.files("qkv.views").joinpath("assets", name).read_text(encoding="utf-8")


def script_json(data: object) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``<``, ``>``, ``&`` or line separators.

    Example:
        >>> script_json(["</script>", "a & b"])
        '["\\\\u003c/script\\\\u003e", "a \\\\u0026 b"]'
    """
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except ValueError as error:                 # NaN or ±inf: JSON cannot carry them
        raise ValueError(f"the data holds NaN or ±inf, which JSON cannot carry (NaN in the "
                         f"model's attention?): {error}") from None
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def _check_views(views: Sequence[str]) -> tuple[str, ...]:
    if isinstance(views, str):
        views = (views,)
    views = tuple(views)
    unknown = [view for view in views if view not in VIEWS]
    if not views or unknown:
        raise ValueError(f"views must be a non-empty selection of {VIEWS}, got {views}")
    return views


def render_fragment(document: Mapping, *, views: Sequence[str] = VIEWS,
                    view_id: str | None = None) -> str:
    """The HTML of one view, to embed in a page or a notebook cell (no ``<html>`` wrapper).

    Args:
        document: an attention document.
        views: which of ``"head"``, ``"model"``, ``"neuron"``, ``"step"`` to offer, in order.
        view_id: the container's DOM id; default a fresh ``qkv-view-<hex>``.

    Example:
        >>> from qkv.views.examples import tiny_document
        >>> fragment = render_fragment(tiny_document(), views=["head"], view_id="qkv-view-1")
        >>> fragment.startswith('<div class="qkv-view" id="qkv-view-1" data-views="head">')
        True
    """
    views = _check_views(views)
    view_id = view_id or f"qkv-view-{uuid.uuid4().hex[:12]}"
    attribute = html.escape(view_id, quote=True)
    return (
        f'<div class="qkv-view" id="{attribute}" data-views="{" ".join(views)}"></div>\n'
        f"<style>{asset('qkv_views.css')}</style>\n"
        f'<script type="application/json" id="{attribute}-data">'
        f"{script_json(page_data(document))}</script>\n"
        f"<script>{asset('qkv_views.js')}</script>\n"
        f"<script>window.qkvViews.mount({script_json(view_id)});</script>\n"
    )


def page(body: str, *, title: str) -> str:
    """A complete HTML page around ``body`` (``title`` is escaped)."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )


def render_html(document: Mapping, *, views: Sequence[str] = VIEWS) -> str:
    """A self-contained HTML page with the interactive views of ``document``.

    Args:
        document: an attention document (:mod:`qkv.views.contract`); detail fields (query, key,
            value…) are needed by the neuron and step views.
        views: which views to offer, in order.

    Returns:
        the page, as a string; it loads nothing from the network.

    Example:
        >>> from qkv.views.examples import tiny_document
        >>> text = render_html(tiny_document())
        >>> text.startswith("<!DOCTYPE html>"), "https://" in text
        (True, False)
    """
    title = str(check_document(document).get("title") or "attention")
    return page(render_fragment(document, views=views), title=f"qkv · {title}")


def save_html(document: Mapping, path: str | Path, *, views: Sequence[str] = VIEWS) -> Path:
    """Write :func:`render_html` to ``path`` (UTF-8) and return it as a Path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(document, views=views), encoding="utf-8")
    return path


class AttentionView:
    """The interactive views of a document as a notebook object (Jupyter, VS Code).

    Displaying it renders :func:`render_fragment` inline, with a fresh DOM id each time, so a
    notebook can show several views.

    Example:
        >>> from qkv.views.examples import tiny_document
        >>> view = AttentionView(tiny_document(), views=("head", "step"))
        >>> view._repr_html_().count('class="qkv-view"')
        1
    """

    def __init__(self, document: Mapping, *, views: Sequence[str] = VIEWS) -> None:
        self.document = document
        self.views = _check_views(views)

    def _repr_html_(self) -> str:
        return render_fragment(self.document, views=self.views)

    def save(self, path: str | Path) -> Path:
        """Write the views as a standalone page."""
        return save_html(self.document, path, views=self.views)

    def __repr__(self) -> str:
        return (f"AttentionView({self.document.get('title')!r}, "
                f"{len(self.document['attentions'])} attentions, views={self.views})")
