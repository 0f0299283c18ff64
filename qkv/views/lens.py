"""Views of a logit-lens report (:func:`qkv.explain.lens.logit_lens_report`): an HTML table and
a matplotlib figure.

Rows are the lens' layers, the last layer on top and the embeddings at the bottom (the residual
stream flows upward, as in nostalgebraist's plots); columns are the input positions (one
``pooled`` column, and a row of label probabilities, for a classifier). A cell shows the most
probable token read at that layer and position, shaded by its probability; hovering lists the
top k. The last column is the probability of the subject's target at its position.

These functions only draw a report: they never compute one, and need nothing but the dict.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["lens_html", "lens_figure", "save_lens_png"]

MAX_TOKEN = 12          # characters of a token drawn in a cell
_STYLE = """
.qkv-lens{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:13px;color:#222}
.qkv-lens table{border-collapse:collapse;margin:6px 0}
.qkv-lens th,.qkv-lens td{border:1px solid #ddd;padding:2px 6px;text-align:center;
white-space:nowrap;font-weight:normal}
.qkv-lens thead th{background:#f4f4f4;font-family:ui-monospace,monospace}
.qkv-lens tbody th{background:#f4f4f4;text-align:right}
.qkv-lens td.tok{font-family:ui-monospace,monospace}
.qkv-lens td.target{background:#fff7e6}
.qkv-lens .note{color:#666;font-size:12px;margin:2px 0}
.qkv-lens caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0}
"""


def _show(token: object) -> str:
    """A token as drawn: visible line breaks and tabs, cut to :data:`MAX_TOKEN` characters."""
    text = str(token).replace("\n", "\\n").replace("\t", "\\t")
    return text if len(text) <= MAX_TOKEN else text[: MAX_TOKEN - 1] + "…"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _shade(probability: float) -> str:
    alpha = max(0.0, min(1.0, float(probability)))
    colour = "#fff" if alpha > 0.55 else "#222"
    return f"background:rgba(33,113,181,{alpha:.3f});color:{colour}"


def _check(report: Mapping[str, Any]) -> None:
    if not isinstance(report, Mapping) or report.get("kind") != "logit-lens":
        kind = report.get("kind") if isinstance(report, Mapping) else type(report).__name__
        raise ValueError(f"expected a logit-lens report (kind 'logit-lens'), got {kind!r}")


def lens_html(report: Mapping[str, Any]) -> str:
    """A self-contained HTML fragment (inline CSS, no script, every token escaped).

    Example:
        >>> report = {"kind": "logit-lens", "target": "next token '<b>'", "readout": "output layer",
        ...     "pre_norm": True, "approximation": None, "stack": "layers", "side": "text",
        ...     "layers": ["embeddings", "layer 0"], "positions": ["<script>"],
        ...     "top": [[[{"id": 1, "token": "a", "probability": 0.2}]],
        ...             [[{"id": 2, "token": "<b>", "probability": 0.9}]]],
        ...     "final": [{"id": 2, "token": "<b>"}], "final_probability": [[0.1], [0.9]],
        ...     "target_token": None}
        >>> fragment = lens_html(report)
        >>> "<script>" in fragment, "&lt;script&gt;" in fragment
        (False, True)
    """
    _check(report)
    view_id = f"qkv-lens-{uuid.uuid4().hex[:12]}"
    layers, positions, top = report["layers"], report["positions"], report["top"]
    target = report.get("target_token")
    parts = [f'<div class="qkv-lens" id="{view_id}"><style>{_STYLE}</style>']
    readout = report["readout"] + (" after the final norm" if report.get("pre_norm") else "")
    parts.append(f'<p class="note">Logit lens (nostalgebraist, 2020) · {_e(report["target"])} · '
                 f'read through the {_e(readout)} · {_e(report["stack"])}</p>')
    if report.get("approximation"):
        parts.append(f'<p class="note">Approximation: {_e(report["approximation"])}.</p>')
    parts.append('<table><caption>most probable token at each layer (shade = its '
                 'probability; hover for the top k)</caption><thead><tr><th>layer</th>')
    parts += [f'<th title="{_e(token)}">{_e(_show(token))}</th>' for token in positions]
    if target is not None:
        parts.append(f'<th title="probability of {_e(target["token"])} at position '
                     f'{target["position"]}">p({_e(_show(target["token"]))})</th>')
    parts.append("</tr></thead><tbody>")
    for row in reversed(range(len(layers))):
        parts.append(f"<tr><th>{_e(layers[row])}</th>")
        for column in range(len(positions)):
            cell = top[row][column]
            best = cell[0]
            tip = "\n".join(f"{entry['token']}  {entry['probability']:.3f}" for entry in cell)
            parts.append(f'<td class="tok" style="{_shade(best["probability"])}" '
                         f'title="{_e(tip)}">{_e(_show(best["token"]))}</td>')
        if target is not None:
            probability = target["probability"][row]
            parts.append(f'<td class="target" title="rank {target["rank"][row] + 1}">'
                         f'{probability:.3f}</td>')
        parts.append("</tr>")
    parts.append("</tbody></table>")
    if "label_probabilities" in report:
        labels = report["labels"]
        parts.append("<table><caption>label probabilities per layer</caption><thead><tr>"
                     "<th>layer</th>")
        parts += [f"<th>{_e(label)}</th>" for label in labels]
        parts.append("</tr></thead><tbody>")
        for row in reversed(range(len(layers))):
            parts.append(f"<tr><th>{_e(layers[row])}</th>")
            parts += [f'<td style="{_shade(p)}">{p:.3f}</td>'
                      for p in report["label_probabilities"][row]]
            parts.append("</tr>")
        parts.append("</tbody></table>")
    parts.append("</div>")
    return "".join(parts)


def lens_figure(report: Mapping[str, Any]):
    """A :class:`matplotlib.figure.Figure`: the layers × positions grid shaded by the top
    token's probability (the token written in the cell while there is room), and beside it the
    target's probability per layer."""
    from matplotlib.figure import Figure

    from qkv.views.heatmap import _fonts

    _check(report)
    layers, positions, top = report["layers"], report["positions"], report["top"]
    classifier = "label_probabilities" in report
    if classifier:
        columns = list(report["labels"])
        grid = [list(row) for row in report["label_probabilities"]]      # (L + 1, C)
        words = None
    else:
        columns = list(positions)
        grid = [[cell[0]["probability"] for cell in row] for row in top]  # (L + 1, T)
        words = [[cell[0]["token"] for cell in row] for row in top]
    target = report.get("target_token")
    rows, width = len(layers), len(columns)
    write = width <= 30 and rows <= 40
    tokens = columns + ([w for row in words for w in row] if words else [])
    with _fonts(tokens):
        figure = Figure(figsize=(min(18.0, 2.5 + 0.9 * width + (2.5 if target else 0)),
                                 min(14.0, 1.5 + 0.4 * rows)), layout="constrained")
        axes = figure.subplots(1, 2 if target else 1, squeeze=False, sharey=True,
                               gridspec_kw={"width_ratios": [max(width, 1), 2]} if target else {})
        ax = axes[0][0]
        image = ax.imshow(grid, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto",
                          origin="lower", interpolation="nearest")
        ax.set_yticks(range(rows), layers, fontsize=8)
        ax.set_xticks(range(width), [_show(c) for c in columns], rotation=90, fontsize=8)
        if write and words is not None:
            for row in range(rows):
                for column in range(width):
                    p = grid[row][column]
                    ax.text(column, row, _show(words[row][column]), ha="center", va="center",
                            fontsize=7, color="white" if p > 0.55 else "black")
        ax.set_title("label probability per layer" if classifier else
                     "logit lens: top token per layer (shade = its probability)", fontsize=10)
        figure.colorbar(image, ax=ax, label="probability", shrink=0.8)
        if target:
            side = axes[0][1]
            side.plot(target["probability"], range(rows), marker="o")       # rows shared
            side.set_xlim(0.0, 1.0)
            side.tick_params(axis="y", labelleft=False)
            side.set_xlabel(f"p({_show(target['token'])})", fontsize=9)
            side.set_title("target", fontsize=10)
        figure.suptitle(str(report["target"]), fontsize=10)
    return figure


def save_lens_png(report: Mapping[str, Any], path: str | Path, *, dpi: int = 120) -> Path:
    """Save :func:`lens_figure` as a PNG at ``path``; returns the path."""
    from qkv.views.fonts import save_figure

    return save_figure(lens_figure(report), path, dpi=dpi, format="png")
