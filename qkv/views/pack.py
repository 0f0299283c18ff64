"""Fit an attention document into a web page: long inputs keep top-k edges and a pooled image.

A dense ``[H][T][S]`` weight list grows with T·S: at 1,000 tokens one head is a million numbers.
:func:`page_data` is the pure step between a document and the page: records small enough stay
exactly as they are (so the page's data is the document itself); a long record keeps, per head,
the ``top_k`` strongest keys of every query (exact values) for the head view's lines, and the
weights max-pooled onto an at most ``image_size × image_size`` grid of bytes (base64) for the
canvas heatmaps. Its ``T·S``-sized detail fields (``scores``, ``mask``) are dropped; the step
view recomputes dot products from ``query`` and ``key``.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping

import numpy as np

from qkv.views.contract import check_document

__all__ = ["DENSE_LIMIT", "page_data"]

DENSE_LIMIT = 128 * 128  # T·S above which a record is packed
_LARGE_FIELDS = ("weights", "scores", "mask")


def page_data(document: Mapping, *, dense_limit: int = DENSE_LIMIT, top_k: int = 8,
              image_size: int = 256) -> dict:
    """The document as the page embeds it (a JSON-able dict; the input is not modified).

    A packed record has ``"packed": {"top_k": k, "indices": [H][T][k], "values": [H][T][k],
    "image": {"rows": r, "cols": c, "scale": [H floats], "heads": [H base64 strings]}}`` instead
    of its weights; byte ``b`` of head ``h`` stands for weight ``b / 255 · scale[h]``.

    Example:
        >>> from qkv.views.examples import tiny_document
        >>> doc = tiny_document()
        >>> page_data(doc) == doc                              # short: unchanged
        True
        >>> record = page_data(doc, dense_limit=4, top_k=2)["attentions"][0]
        >>> "weights" in record, record["packed"]["top_k"], len(record["packed"]["indices"][0][0])
        (False, 2, 2)
    """
    document = check_document(document)
    out = {key: value for key, value in document.items() if key != "attentions"}
    out["attentions"] = []
    for record in document["attentions"]:
        T, S = len(record["weights"][0]), len(record["weights"][0][0])
        if T * S <= dense_limit:
            out["attentions"].append(copy.deepcopy(dict(record)))
        else:
            out["attentions"].append(_pack(record, top_k, image_size))
    return out


def _pack(record: Mapping, top_k: int, image_size: int) -> dict:
    weights = np.asarray(record["weights"], dtype=np.float32)                   # (H, T, S)
    H, T, S = weights.shape
    k = min(top_k, S)
    indices = np.argsort(-weights, axis=-1, kind="stable")[..., :k]              # (H, T, k)
    values = np.take_along_axis(weights, indices, axis=-1)                      # (H, T, k)
    rows, cols = min(T, image_size), min(S, image_size)
    row_bins = np.linspace(0, T, rows + 1).astype(int)
    col_bins = np.linspace(0, S, cols + 1).astype(int)
    pooled = np.maximum.reduceat(np.maximum.reduceat(weights, row_bins[:-1], axis=1),
                                 col_bins[:-1], axis=2)                         # (H, r, c)
    scale = np.maximum(pooled.reshape(H, -1).max(axis=1), 1e-12)                # (H,)
    image = np.rint(pooled / scale[:, None, None] * 255).astype(np.uint8)
    packed = {key: copy.deepcopy(value) for key, value in record.items()
              if key not in _LARGE_FIELDS}
    packed["packed"] = {
        "top_k": k,
        "indices": indices.tolist(),
        "values": np.round(values.astype(float), 7).tolist(),
        "image": {"rows": rows, "cols": cols, "scale": scale.astype(float).tolist(),
                  "heads": [base64.b64encode(image[h].tobytes()).decode("ascii")
                            for h in range(H)]},
    }
    return packed
