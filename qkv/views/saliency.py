"""Saliency views: the input's tokens coloured by how much each moved the explained target.

One row per attribution method, one column per token (the sides one after the other: a
translation's source, then the target prefix), so that methods read side by side and the same
token sits in the same column. The target is named above the table ("label 'de'", "next token
'dog'"); hovering a token gives its exact score.

Colours, normalised per method (each row's legend says how):

* signed scores (gradient methods: some score < 0, or ``details["signed"]``) on a *diverging*
  scale: ``score / max |score|`` in ``[-1, 1]``, red below zero, white at zero, blue above;
* non-negative scores (attention-based methods) on a *sequential* scale: ``score / max score``
  in ``[0, 1]``, white to blue.

The maximum is taken over the ordinary tokens when there are any: special tokens (``<bos>``,
``[CLS]``, ``<eos>``…) often soak up attention and would wash every other colour out; they are
outlined, and their colour is clipped to the scale.

The data is prepared by a pure function (:func:`saliency_data`, JSON-able) and drawn by
:func:`render_saliency_fragment` (HTML: a page, a notebook cell, the explorer's Explain tab,
``qkv explain -o``) or :func:`saliency_figure` (matplotlib: :func:`save_saliency_png`, for
papers). Every token and name is HTML-escaped; nothing is loaded from the network.

The views take :class:`qkv.explain.Attribution` objects or their ``to_dict()`` dicts.
"""

from __future__ import annotations

import html
import math
import numbers
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["colour", "normalise", "render_saliency_fragment", "render_saliency_html",
           "saliency_data", "saliency_figure", "save_saliency_html", "save_saliency_png"]

WHITE = (255, 255, 255)
POSITIVE = (31, 102, 180)     # the views' blue (qkv_views.css .qkv-pos)
NEGATIVE = (214, 39, 40)      # the views' red (.qkv-neg)
FORMATS = ("png", "svg")


# -- data ------------------------------------------------------------------------------------------

def _as_dict(attribution: Any) -> dict:
    """An Attribution (or its ``to_dict()``) as a dict with ``"special"`` by side where known."""
    if isinstance(attribution, Mapping):
        data = dict(attribution)
        missing = [key for key in ("method", "target", "sides", "tokens", "scores")
                   if key not in data]
        if missing:
            raise ValueError(f"an attribution dict needs the keys of Attribution.to_dict(); "
                             f"{missing} missing (got {sorted(data)})")
        return data
    if not hasattr(attribution, "to_dict") or not hasattr(attribution, "subject"):
        raise TypeError(f"expected a qkv.explain.Attribution or its to_dict(), got "
                        f"{type(attribution).__name__}")
    data = attribution.to_dict()
    special = getattr(attribution.subject, "special", None)
    if special is not None:
        data["special"] = {side: values.tolist()
                           for side, values in attribution.subject.split(special).items()}
    return data


def _as_list(attributions: Any) -> list:
    if isinstance(attributions, Mapping) or hasattr(attributions, "subject"):
        return [attributions]
    if isinstance(attributions, (str, bytes)) or not isinstance(attributions, Sequence):
        raise TypeError(f"attributions must be an Attribution, its to_dict(), or a list of "
                        f"them, got {type(attributions).__name__}")
    if not attributions:
        raise ValueError("attributions is empty: give at least one")
    return list(attributions)


def _finite(x: Any) -> float | None:
    x = None if x is None else float(x)
    return x if x is not None and math.isfinite(x) else None


