"""Views of a feed-forward memories report (:func:`qkv.explain.memories.memories_report`): an
HTML fragment and a matplotlib figure.

The fragment shows each layer's feed-forward total for the target, the neurons that pushed it
up most and those that pushed it down most — activation, the value's score for the target,
their product, the tokens the value promotes and suppresses — and, when a corpus was searched,
each neuron's top-activating contexts with the token highlighted. The figure draws the same
contributions as bars. Both only draw the report.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qkv.views.lens import _show

__all__ = ["memories_html", "memories_figure", "save_memories_png"]

_STYLE = """
.qkv-memories{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:13px;color:#222}
.qkv-memories table{border-collapse:collapse;margin:6px 0}
.qkv-memories th,.qkv-memories td{border:1px solid #ddd;padding:2px 6px;text-align:left;
vertical-align:top}
.qkv-memories th{background:#f4f4f4;font-weight:normal}
.qkv-memories td.num{text-align:right;font-family:ui-monospace,monospace}
.qkv-memories .tok{font-family:ui-monospace,monospace;background:#eef3fb;border-radius:3px;
padding:0 3px;margin-right:3px;white-space:pre}
.qkv-memories .neg{background:#fbeeee}
.qkv-memories .hit{background:#ffd966;font-weight:600}
.qkv-memories .bar{display:inline-block;height:10px;vertical-align:middle}
.qkv-memories .note{color:#666;font-size:12px;margin:2px 0}
.qkv-memories caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0}
.qkv-memories .ctx{font-family:ui-monospace,monospace;white-space:pre-wrap;font-size:12px}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _check(report: Mapping[str, Any]) -> None:
    if not isinstance(report, Mapping) or report.get("kind") != "memories":
        kind = report.get("kind") if isinstance(report, Mapping) else type(report).__name__
        raise ValueError(f"expected a memories report (kind 'memories'), got {kind!r}")


def _bar(value: float, scale: float) -> str:
    width = 0 if scale <= 0 else round(80 * abs(value) / scale)
    colour = "#2171b5" if value >= 0 else "#cb181d"
    return f'<span class="bar" style="width:{width}px;background:{colour}"></span>'


def _tokens(entries: Sequence[Mapping[str, Any]], negative: bool = False) -> str:
    cls = "tok neg" if negative else "tok"
    return "".join(f'<span class="{cls}" title="{entry["score"]:.3f}">{_e(_show(entry["token"]))}'
                   f"</span>" for entry in entries)


def _context(context: Mapping[str, Any]) -> str:
    window, where = context["window"], context["window_position"]
    pieces = [f'<span class="hit">{_e(token)}</span>' if index == where else _e(token)
              for index, token in enumerate(window)]
    source = f"{_e(context['source'])} → " if context.get("source") else ""
    return (f'<div class="ctx" title="{_e(context.get("text") or "")}">{source}'
            f'{" ".join(pieces)}  <b>{context["activation"]:.3f}</b></div>')


def _neuron_table(rows: Sequence[Mapping[str, Any]], caption: str, scale: float) -> str:
    if not rows:
        return ""
    contexts = any("contexts" in row for row in rows)
    parts = [f"<table><caption>{_e(caption)}</caption><tr><th>layer · neuron</th>"
             "<th>activation</th><th>value score</th><th>contribution</th>"
             "<th>value promotes</th><th>value suppresses</th>"
             + ("<th>top-activating contexts</th>" if contexts else "") + "</tr>"]
    for row in rows:
        parts.append(
            f'<tr><td>L{row["layer"]} · n{row["neuron"]}</td>'
            f'<td class="num">{row["activation"]:.3f}</td>'
            f'<td class="num">{row["value_score"]:.3f}</td>'
            f'<td class="num">{_bar(row["contribution"], scale)} {row["contribution"]:+.4f}</td>'
            f'<td>{_tokens(row.get("promotes", []))}</td>'
            f'<td>{_tokens(row.get("suppresses", []), negative=True)}</td>')
        if contexts:
            parts.append("<td>" + "".join(_context(c) for c in row.get("contexts", []))
                         + "</td>")
        parts.append("</tr>")
    parts.append("</table>")
    return "".join(parts)


def memories_html(report: Mapping[str, Any]) -> str:
    """A self-contained HTML fragment (inline CSS, no script, every token escaped).

    Example:
        >>> row = {"layer": 0, "neuron": 3, "activation": 1.0, "value_score": 0.5,
        ...        "contribution": 0.5, "promotes": [{"id": 1, "token": "<script>", "score": 2.0}],
        ...        "suppresses": []}
        >>> report = {"kind": "memories", "target": "next token 'dog'", "readout": "output layer",
        ...     "exact": True, "pre_norm": True, "through_final_norm": True, "stack": "layers",
        ...     "num_layers": 1, "d_ff": 4, "layer_totals": [0.5], "bias": [0.0], "top": [row],
        ...     "against": [], "per_layer": [[row]], "contexts_searched": False}
        >>> fragment = memories_html(report)
        >>> "<script>" in fragment, "&lt;script&gt;" in fragment
        (False, True)
    """
    _check(report)
    view_id = f"qkv-memories-{uuid.uuid4().hex[:12]}"
    rows = list(report["top"]) + list(report["against"])
    scale = max([abs(row["contribution"]) for row in rows] + [1e-12])
    parts = [f'<div class="qkv-memories" id="{view_id}"><style>{_STYLE}</style>',
             f'<p class="note">Feed-forward memories (Geva et al., 2021; 2022) · '
             f'{_e(report["target"])} · values read through the {_e(report["readout"])}'
             + (" and the final norm's linear part" if report.get("through_final_norm") else "")
             + f' · {_e(report["stack"])}, d_ff = {report["d_ff"]}</p>',
             '<p class="note">contribution = activation × value score'
             + (" / σ (the final norm's scale): per layer the neurons and bias add up to the "
                "feed-forward's exact share of the target logit"
                if report.get("exact") else
                ": the value's direct reading, not an exact share of the output (post-norm "
                "layers, a pooler or a similarity sit between)") + ".</p>"]
    totals = report["layer_totals"]
    total_scale = max([abs(t) for t in totals] + [1e-12])
    parts.append("<table><caption>feed-forward total per layer</caption>")
    parts += [f'<tr><th>layer {index}</th><td class="num">{_bar(total, total_scale)} '
              f"{total:+.4f}</td></tr>" for index, total in enumerate(totals)]
    parts.append("</table>")
    parts.append(_neuron_table(report["top"], "neurons that pushed the target up most", scale))
    parts.append(_neuron_table(report["against"], "neurons that pushed it down most", scale))
    if report.get("contexts_searched") is False:
        parts.append('<p class="note">No corpus given: pass corpus= (texts) for each neuron\'s '
                     "top-activating contexts.</p>")
    parts.append("</div>")
    return "".join(parts)


def memories_figure(report: Mapping[str, Any]):
    """A :class:`matplotlib.figure.Figure`: the top and bottom neurons' contributions as bars
    (labelled with the tokens their values promote), and each layer's total."""
    from matplotlib.figure import Figure

    from qkv.views.heatmap import _fonts

    _check(report)
    rows = list(report["top"]) + list(reversed(report["against"]))
    labels = []
    for row in rows:
        promoted = " ".join(_show(entry["token"]) for entry in row.get("promotes", [])[:3])
        labels.append(f"L{row['layer']} n{row['neuron']}  {promoted}")
    totals = report["layer_totals"]
    with _fonts(labels):
        figure = Figure(figsize=(10.0, 1.5 + 0.28 * max(len(rows), len(totals))),
                        layout="constrained")
        left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1]})
        values = [row["contribution"] for row in rows]
        positions = list(range(len(rows)))[::-1]
        left.barh(positions, values, color=["#2171b5" if v >= 0 else "#cb181d" for v in values])
        left.set_yticks(positions, labels, fontsize=7)
        left.axvline(0.0, color="#888", linewidth=0.8)
        left.set_xlabel("contribution to the target (activation × value score)", fontsize=8)
        left.set_title("feed-forward neurons", fontsize=10)
        layers = list(range(len(totals)))[::-1]
        right.barh(layers, totals, color=["#2171b5" if t >= 0 else "#cb181d" for t in totals])
        right.set_yticks(layers, [f"layer {i}" for i in range(len(totals))], fontsize=7)
        right.axvline(0.0, color="#888", linewidth=0.8)
        right.set_title("per layer", fontsize=10)
        figure.suptitle(str(report["target"]), fontsize=10)
    return figure


def save_memories_png(report: Mapping[str, Any], path: str | Path, *, dpi: int = 120) -> Path:
    """Save :func:`memories_figure` as a PNG at ``path``; returns the path."""
    from qkv.views.fonts import save_figure

    return save_figure(memories_figure(report), path, dpi=dpi, format="png")
