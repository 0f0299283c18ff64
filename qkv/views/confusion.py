"""A classifier's confusion matrix as a PNG (or SVG/PDF), drawn by scikit-learn's
``ConfusionMatrixDisplay`` on matplotlib's Agg canvas (no screen needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np

from qkv.views.fonts import font_family_for

__all__ = ["save_confusion_matrix"]


def save_confusion_matrix(confusion: Sequence[Sequence[int]], labels: Sequence[str],
                          path: str | Path, *, title: str | None = None,
                          normalize: bool = True) -> Path:
    """Draw a confusion matrix and save it (the format from the file's suffix).

    Args:
        confusion: counts, rows the gold label, columns the predicted one
            (:func:`qkv.evaluation.classification_scores`' ``"confusion"``).
        labels: the names of the rows and columns, in order.
        path: where to save it; its folder must exist.
        title: drawn above the matrix.
        normalize: colour (and, with few labels, print) each cell as the fraction of its row —
            the recall of each gold label — rather than as a count.

    Shape:
        ``confusion (C, C)``, ``labels (C,)``

    Returns:
        ``path``, as a :class:`~pathlib.Path`.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "confusion.png"
        >>> save_confusion_matrix([[3, 1], [0, 4]], ["cat", "dog"], out).read_bytes()[:4]
        b'\\x89PNG'
    """
    from matplotlib.figure import Figure
    from sklearn.metrics import ConfusionMatrixDisplay

    matrix = np.asarray(confusion)
    labels = list(labels)
    if matrix.ndim != 2 or matrix.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion must be (C, C) with C = {len(labels)} labels, got "
                         f"{matrix.shape}")
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)   # (C, C) fractions
    size = max(4.0, 0.4 * len(labels) + 2.0)
    family = font_family_for(labels)
    with matplotlib.rc_context({} if family is None else {"font.family": family}):
        figure = Figure(figsize=(size + 1.0, size))
        axes = figure.add_subplot()
        display = ConfusionMatrixDisplay(matrix, display_labels=labels)
        display.plot(ax=axes, cmap="Blues", colorbar=True, xticks_rotation="vertical",
                     include_values=len(labels) <= 12, values_format=".2f" if normalize else "d")
        axes.set_xlabel("predicted label")
        axes.set_ylabel("true label" + (" (each row sums to 1)" if normalize else ""))
        if title:
            axes.set_title(title)
        figure.tight_layout()
        path = Path(path)
        figure.savefig(path, dpi=120)
    return path
