"""Intervention reports drawn: the activation-patching heatmap and the head-ablation table.

Both take the JSON-able reports of :mod:`qkv.explain.patching` (``"patch"``) and
:mod:`qkv.explain.interventions` (``"ablate"``) and give a self-contained HTML fragment (a table
with inline styles, every text escaped, no script) or a PNG drawn on matplotlib's Agg canvas.
Colours diverge around 0: blue for positive, red for negative.
"""

from __future__ import annotations

import contextlib
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from qkv.views.fonts import font_family_for

__all__ = ["patching_grid", "patching_html", "save_patching_figure", "ablation_html",
           "save_ablation_figure", "grid_html", "save_grid_figure", "cell_colour"]

_BLUE, _RED, _WHITE = (33, 102, 172), (178, 24, 43), (255, 255, 255)
_BOX = ("font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:13px;"
        "color:#222;margin:8px 0")
_SITES = {"residual": "the residual stream after each layer",
          "attention": "each attention module's output", "mlp": "each feed-forward output",
          "head": "each head's output (its slice of the merged heads, before W^O)"}


def cell_colour(value: float | None, scale: float) -> str:
    """``rgb(…)``: white at 0, blue toward ``+scale``, red toward ``−scale``; grey for ``None``.

    Example:
        >>> cell_colour(0.0, 1.0), cell_colour(1.0, 1.0), cell_colour(None, 1.0)
        ('rgb(255,255,255)', 'rgb(33,102,172)', 'rgb(230,230,230)')
    """
    if value is None or not math.isfinite(value):
        return "rgb(230,230,230)"
    t = max(-1.0, min(1.0, value / scale)) if scale > 0 else 0.0
    end = _BLUE if t >= 0 else _RED
    mix = [round(w + abs(t) * (e - w)) for w, e in zip(_WHITE, end)]
    return f"rgb({mix[0]},{mix[1]},{mix[2]})"


def _text(value: float | None) -> str:
    return "·" if value is None else f"{value:.2f}"


def grid_html(values: Sequence[Sequence[float | None]], rows: Sequence[str],
              columns: Sequence[str], *, scale: float, corner: str = "") -> str:
    """A ``<table>`` of coloured cells (:func:`cell_colour`), row and column labels escaped."""
    head = "".join(
        f'<th style="padding:2px 4px;font-weight:normal;writing-mode:vertical-rl;'
        f'transform:rotate(180deg);text-align:left;max-height:9em">{html.escape(str(c))}</th>'
        for c in columns)
    body = []
    for label, line in zip(rows, values):
        cells = "".join(
            f'<td title="{html.escape(repr(v))}" style="background:{cell_colour(v, scale)};'
            f'padding:2px 4px;text-align:right;min-width:2.4em;font-variant-numeric:tabular-nums;'
            f'color:{"#fff" if v is not None and abs(v) > 0.6 * scale else "#222"}">'
            f'{_text(v)}</td>' for v in line)
        body.append(f'<tr><th style="padding:2px 6px;text-align:right;font-weight:normal;'
                    f'white-space:nowrap">{html.escape(str(label))}</th>{cells}</tr>')
    return (f'<table style="border-collapse:collapse;font-size:12px"><tr>'
            f'<th style="text-align:right;padding:2px 6px">{html.escape(corner)}</th>{head}</tr>'
            f'{"".join(body)}</table>')


def _fonts(labels: Sequence[str]):
    import matplotlib

    family = font_family_for(labels)
    return (contextlib.nullcontext() if family is None
            else matplotlib.rc_context({"font.family": family}))