def normalise(scores: Sequence[float | None], special: Sequence[bool] | None = None,
              signed: bool | None = None) -> dict:
    """One method's scores on its colour scale.

    Args:
        scores: ``(N,)`` scores (``None`` or NaN where a method has none).
        special: ``(N,)``, ``True`` at special tokens, left out of the maximum when some token
            is not special.
        signed: force the diverging (``True``) or sequential (``False``) scale; default:
            diverging when some score is negative.

    Returns:
        ``{"signed", "scale", "values"}``: ``values[i] = scores[i] / scale`` clipped to
        ``[-1, 1]`` (signed) or ``[0, 1]``, ``None`` where the score is; ``scale`` is
        ``max |score|`` or ``max score`` over the ordinary tokens (1 where that is 0).

    Example:
        >>> normalise([0.5, 2.0, 1.0], special=[False, False, True])["values"]
        [0.25, 1.0, 0.5]
        >>> normalise([-1.0, 0.5, 2.0], special=[False, False, True])    # [CLS] clipped
        {'signed': True, 'scale': 1.0, 'values': [-1.0, 0.5, 1.0]}
    """
    values = [_finite(x) for x in scores]
    special = [False] * len(values) if special is None else [bool(s) for s in special]
    if len(special) != len(values):
        raise ValueError(f"special must have one entry per score ({len(values)}), got "
                         f"{len(special)}")
    present = [x for x in values if x is not None]
    if signed is None:
        signed = any(x < 0 for x in present)
    ordinary = [x for x, s in zip(values, special) if x is not None and not s] or present
    scale = max((abs(x) if signed else x for x in ordinary), default=0.0)
    scale = scale if scale > 0 else 1.0
    low = -1.0 if signed else 0.0
    return {"signed": bool(signed), "scale": scale,
            "values": [None if x is None else min(1.0, max(low, x / scale)) for x in values]}


def saliency_data(attributions: Any) -> dict:
    """What the saliency views draw, JSON-able: one row per attribution.

    Args:
        attributions: an :class:`~qkv.explain.Attribution`, its ``to_dict()``, or a list of them.

    Returns:
        ``{"target": the target in words if all rows share it (else None), "rows": [{"method",
        "target", "signed", "scale", "details", "sides": [{"side", "tokens", "scores",
        "values", "special"}]}]}``; ``values`` are :func:`normalise`'s.
    """
    rows = []
    for attribution in _as_list(attributions):
        data = _as_dict(attribution)
        sides = list(data["sides"])
        tokens = [str(t) for side in sides for t in data["tokens"][side]]
        scores = [s for side in sides for s in data["scores"][side]]
        if len(tokens) != len(scores):
            raise ValueError(f"{data['method']}: {len(tokens)} tokens but {len(scores)} scores")
        special_by_side = data.get("special") or {}
        special = [bool(x) for side in sides
                   for x in special_by_side.get(side, [False] * len(data["tokens"][side]))]
        details = dict(data.get("details") or {})
        forced = details.get("signed")
        scale = normalise(scores, special, forced if isinstance(forced, bool) else None)
        out_sides, start = [], 0
        for side in sides:
            end = start + len(data["tokens"][side])
            out_sides.append({"side": side, "tokens": tokens[start:end],
                              "scores": [_finite(s) for s in scores[start:end]],
                              "values": scale["values"][start:end],
                              "special": special[start:end]})
            start = end
        rows.append({"method": str(data["method"]), "target": str(data["target"]),
                     "signed": scale["signed"], "scale": scale["scale"], "details": details,
                     "sides": out_sides})
    targets = {row["target"] for row in rows}
    return {"target": targets.pop() if len(targets) == 1 else None, "rows": rows}


