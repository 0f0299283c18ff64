"""Attention heatmaps with matplotlib: one head, or a layers × heads grid, as PNG or SVG.

Rows are queries, columns are keys, the tokens on the axes; a cell's colour is the weight. The
figures are :class:`matplotlib.figure.Figure` objects drawn by the Agg canvas, never through
``pyplot``, so nothing here touches a global backend or opens a window.
"""

from __future__ import annotations

import contextlib
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from qkv.views.contract import (
    check_document,
    find_attention,
    kinds,
    layers_of,
    tokens_of,
)
from qkv.views.fonts import font_family_for, save_figure

__all__ = ["grid_figure", "head_figure", "save_heatmap"]

FORMATS = ("png", "svg")
MAX_LABELS = 60  # tick labels per axis; longer inputs label every n-th token
CMAP = "Blues"


def _fonts(tokens: Sequence[str]):
    """A matplotlib rc context with a CJK font first when ``tokens`` need one."""
    import matplotlib

    family = font_family_for(tokens)
    if family is None:
        return contextlib.nullcontext()
    return matplotlib.rc_context({"font.family": family})


def _label(ax, tokens: Sequence[str], axis: str, fontsize: float) -> None:
    step = max(1, -(-len(tokens) // MAX_LABELS))
    ticks = list(range(0, len(tokens), step))
    labels = [tokens[i] for i in ticks]
    if axis == "x":
        ax.set_xticks(ticks, labels, rotation=90, fontsize=fontsize)
    else:
        ax.set_yticks(ticks, labels, fontsize=fontsize)


def _draw(ax, weights: np.ndarray, query_tokens, key_tokens, *, labels: bool, fontsize: float):
    image = ax.imshow(weights, cmap=CMAP, vmin=0.0, vmax=max(float(weights.max()), 1e-12),
                      aspect="auto", interpolation="nearest")
    if labels:
        _label(ax, key_tokens, "x", fontsize)
        _label(ax, query_tokens, "y", fontsize)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    return image


def _weights(record: Mapping, head: int) -> np.ndarray:
    """One head's weights ``(T, S)`` as floats; a ValueError if any is missing or not finite
    (a NaN drawn as a pale cell would read as "no attention")."""
    weights = np.asarray(record["weights"][head], dtype=float)                  # (T, S)
    if not np.isfinite(weights).all():
        raise ValueError(f"attention {record['name']!r}, head {head}: weights must be finite "
                         f"numbers, got NaN, ±inf or null (NaN in the model?)")
    return weights


def head_figure(document: Mapping, name: str, head: int = 0):
    """A figure of one head's weights, query tokens down the side, key tokens along the bottom.

    Args:
        document: an attention document (:mod:`qkv.views.contract`).
        name: the attention's dotted name, e.g. ``"decoder.layers.1.cross_attention"``.
        head: which head.

    Returns:
        a :class:`matplotlib.figure.Figure`.

    Example:
        >>> from qkv.views.examples import tiny_document
        >>> figure = head_figure(tiny_document(), "layers.0.self_attention", head=1)
        >>> figure.axes[0].get_title()
        'layers.0.self_attention · head 1'
    """
    from matplotlib.figure import Figure

    document = check_document(document)
    record = find_attention(document, name)
    if isinstance(head, bool) or not isinstance(head, numbers.Integral):
        raise TypeError(f"head must be an int, got {type(head).__name__} {head!r}")
    if not 0 <= head < record["num_heads"]:
        raise ValueError(f"head must be in [0, {record['num_heads']}) for {name!r}, got {head}")
    weights = _weights(record, head)                                            # (T, S)
    query_tokens, key_tokens = tokens_of(document, record)
    T, S = weights.shape
    size = min(12.0, 2.0 + 0.3 * max(T, S))
    with _fonts([*query_tokens, *key_tokens]):
        figure = Figure(figsize=(size + 1.0, size), layout="constrained")
        ax = figure.add_subplot()
        image = _draw(ax, weights, query_tokens, key_tokens, labels=True, fontsize=9)
        ax.set_title(f"{name} · head {head}")
        ax.set_xlabel(f"keys ({record['key_side']})")
        ax.set_ylabel(f"queries ({record['query_side']})")
        figure.colorbar(image, ax=ax, label="weight")
    return figure


def grid_figure(document: Mapping, kind: str | None = None):
    """A layers × heads grid of one attention kind (default: the first present).

    Example:
        >>> from qkv.views.examples import tiny_document
        >>> figure = grid_figure(tiny_document())
        >>> len(figure.axes)                                       # 2 layers × 2 heads
        4
    """
    from matplotlib.figure import Figure

    document = check_document(document)
    kind = kinds(document)[0] if kind is None else kind
    records = layers_of(document, kind)
    rows, columns = len(records), max(record["num_heads"] for record in records)
    query_tokens, key_tokens = tokens_of(document, records[0])
    labels = max(len(query_tokens), len(key_tokens)) <= 40
    cell = 2.4 if labels else 1.6
    with _fonts([*query_tokens, *key_tokens]):
        figure = Figure(figsize=(cell * columns + 0.8, cell * rows + 0.6), layout="constrained")
        axes = figure.subplots(rows, columns, squeeze=False)
        for row, record in enumerate(records):
            queries, keys = tokens_of(document, record)
            for head in range(columns):
                ax = axes[row][head]
                if head >= record["num_heads"]:
                    ax.axis("off")
                    continue
                weights = _weights(record, head)                                # (T, S)
                _draw(ax, weights, queries, keys, labels=labels, fontsize=6)
                if labels and row < rows - 1:
                    ax.set_xticks([])
                if labels and head > 0:
                    ax.set_yticks([])
                if row == 0:
                    ax.set_title(f"head {head}", fontsize=9)
                if head == 0:
                    ax.set_ylabel(f"layer {record['layer']}", fontsize=9)
        figure.suptitle(f"{kind} attention: layers × heads")
    return figure


def save_heatmap(
    document: Mapping,
    path: str | Path,
    *,
    name: str | None = None,
    head: int = 0,
    kind: str | None = None,
    dpi: int = 120,
) -> Path:
    """Save a heatmap as PNG or SVG (picked by the suffix of ``path``).

    Args:
        document: an attention document.
        path: where to write; ``.png`` or ``.svg``.
        name: one attention's name for a single head (``head``); without it, the
            layers × heads grid of ``kind`` (default: the first kind present).
        dpi: resolution of a PNG.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Example:
        >>> import tempfile, pathlib
        >>> from qkv.views.examples import tiny_document
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> save_heatmap(tiny_document(), folder / "grid.svg").read_text()[:5]
        '<?xml'
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a Path, got {type(path).__name__}")
    if isinstance(dpi, bool) or not isinstance(dpi, numbers.Real):
        raise TypeError(f"dpi must be a number, got {type(dpi).__name__} {dpi!r}")
    if not dpi > 0:
        raise ValueError(f"dpi must be > 0, got {dpi!r}")
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(f"heatmap path must end in .png or .svg, got {path.name!r}")
    figure = (grid_figure(document, kind) if name is None
              else head_figure(document, name, head))
    return save_figure(figure, path, dpi=dpi, format=suffix)