def save_grid_figure(values: Sequence[Sequence[float | None]], rows: Sequence[str],
                     columns: Sequence[str], path: str | Path, *, scale: float, title: str,
                     colorbar: str, xlabel: str = "", subtitle: str = "",
                     dpi: int = 120) -> Path:
    """A rows × columns heatmap (diverging, ``±scale``; missing cells grey) saved as PNG/SVG;
    ``subtitle`` is a second, smaller title line."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    grid = np.array([[np.nan if v is None else v for v in line] for line in values], dtype=float)
    R, C = grid.shape if grid.size else (len(rows), len(columns))
    labels = [*map(str, rows), *map(str, columns)]
    width = min(24.0, 3.0 + 0.32 * C + 0.07 * max(map(len, map(str, rows)), default=0))
    height = min(24.0, 1.8 + 0.3 * R)
    cmap = colormaps["RdBu"].with_extremes(bad="#e6e6e6")
    with _fonts(labels):
        figure = Figure(figsize=(width, height), layout="constrained")
        ax = figure.add_subplot()
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-scale, vmax=scale,
                          aspect="auto", interpolation="nearest")
        ax.set_xticks(range(C), [str(c) for c in columns], rotation=90, fontsize=8)
        ax.set_yticks(range(R), [str(r) for r in rows], fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
        figure.colorbar(image, ax=ax, label=colorbar)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=dpi)
    return path


# -- activation patching -----------------------------------------------------------------------


def patching_grid(report: Mapping) -> tuple[list, list[str], list[str]]:
    """A ``"patch"`` report's restored fractions as a 2-D grid: ``(values, rows, columns)``.

    ``(R, N)`` is drawn as is, ``(R, H)`` with heads as columns, ``(R, N, H)`` with one row per
    module and head, ``(R,)`` as one column.
    """
    values, over, rows = report["restored"], tuple(report["over"]), list(report["rows"])
    tokens = [str(t) for t in report["tokens"]]
    if over == ("layer", "position"):
        return values, rows, tokens
    if over == ("layer",):
        return [[v] for v in values], rows, ["all positions"]
    heads = [f"head {h}" for h in range(report["num_heads"])]
    if over == ("layer", "head"):
        return values, rows, heads
    grid, labels = [], []
    for name, per_position in zip(rows, values):                        # (N, H) each
        for h in range(report["num_heads"]):
            grid.append([cell[h] for cell in per_position])
            labels.append(f"{name} · head {h}")
    return grid, labels, tokens


def _patch_caption(report: Mapping) -> str:
    output = report["output"].replace("_", " ")
    if report.get("foil") is not None:
        output = f"logit difference against token {report['foil']}"
    return (f"clean {report['clean']:.4g} · corrupted {report['corrupted']:.4g} ({output}); "
            f"corruption: {report['corruption']['description']}")


def patching_html(report: Mapping) -> str:
    """The ``"patch"`` report as an HTML fragment: the restored fraction per cell."""
    grid, rows, columns = patching_grid(report)
    note = report.get("note")
    return (
        f'<div class="qkv-patch" style="{_BOX}">'
        f'<div style="font-weight:600">Activation patching · {html.escape(report["target"])}</div>'
        f'<div style="margin:2px 0 6px">Each cell: the corrupted run with '
        f'{html.escape(_SITES[report["site"]])} copied from the clean run there — the fraction '
        f'of the score restored, (patched − corrupted) / (clean − corrupted). 1 = fully '
        f'restored.</div>'
        f'<div style="margin:0 0 6px;color:#555">{html.escape(_patch_caption(report))}</div>'
        + (f'<div style="color:#a00">{html.escape(note)}</div>' if note else "")
        + grid_html(grid, rows, columns, scale=1.0) + "</div>")


def save_patching_figure(report: Mapping, path: str | Path, *, dpi: int = 120) -> Path:
    """The ``"patch"`` report as a heatmap PNG (or SVG by suffix)."""
    grid, rows, columns = patching_grid(report)
    return save_grid_figure(grid, rows, columns, path, scale=1.0,
                            title=f"activation patching ({report['site']}) · {report['target']}",
                            colorbar="restored fraction", dpi=dpi,
                            subtitle=_patch_caption(report),
                            xlabel="" if columns and columns[0].startswith("head") else "tokens")


# -- head ablation -----------------------------------------------------------------------------


def _scale(values) -> float:
    finite = [abs(v) for line in values for v in line if v is not None]
    return max(finite, default=0.0) or 1.0


def _top_html(top: Sequence[Mapping]) -> str:
    return ", ".join(f"{html.escape(str(t['name']))} {t['probability']:.3f}" for t in top) or "—"


def ablation_html(report: Mapping) -> str:
    """The ``"ablate"`` report as an HTML fragment: the head table, or before/after."""
    output = report["output"].replace("_", " ")
    title = (f'<div style="font-weight:600">Ablation ({html.escape(report["mode"])}) · '
             f'{html.escape(report["target"])}</div>')
    if "change" in report:
        heads = [f"head {h}" for h in range(report["num_heads"])]
        return (f'<div class="qkv-ablate" style="{_BOX}">{title}'
                f'<div style="margin:2px 0 6px">Each cell: the change of the target\'s {output} '
                f'when that head alone is ablated (baseline {report["baseline"]:.4g}); red = '
                f'the head supported the target.</div>'
                + grid_html(report["change"], report["rows"], heads,
                            scale=_scale(report["change"])) + "</div>")
    before, after = report["before"], report["after"]
    sites = "".join(f"<li>{html.escape(site)}</li>" for site in report["ablated"])
    return (f'<div class="qkv-ablate" style="{_BOX}">{title}'
            f'<div>Ablated:</div><ul style="margin:2px 0 6px">{sites}</ul>'
            f'<table style="border-collapse:collapse">'
            f'<tr><th></th><th style="text-align:left;padding:2px 8px">{html.escape(output)}'
            f'</th><th style="text-align:left;padding:2px 8px">prediction (top)</th></tr>'
            f'<tr><th style="text-align:right">before</th><td style="padding:2px 8px">'
            f'{before["score"]:.4g}</td><td style="padding:2px 8px">{_top_html(before["top"])}'
            f'</td></tr><tr><th style="text-align:right">after</th><td style="padding:2px 8px">'
            f'{after["score"]:.4g}</td><td style="padding:2px 8px">{_top_html(after["top"])}'
            f'</td></tr></table></div>')


def save_ablation_figure(report: Mapping, path: str | Path, *, dpi: int = 120) -> Path:
    """The ``"ablate"`` report as a PNG: the modules × heads heatmap, or before/after bars."""
    output = report["output"].replace("_", " ")
    if "change" in report:
        heads = [f"head {h}" for h in range(report["num_heads"])]
        return save_grid_figure(report["change"], report["rows"], heads, path,
                                scale=_scale(report["change"]),
                                title=f"head ablation ({report['mode']}) · {report['target']}",
                                subtitle=f"baseline {output} {report['baseline']:.4g}",
                                colorbar=f"change of {output}", dpi=dpi)
    from matplotlib.figure import Figure

    before, after = report["before"], report["after"]
    names = [str(t["name"]) for t in before["top"]]
    names += [str(t["name"]) for t in after["top"] if str(t["name"]) not in names]
    lookup = [{str(t["name"]): t["probability"] for t in part["top"]} for part in (before, after)]
    with _fonts(names):
        figure = Figure(figsize=(6.0, 1.5 + 0.35 * max(len(names), 1)), layout="constrained")
        ax = figure.add_subplot()
        y = np.arange(len(names))
        ax.barh(y - 0.2, [lookup[0].get(n, 0.0) for n in names], 0.4, label="before")
        ax.barh(y + 0.2, [lookup[1].get(n, 0.0) for n in names], 0.4, label="after ablation")
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.set_xlabel("probability")
        ax.legend(fontsize=8)
        ax.set_title(f"{report['target']}: {output} {before['score']:.3g} → "
                     f"{after['score']:.3g}", fontsize=10)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=dpi)
    return path
