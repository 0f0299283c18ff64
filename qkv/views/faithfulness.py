"""The faithfulness table as HTML: each attribution method beside the random baseline.

Draws what :func:`qkv.explain.faithfulness` returns (a ``FaithfulnessResult``, one subject) or
:func:`qkv.explain.faithfulness_table` (a ``FaithfulnessTable``, averaged over subjects), or
their ``to_dict()``: one row per method with comprehensiveness (↑, higher = more faithful),
sufficiency (↓) and AOPC (↑), then the random rankings' mean ± std. A method's number is marked
where it beats the random mean. Every name is escaped.
"""

from __future__ import annotations

import html
import math
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = ["METRICS", "faithfulness_rows", "render_faithfulness_fragment"]

METRICS = (("comprehensiveness", "↑"), ("sufficiency", "↓"), ("aopc", "↑"))
BETTER = ' class="qkv-faith-better"'


_CSS = """
.qkv-faithfulness { font: 13px/1.4 system-ui, "Noto Sans", sans-serif; color: #222;
  max-width: 100%; overflow-x: auto; margin: 8px 0; }
.qkv-faithfulness table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
.qkv-faithfulness th, .qkv-faithfulness td { padding: 2px 8px; text-align: right;
  border-bottom: 1px solid #eee; white-space: nowrap; }
.qkv-faithfulness th:first-child, .qkv-faithfulness td:first-child { text-align: left; }
.qkv-faithfulness .qkv-faith-better { font-weight: 700; color: #1f66b4; }
.qkv-faithfulness .qkv-faith-random td { color: #555; font-style: italic; }
.qkv-faithfulness .qkv-faith-note { color: #555; font-size: 12px; margin: 4px 0; }
"""


def _data(result: Any) -> dict:
    if hasattr(result, "to_dict"):
        return result.to_dict()
    if isinstance(result, Mapping):
        return dict(result)
    raise TypeError(f"expected a faithfulness result or table (or its to_dict()), got "
                    f"{type(result).__name__}")


def faithfulness_rows(result: Any) -> dict:
    """``{"rows": {method: {metric: value, "seconds"?}}, "random": {metric: (mean, std)},
    "header": words}`` of a result or a table (or their ``to_dict()``)."""
    data = _data(result)
    if "methods" in data:                                   # one subject
        rows = {name: {metric: values[metric] for metric, _ in METRICS}
                for name, values in data["methods"].items()}
        for name, seconds in (data.get("seconds") or {}).items():
            if name in rows:
                rows[name]["seconds"] = seconds
        random = {metric: (data["random"]["mean"][metric], data["random"]["std"][metric])
                  for metric, _ in METRICS}
        header = (f"{data.get('target', '')}: {data.get('output', 'score')} "
                  f"{_number(data.get('score'))}, {data.get('removable')} removable tokens")
    elif "rows" in data:                                    # averaged over subjects
        rows = {name: dict(values) for name, values in data["rows"].items()}
        random = {metric: (data["random"][metric], data["random"].get(metric + "_std"))
                  for metric, _ in METRICS}
        header = f"averaged over {data.get('subjects', '?')} subjects"
    else:
        raise ValueError(f"not a faithfulness result: expected the keys 'methods' and 'random' "
                         f"(one subject) or 'rows' and 'random' (a table), got {sorted(data)}")
    return {"rows": rows, "random": random, "header": header.strip(": ")}


def _number(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{float(x):.{digits}f}"


def render_faithfulness_fragment(result: Any, *, view_id: str | None = None) -> str:
    """The faithfulness table as an HTML fragment (no ``<html>``).

    Example:
        >>> data = {"methods": {"<m>": {"comprehensiveness": 0.3, "sufficiency": 0.1,
        ...                             "aopc": 0.2}},
        ...         "random": {"mean": {"comprehensiveness": 0.1, "sufficiency": 0.2,
        ...                             "aopc": 0.1},
        ...                    "std": {"comprehensiveness": 0.0, "sufficiency": 0.0, "aopc": 0.0}}}
        >>> text = render_faithfulness_fragment(data, view_id="f")
        >>> "&lt;m&gt;" in text, text.count('class="qkv-faith-better"')
        (True, 3)
    """
    table = faithfulness_rows(result)
    view_id = view_id or f"qkv-faithfulness-{uuid.uuid4().hex[:12]}"
    timed = any("seconds" in row for row in table["rows"].values())
    head = "".join(f"<th>{name} {arrow}</th>" for name, arrow in METRICS)
    lines = [f'<div class="qkv-faithfulness" id="{html.escape(view_id, quote=True)}">',
             f"<style>{_CSS}</style>",
             f'<p class="qkv-faith-note">Faithfulness: {html.escape(table["header"])}</p>',
             f"<table><tr><th>method</th>{head}{'<th>seconds</th>' if timed else ''}</tr>"]
    for name, row in table["rows"].items():
        cells = []
        for metric, arrow in METRICS:
            value, (mean, _) = row.get(metric), table["random"][metric]
            better = (value is not None and mean is not None
                      and (value > mean if arrow == "↑" else value < mean))
            cells.append(f'<td data-metric="{metric}" data-value="{value!r}"'
                         f'{BETTER if better else ""}>{_number(value)}</td>')
        seconds = f"<td>{_number(row.get('seconds'), 3)}</td>" if timed else ""
        lines.append(f'<tr data-method="{html.escape(name, quote=True)}">'
                     f"<td>{html.escape(name)}</td>{''.join(cells)}{seconds}</tr>")
    randoms = "".join(f"<td>{_number(mean)} ± {_number(std)}</td>"
                      for mean, std in table["random"].values())
    lines.append(f'<tr class="qkv-faith-random"><td>random (mean ± std)</td>{randoms}'
                 f"{'<td></td>' if timed else ''}</tr></table>")
    lines.append('<p class="qkv-faith-note">Tokens deleted in each method\'s order (highest '
                 'score first): comprehensiveness = the score lost without the top tokens, '
                 'sufficiency = the score lost keeping only them, AOPC = the area over the '
                 'deletion curve (DeYoung et al. 2020; Samek et al. 2017). Blue: better than '
                 'random rankings.</p>')
    lines.append("</div>\n")
    return "\n".join(lines)
