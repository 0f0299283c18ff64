"""Explanations that show themselves: in a notebook, as a page, as a figure.

``qkv.explain.show(x)`` takes what :mod:`qkv.explain` computes — an
:class:`~qkv.explain.Attribution`, a list of them, an analysis report (the dict an analysis of
:data:`~qkv.explain.ANALYSES` returns), a faithfulness table, or a list mixing them — and
returns an :class:`ExplanationView`: displaying it in Jupyter draws it
(``_repr_html_``), ``.save("page.html")`` writes a self-contained page, ``.save_png(path)``
the saliency figure. Attributions are drawn by :mod:`qkv.views.saliency` (one row per method);
a report by its analysis' registered ``html``; a faithfulness table by
:func:`qkv.views.faithfulness.render_faithfulness_fragment`. Nothing is computed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["ExplanationView", "explanation_fragment", "show"]


def _kind(item: Any) -> str:
    """``"attribution"``, ``"report"`` or ``"faithfulness"``; a TypeError for anything else."""
    from qkv.explain.analysis import ANALYSES

    if hasattr(item, "subject") and hasattr(item, "scores") and hasattr(item, "to_dict"):
        return "attribution"
    if isinstance(item, Mapping):
        if "method" in item and "scores" in item and "tokens" in item:
            return "attribution"                            # an Attribution.to_dict()
        if "random" in item and ("methods" in item or "rows" in item):
            return "faithfulness"                           # a faithfulness to_dict()
        if item.get("kind") in ANALYSES:
            return "report"
        if "kind" in item:
            raise ValueError(f"no analysis is registered as {item['kind']!r} to draw this "
                             f"report; known: {', '.join(ANALYSES) or 'none'}")
    faithfulness = _faithfulness_kind(item)
    if faithfulness:
        return "faithfulness"
    raise TypeError(f"show() draws an Attribution, an analysis report (a dict with a "
                    f"registered 'kind'), a faithfulness result, or a list of them; got "
                    f"{type(item).__name__}")


def _faithfulness_kind(item: Any) -> bool:
    """Whether ``item`` is what :func:`qkv.explain.faithfulness` or
    :func:`~qkv.explain.faithfulness_table` returns."""
    from qkv.explain.faithfulness import FaithfulnessResult, FaithfulnessTable

    return isinstance(item, (FaithfulnessResult, FaithfulnessTable))


def _items(x: Any) -> list:
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError("show() needs something to draw; got an empty list")
        return list(x)
    return [x]


def explanation_fragment(x: Any) -> str:
    """The HTML fragment of ``x`` (see :func:`show`): every attribution in one saliency table
    (those explaining other tokens in a table of their own), then each report, each table."""
    from qkv.explain.analysis import ANALYSES
    from qkv.views.faithfulness import render_faithfulness_fragment
    from qkv.views.saliency import render_saliency_fragment

    parts: list[str] = []
    groups: dict[tuple, list] = {}
    order: list[tuple] = []
    for item in _items(x):
        kind = _kind(item)
        if kind == "attribution":
            key = _tokens_key(item)
            if key not in groups:
                groups[key] = []
                order.append(key)
                parts.append(key)                             # placeholder, filled below
            groups[key].append(item)
        elif kind == "report":
            parts.append(ANALYSES[item["kind"]].html(item))
        else:
            parts.append(render_faithfulness_fragment(item))
    return "\n".join(render_saliency_fragment(groups[p]) if isinstance(p, tuple) else p
                     for p in parts)


def _tokens_key(item: Any) -> tuple:
    data = item if isinstance(item, Mapping) else item.to_dict()
    return (tuple(data["sides"]), tuple(tuple(data["tokens"][s]) for s in data["sides"]),
            data["target"])


class ExplanationView:
    """What :func:`show` returns: draws itself in a notebook, saves a page or a figure."""

    def __init__(self, x: Any) -> None:
        self.items = _items(x)
        for item in self.items:
            _kind(item)                                       # refuse what cannot be drawn now

    def _repr_html_(self) -> str:
        return explanation_fragment(self.items)

    def html(self) -> str:
        """The HTML fragment (no ``<html>``)."""
        return explanation_fragment(self.items)

    def save(self, path: str | Path, *, title: str = "qkv · explain") -> Path:
        """Write a self-contained page with everything shown."""
        from qkv.views.html import page

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page(self.html(), title=title), encoding="utf-8")
        return path

    def save_png(self, path: str | Path, **options: Any) -> Path:
        """The saliency figure of the attributions shown
        (:func:`~qkv.views.saliency.save_saliency_png`)."""
        from qkv.views.saliency import save_saliency_png

        attributions = [item for item in self.items if _kind(item) == "attribution"]
        if not attributions:
            raise ValueError("there is no attribution to draw as a saliency figure")
        return save_saliency_png(attributions, path, **options)

    def __repr__(self) -> str:
        kinds = [_kind(item) for item in self.items]
        return f"ExplanationView({', '.join(kinds)})"


def show(x: Any) -> ExplanationView:
    """A notebook view of an explanation.

    Args:
        x: an :class:`~qkv.explain.Attribution` (or its ``to_dict()``), an analysis report, a
            faithfulness result, or a list of them (attributions of one subject share a table).

    Returns:
        an :class:`ExplanationView`; in Jupyter it displays itself.

    Raises:
        TypeError: something :mod:`qkv.explain` did not make.
        ValueError: a report whose analysis is not registered, an empty list.

    Example:
        >>> row = {"method": "m", "target": "label 'pos'", "sides": ["text"],
        ...        "tokens": {"text": ["I", "dog"]}, "scores": {"text": [0.5, 1.0]}}
        >>> "qkv-saliency" in show(row)._repr_html_()
        True
    """
    return ExplanationView(x)

