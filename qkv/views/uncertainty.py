"""Uncertainty drawn: the reliability diagram of a calibration, and the ``"uncertainty"`` report
(entropy per position, MC-dropout spread) as an HTML fragment or a PNG.

They take JSON-able dicts (:meth:`qkv.explain.Calibration.to_dict`, the ``"uncertainty"``
report of :mod:`qkv.explain.uncertainty`); figures are drawn on matplotlib's Agg canvas.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from qkv.views.fonts import font_family_for

__all__ = ["save_reliability_diagram", "calibration_html", "uncertainty_html",
           "save_uncertainty_figure"]

_BOX = ("font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:13px;"
        "color:#222;margin:8px 0")


def _fonts(labels: Sequence[str]):
    import matplotlib

    family = font_family_for(labels)
    return (contextlib.nullcontext() if family is None
            else matplotlib.rc_context({"font.family": family}))


def _save(figure, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path


def save_reliability_diagram(calibration: Mapping, path: str | Path, *,
                             title: str | None = None, dpi: int = 120) -> Path:
    """A reliability diagram (Guo, Pleiss, Sun & Weinberger, 2017, "On Calibration of Modern
    Neural Networks", figure 1): for each confidence bin, the accuracy (bars) against the
    diagonal a calibrated model would follow, the gap shaded red; the bin counts below.

    Args:
        calibration: ``Calibration.to_dict()``: ``ece``, ``bins``, ``bin_accuracy``,
            ``bin_confidence``, ``bin_count``.
        path: ``.png`` (or any format matplotlib knows by the suffix).

    Example:
        >>> import tempfile, pathlib
        >>> bins = {"ece": 0.1, "bins": 2, "bin_accuracy": [None, 0.7], "bin_confidence":
        ...         [None, 0.8], "bin_count": [0, 10]}
        >>> out = save_reliability_diagram(bins, pathlib.Path(tempfile.mkdtemp()) / "r.png")
        >>> out.read_bytes()[:4]
        b'\\x89PNG'
    """
    from matplotlib.figure import Figure

    M = int(calibration["bins"])
    edges = np.linspace(0.0, 1.0, M + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    accuracy = np.array([np.nan if a is None else a for a in calibration["bin_accuracy"]])
    confidence = np.array([np.nan if c is None else c for c in calibration["bin_confidence"]])
    counts = np.asarray(calibration["bin_count"], dtype=float)
    filled = counts > 0
    figure = Figure(figsize=(5.0, 6.0), layout="constrained")
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.bar(centres[filled], accuracy[filled], width=1 / M, edgecolor="#1f3b63",
            color="#4c78a8", label="accuracy")
    gap_low = np.minimum(accuracy, confidence)[filled]
    top.bar(centres[filled], np.abs(confidence - accuracy)[filled], bottom=gap_low, width=1 / M,
            color="#d62728", alpha=0.35, edgecolor="#d62728", hatch="//", label="gap")
    top.plot([0, 1], [0, 1], "--", color="#555", linewidth=1, label="calibrated")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left", fontsize=8)
    top.set_title(title or f"reliability diagram · ECE {calibration['ece']:.3f} "
                  f"({M} bins)", fontsize=10)
    bottom.bar(centres, counts, width=1 / M, color="#999", edgecolor="#555")
    bottom.set_xlabel("confidence (top label)")
    bottom.set_ylabel("count")
    return _save(figure, path, dpi)


def calibration_html(calibration: Mapping) -> str:
    """A calibration as an HTML fragment: ECE, accuracy, and one row per non-empty bin."""
    M = int(calibration["bins"])
    rows = []
    for m in range(M):
        count = calibration["bin_count"][m]
        if not count:
            continue
        conf, acc = calibration["bin_confidence"][m], calibration["bin_accuracy"][m]
        rows.append(f'<tr><td style="padding:1px 8px">({m / M:.2f}, {(m + 1) / M:.2f}]</td>'
                    f'<td style="padding:1px 8px;text-align:right">{count}</td>'
                    f'<td style="padding:1px 8px;text-align:right">{conf:.3f}</td>'
                    f'<td style="padding:1px 8px;text-align:right">{acc:.3f}</td></tr>')
    return (f'<div class="qkv-calibration" style="{_BOX}"><div style="font-weight:600">'
            f'Calibration · ECE {calibration["ece"]:.4f} · accuracy '
            f'{calibration["accuracy"]:.3f}</div><table style="border-collapse:collapse">'
            f'<tr><th>bin</th><th>count</th><th>confidence</th><th>accuracy</th></tr>'
            f'{"".join(rows)}</table></div>')


def _shade(value: float | None, top: float) -> str:
    """White (0) to orange (``top``): how uncertain."""
    if value is None or top <= 0:
        return "rgb(240,240,240)"
    t = max(0.0, min(1.0, value / top))
    return f"rgb(255,{round(255 - t * 120)},{round(255 - t * 200)})"


def uncertainty_html(report: Mapping) -> str:
    """The ``"uncertainty"`` report as an HTML fragment: the target's MC-dropout mean ± std, and
    per position the entropy (shaded) and the given next token's probability mean ± std."""
    mc = report["mc_dropout"]
    what = "cosine" if report["task"] == "similarity" else "probability"
    top = ", ".join(f"{html.escape(str(t['name']))} {t['probability']:.3f}"
                    for t in report.get("top") or [])
    lines = [
        f'<div style="font-weight:600">Uncertainty · {html.escape(report["target"])}</div>',
        f'<div>{what} {report["score"]:.4f} (eval mode); MC dropout over {mc["samples"]} passes '
        f'(seed {mc["seed"]}, {mc["dropout_modules"]} dropout places): '
        f'{mc["target_mean"]:.4f} ± {mc["target_std"]:.4f}</div>',
    ]
    if top:
        lines.append(f'<div style="color:#555">top predictions: {top}</div>')
    if report.get("note"):
        lines.append(f'<div style="color:#a00">{html.escape(report["note"])}</div>')
    entropy, max_entropy = report.get("entropy"), report.get("max_entropy")
    if isinstance(entropy, (int, float)):
        lines.append(f'<div>predictive entropy of the labels: {entropy:.4f} nats '
                     f'(at most {max_entropy:.3f})</div>')
    elif entropy is not None:
        nexts = report.get("next_tokens") or [""] * len(entropy)
        means = mc.get("token_mean") or [None] * len(entropy)
        stds = mc.get("token_std") or [None] * len(entropy)
        cells = []
        for token, following, h, m, s in zip(report["tokens"], nexts, entropy, means, stds):
            spread = "" if m is None else f"<br>p(next) {m:.3f} ± {s:.3f}"
            cells.append(
                f'<td title="entropy {h:.4f} nats" style="background:{_shade(h, max_entropy)};'
                f'padding:3px 6px;border:1px solid #ddd;vertical-align:top">'
                f'<b>{html.escape(str(token))}</b><br><span style="color:#555">→ '
                f'{html.escape(str(following))}</span><br>H {h:.2f}{spread}</td>')
        lines.append(f'<div style="margin:4px 0">entropy of the next-token distribution after '
                     f'each token (nats, at most {max_entropy:.2f}; darker = less sure):</div>'
                     f'<table style="border-collapse:collapse;font-size:12px"><tr>'
                     f'{"".join(cells)}</tr></table>')
    return f'<div class="qkv-uncertainty" style="{_BOX}">{"".join(lines)}</div>'


def save_uncertainty_figure(report: Mapping, path: str | Path, *, dpi: int = 120) -> Path:
    """The ``"uncertainty"`` report as a PNG: entropy per position (language model,
    translation) and the histogram of the target's MC-dropout values."""
    from matplotlib.figure import Figure

    mc = report["mc_dropout"]
    entropy = report.get("entropy")
    per_position = isinstance(entropy, list)
    tokens = [str(t) for t in report["tokens"]]
    with _fonts(tokens if per_position else []):
        figure = Figure(figsize=(max(5.0, 1.5 + 0.4 * len(tokens)) if per_position else 5.0,
                                 6.0 if per_position else 3.2), layout="constrained")
        axes = figure.subplots(2 if per_position else 1, 1, squeeze=False)[:, 0]
        if per_position:
            ax = axes[0]
            x = np.arange(len(entropy))
            ax.bar(x, entropy, color="#f28e2b", label="entropy (eval)")
            if mc.get("token_std") is not None:
                ax2 = ax.twinx()
                ax2.errorbar(x, mc["token_mean"], yerr=mc["token_std"], fmt="o", color="#1f3b63",
                             label="p(given next token), MC mean ± std")
                ax2.set_ylim(0, 1.05)
                ax2.set_ylabel("probability")
                ax2.legend(loc="upper right", fontsize=8)
            ax.set_xticks(x, tokens, rotation=90, fontsize=8)
            ax.set_ylabel("nats")
            ax.axhline(report["max_entropy"], color="#888", linestyle=":", linewidth=1)
            ax.legend(loc="upper left", fontsize=8)
            ax.set_title(f"next-token entropy · {report['target']}", fontsize=10)
        ax = axes[-1]
        ax.hist(mc["target"], bins=min(20, max(5, mc["samples"] // 2)), color="#4c78a8")
        ax.axvline(report["score"], color="#d62728", linestyle="--", label="eval mode")
        what = "cosine" if report["task"] == "similarity" else "target probability"
        ax.set_xlabel(f"{what} in each pass")
        ax.set_ylabel("passes")
        ax.legend(fontsize=8)
        title = (f"{report['target']} · MC dropout, {mc['samples']} passes: "
                 f"{mc['target_mean']:.3f} ± {mc['target_std']:.3f}")
        if isinstance(entropy, (int, float)):
            title += f"\nentropy of the labels {entropy:.3f} nats (at most " \
                     f"{report['max_entropy']:.2f})"
        ax.set_title(title, fontsize=10)
        return _save(figure, path, dpi)
