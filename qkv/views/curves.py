"""Training curves from a run's ``metrics.jsonl`` as a PNG (or SVG/PDF): training loss and
perplexity, learning rate and tokens/s against the step, with every validation metric (loss,
perplexity, BLEU, chrF, accuracy) beside them.

The data is prepared by a pure function, :func:`curve_series`, into a JSON-able dict, apart from
the drawing, :func:`save_curves`, which uses matplotlib's Agg canvas (no screen, no ``pyplot``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["read_metrics", "curve_series", "save_curves", "METRICS_FILE"]

METRICS_FILE = "metrics.jsonl"
# Panels in this order first, then any other metric in the order it first appears.
_FIRST = ("loss", "ppl", "lr", "tokens_per_s")
_TITLES = {"loss": "loss (nats per token)", "ppl": "perplexity", "lr": "learning rate",
           "tokens_per_s": "target tokens / s", "bleu": "BLEU", "chrf": "chrF",
           "accuracy": "accuracy (%)", "exact_match": "exact match (%)"}
_LOG_SCALE = ("ppl",)


def read_metrics(run: str | Path) -> list[dict]:
    """The records of a run's ``metrics.jsonl``, in the order they were written.

    Args:
        run: the run folder, or the ``metrics.jsonl`` file itself.

    Returns:
        one dict per line: ``step``, ``split`` (``"train"`` or ``"valid"``) and the metrics.

    Example:
        >>> import json, tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "metrics.jsonl").write_text(json.dumps({"step": 1, "split": "train",
        ...                                                       "loss": 2.5}) + "\\n")
        >>> read_metrics(folder)
        [{'step': 1, 'split': 'train', 'loss': 2.5}]
    """
    path = Path(run)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no training metrics: expected a run folder holding "
                                f"{METRICS_FILE} or the file itself, got {run}")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: expected one JSON object a line, got "
                             f"{line[:40]!r} ({error.msg})") from None
        if not isinstance(record, dict) or "step" not in record or "split" not in record:
            raise ValueError(f"{path}:{number}: expected an object with 'step' and 'split', "
                             f"got {line[:40]!r}")
        records.append(record)
    return records


def curve_series(records: Iterable[Mapping]) -> dict[str, dict[str, dict[str, list]]]:
    """Metrics records as curves: for each metric, for each split that has it, the steps and the
    values, sorted by step. A step logged twice (a run resumed from an earlier checkpoint by an
    older qkv) keeps its last value.

    Args:
        records: ``metrics.jsonl``'s records (:func:`read_metrics`).

    Returns:
        ``{metric: {split: {"step": [...], "value": [...]}}}``, JSON-able; the metrics in the
        order loss, ppl, lr, tokens_per_s, then the others as they first appear.

    Example:
        >>> curve_series([{"step": 2, "split": "train", "loss": 3.0, "lr": 0.1},
        ...               {"step": 2, "split": "valid", "loss": 3.5, "bleu": 1.0},
        ...               {"step": 4, "split": "train", "loss": 2.0, "lr": 0.2}])["loss"]
        {'train': {'step': [2, 4], 'value': [3.0, 2.0]}, 'valid': {'step': [2], 'value': [3.5]}}
    """
    points: dict[str, dict[str, dict[int, float]]] = {}
    for record in records:
        for name, value in record.items():
            if name in ("step", "split") or not isinstance(value, (int, float)):
                continue
            points.setdefault(name, {}).setdefault(record["split"], {})[int(record["step"])] = (
                float(value))
    names = [n for n in _FIRST if n in points] + [n for n in points if n not in _FIRST]
    return {name: {split: {"step": sorted(values), "value": [values[s] for s in sorted(values)]}
                   for split, values in sorted(points[name].items())}
            for name in names}


def save_curves(series: Mapping[str, Mapping[str, Mapping[str, list]]], path: str | Path, *,
                title: str | None = None) -> Path:
    """Draw training curves, one panel a metric, and save them (the format from the suffix).

    Args:
        series: :func:`curve_series`' output.
        path: where to save it; its folder must exist.
        title: drawn above the panels.

    Returns:
        ``path``, as a :class:`~pathlib.Path`.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "curves.png"
        >>> series = curve_series([{"step": 1, "split": "train", "loss": 3.0},
        ...                        {"step": 2, "split": "train", "loss": 2.0}])
        >>> save_curves(series, out).read_bytes()[:4]
        b'\\x89PNG'
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    if not series:
        raise ValueError("nothing to plot: expected at least one metric, got none")
    columns = 2 if len(series) > 1 else 1
    rows = -(-len(series) // columns)
    figure = Figure(figsize=(5.5 * columns, 3.2 * rows))
    for index, (name, splits) in enumerate(series.items()):
        axes = figure.add_subplot(rows, columns, index + 1)
        for split, curve in splits.items():
            many = len(curve["step"]) > 30
            axes.plot(curve["step"], curve["value"], label=split,
                      marker=None if many else "o", markersize=3,
                      color="tab:blue" if split == "train" else "tab:orange")
        if name in _LOG_SCALE and all(v > 0 for c in splits.values() for v in c["value"]):
            axes.set_yscale("log")
            axes.yaxis.set_major_formatter(plain)
            axes.yaxis.set_minor_formatter(plain)
        axes.set_title(_TITLES.get(name, name))
        axes.set_xlabel("step")
        axes.grid(alpha=0.3)
        if len(splits) > 1 or "valid" in splits:
            axes.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    return path