def colour(value: float | None, signed: bool) -> tuple[int, int, int]:
    """The RGB colour of a normalised score: white at 0, blue at +1, red at -1 (signed).

    Example:
        >>> colour(0.0, False), colour(1.0, False), colour(-1.0, True)
        ((255, 255, 255), (31, 102, 180), (214, 39, 40))
    """
    if value is None:
        return (238, 238, 238)
    end = NEGATIVE if value < 0 and signed else POSITIVE
    v = min(1.0, abs(value))
    return tuple(round(w + v * (e - w)) for w, e in zip(WHITE, end))


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _number(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "—"
    return f"{x:.{digits}g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.3e}"


# -- HTML ------------------------------------------------------------------------------------------

_CSS = """
.qkv-saliency { font: 13px/1.4 system-ui, "Noto Sans", "Noto Sans CJK SC", sans-serif;
  color: #222; max-width: 100%; overflow-wrap: anywhere; }
.qkv-saliency .qkv-sal-title { font-weight: 600; margin: 4px 0; }
.qkv-saliency .qkv-sal-scroll { overflow-x: auto; max-width: 100%; }
.qkv-saliency table { border-collapse: separate; border-spacing: 2px; }
.qkv-saliency th { text-align: left; font-weight: 600; padding: 2px 6px; white-space: nowrap; }
.qkv-saliency .qkv-sal-method { position: sticky; left: 0; z-index: 1; background: #fff;
  min-width: 15em; max-width: 20em; white-space: normal; vertical-align: top; }
.qkv-saliency .qkv-sal-side { color: #666; font-weight: normal; font-size: 11px; }
.qkv-saliency .qkv-sal-token { padding: 2px 4px; border-radius: 3px; white-space: pre;
  text-align: center; border: 1px solid transparent; cursor: default; }
.qkv-saliency .qkv-sal-special { border: 1px dashed #888; font-style: italic; }
.qkv-saliency .qkv-sal-legend { color: #555; font-size: 11px; font-weight: normal; }
.qkv-saliency .qkv-sal-swatch { display: inline-block; width: 60px; height: 10px;
  vertical-align: middle; border: 1px solid #ccc; margin-right: 4px; }
.qkv-saliency .qkv-sal-details { color: #555; font-size: 11px; font-weight: normal; }
.qkv-saliency .qkv-sal-note { color: #555; font-size: 12px; margin: 4px 0; }
"""


def _swatch(signed: bool) -> str:
    stops = ([_hex(NEGATIVE), _hex(WHITE), _hex(POSITIVE)] if signed
             else [_hex(WHITE), _hex(POSITIVE)])
    return (f'<span class="qkv-sal-swatch" style="background: linear-gradient(to right, '
            f'{", ".join(stops)})"></span>')


def _legend(row: dict) -> str:
    if row["signed"]:
        words = f"signed: score ÷ max |score| ({_number(row['scale'])}), red &lt; 0 &lt; blue"
    else:
        words = f"score ÷ max score ({_number(row['scale'])}), white 0 → blue"
    return f'<div class="qkv-sal-legend">{_swatch(row["signed"])}{words}</div>'


def _details(details: Mapping) -> str:
    shown = []
    for key, value in details.items():
        if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
            continue
        text = _number(_finite(value)) if isinstance(value, numbers.Real) else value
        shown.append(f"{key} = {text}")
    return "<br>".join(html.escape(line) for line in shown)


def _token_cell(row: dict, side: dict, index: int, offset: int) -> str:
    token, score, value = side["tokens"][index], side["scores"][index], side["values"][index]
    rgb = colour(value, row["signed"])
    text_colour = "#fff" if value is not None and abs(value) > 0.55 else "#222"
    special = side["special"][index]
    title = (f"{token!r} ({side['side']} {index}): score {_number(score, 6)}"
             f" · {'signed' if row['signed'] else 'normalised'} {_number(value, 3)}"
             f"{' · special token' if special else ''}")
    classes = "qkv-sal-token" + (" qkv-sal-special" if special else "")
    return (f'<td class="{classes}" data-method="{html.escape(row["method"], quote=True)}" '
            f'data-side="{html.escape(side["side"], quote=True)}" data-index="{index}" '
            f'data-position="{offset + index}" '
            f'data-score="{"" if score is None else repr(score)}" '
            f'data-value="{"" if value is None else repr(value)}" '
            f'style="background: {_hex(rgb)}; color: {text_colour}" '
            f'title="{html.escape(title, quote=True)}">{html.escape(token)}</td>')


def render_saliency_fragment(attributions: Any, *, view_id: str | None = None) -> str:
    """The saliency table as an HTML fragment (no ``<html>``), its style scoped to its ``div``.

    Args:
        attributions: an Attribution, its ``to_dict()``, or a list of them (one row each).
        view_id: the container's DOM id; default a fresh ``qkv-saliency-<hex>``.

    Example:
        >>> row = {"method": "m", "target": "label 'pos'", "sides": ["text"],
        ...        "tokens": {"text": ["<b>", "dog"]}, "scores": {"text": [0.5, 1.0]}}
        >>> fragment = render_saliency_fragment(row, view_id="s1")
        >>> "&lt;b&gt;" in fragment and "<b>" not in fragment.split("</style>")[1]
        True
    """
    data = saliency_data(attributions)
    view_id = view_id or f"qkv-saliency-{uuid.uuid4().hex[:12]}"
    parts = [f'<div class="qkv-saliency" id="{html.escape(view_id, quote=True)}">',
             f"<style>{_CSS}</style>"]
    target = data["target"]
    if target is not None:
        parts.append(f'<div class="qkv-sal-title">What made the model give '
                     f'<span class="qkv-sal-target">{html.escape(target)}</span></div>')
    first = data["rows"][0]["sides"]
    parts.append('<div class="qkv-sal-scroll"><table class="qkv-sal-table">')
    if len(first) > 1:                      # a header naming the sides over their tokens
        header = "".join(f'<th class="qkv-sal-side" colspan="{len(side["tokens"])}">'
                         f'{html.escape(side["side"])}</th>' for side in first)
        parts.append(f'<tr><th class="qkv-sal-method"></th>{header}</tr>')
    for row in data["rows"]:
        details = _details(row["details"])
        head = html.escape(row["method"]) + _legend(row)
        if target is None:
            head += f'<div class="qkv-sal-details">{html.escape(row["target"])}</div>'
        if details:
            head += (f'<details class="qkv-sal-details"><summary>details</summary>'
                     f'{details}</details>')
        cells, offset = [], 0
        for side in row["sides"]:
            cells += [_token_cell(row, side, i, offset) for i in range(len(side["tokens"]))]
            offset += len(side["tokens"])
        method = html.escape(row["method"], quote=True)
        parts.append(f'<tr class="qkv-sal-row" data-method="{method}"'
                     f' data-signed="{str(row["signed"]).lower()}" data-scale="{row["scale"]!r}">'
                     f'<th class="qkv-sal-method">{head}</th>{"".join(cells)}</tr>')
    parts.append("</table></div>")
    parts.append('<p class="qkv-sal-note">Each row is normalised on its own (its legend says '
                 'by what); special tokens (outlined) are left out of the maximum and clipped. '
                 'Hover a token for its exact score.</p>')
    parts.append("</div>\n")
    return "\n".join(parts)


def render_saliency_html(attributions: Any, *, title: str | None = None,
                         extra: str = "") -> str:
    """A self-contained page: :func:`render_saliency_fragment`, then ``extra`` HTML (e.g. the
    fragments of analyses), titled by the target."""
    from qkv.views.html import page

    data = saliency_data(attributions)
    title = title or f"qkv · explain {data['target'] or ''}".strip()
    return page(render_saliency_fragment(attributions) + extra, title=title)


def save_saliency_html(attributions: Any, path: str | Path, **options: Any) -> Path:
    """Write :func:`render_saliency_html` to ``path`` (UTF-8); returns it as a Path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_saliency_html(attributions, **options), encoding="utf-8")
    return path


# -- matplotlib ------------------------------------------------------------------------------------

def saliency_figure(attributions: Any):
    """A figure for papers: one row per method, one column per token, the colour scales of the
    HTML view (``RdBu``-like diverging, ``Blues``-like sequential), tokens along the bottom and
    a line between sides.

    Returns:
        a :class:`matplotlib.figure.Figure` (drawn without ``pyplot``).
    """
    import contextlib

    import matplotlib
    import numpy as np
    from matplotlib.colors import LinearSegmentedColormap
    from matplotlib.figure import Figure

    from qkv.views.fonts import font_family_for

    data = saliency_data(attributions)
    rows = data["rows"]
    tokens = [t for side in rows[0]["sides"] for t in side["tokens"]]
    N = len(tokens)
    unit = [tuple(c / 255 for c in rgb) for rgb in (NEGATIVE, WHITE, POSITIVE)]
    diverging = LinearSegmentedColormap.from_list("qkv-diverging", unit)
    sequential = LinearSegmentedColormap.from_list("qkv-sequential", unit[1:])
    family = font_family_for(tokens)
    fonts = (contextlib.nullcontext() if family is None
             else matplotlib.rc_context({"font.family": family}))
    width = min(24.0, max(5.0, 2.2 + 0.42 * N))
    height = 0.9 + 0.38 * len(rows) + 0.07 * max(len(t) for t in tokens)
    with fonts:
        figure = Figure(figsize=(width, height), layout="constrained")
        axes = figure.subplots(len(rows), 1, squeeze=False)[:, 0]
        for ax, row in zip(axes, rows):
            values = np.array([np.nan if v is None else v for side in row["sides"]
                               for v in side["values"]], dtype=float)[None]       # (1, N)
            if values.shape[1] != N:
                raise ValueError("every attribution of one figure must explain the same tokens")
            cmap = diverging if row["signed"] else sequential
            ax.imshow(values, cmap=cmap, vmin=-1.0 if row["signed"] else 0.0, vmax=1.0,
                      aspect="auto", interpolation="nearest")
            ax.set_yticks([0], [row["method"]], fontsize=9)
            ax.set_xticks([])
            scale = (f"±{_number(row['scale'], 3)}" if row["signed"]
                     else f"0…{_number(row['scale'], 3)}")
            ax.text(1.005, 0.5, scale, transform=ax.transAxes, va="center", fontsize=7,
                    color="#555")
            boundary = 0
            for side in row["sides"][:-1]:
                boundary += len(side["tokens"])
                ax.axvline(boundary - 0.5, color="#222", linewidth=1.5)
        bottom = axes[-1]
        rotation = 0 if N <= 8 and max(len(t) for t in tokens) <= 6 else 90
        bottom.set_xticks(range(N), tokens, rotation=rotation, fontsize=8)
        special = [x for side in rows[0]["sides"] for x in side["special"]]
        for label, is_special in zip(bottom.get_xticklabels(), special):
            if is_special:                                   # left out of the maximum
                label.set_color("#888")
                label.set_fontstyle("italic")
        if len(rows[0]["sides"]) > 1:
            top, start = axes[0], 0
            for side in rows[0]["sides"]:
                middle = start + (len(side["tokens"]) - 1) / 2
                top.text(middle, -0.75, side["side"], ha="center", va="bottom", fontsize=8,
                         color="#555")
                start += len(side["tokens"])
        if data["target"]:
            figure.suptitle(f"explaining {data['target']}", fontsize=10)
    return figure


def save_saliency_png(attributions: Any, path: str | Path, *, dpi: int = 150) -> Path:
    """Save :func:`saliency_figure` as PNG or SVG (by the suffix of ``path``); returns it."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a Path, got {type(path).__name__}")
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(f"the figure's path must end in .png or .svg, got {path.name!r}")
    if isinstance(dpi, bool) or not isinstance(dpi, numbers.Real) or not dpi > 0:
        raise ValueError(f"dpi must be a number > 0, got {dpi!r}")
    from qkv.views.fonts import save_figure

    figure = saliency_figure(attributions)
    return save_figure(figure, path, dpi=dpi, format=suffix)
