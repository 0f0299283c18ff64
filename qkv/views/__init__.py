"""Views of attention: heatmaps (matplotlib) and interactive HTML (head, model, neuron, step).

Every view renders an *attention document* (:mod:`qkv.views.contract`), the JSON-able dict that
:func:`qkv.trace.attention_document` builds from a trace — or that :func:`explore` builds from a
model and a sentence. Data preparation stays apart from rendering, and every asset the HTML needs
ships inside the package: the views work offline, in a file, a notebook or ``qkv serve``.

* :mod:`~qkv.views.contract` — checking and reading a document;
* :mod:`~qkv.views.heatmap` — :func:`save_heatmap`, one head or a layers × heads grid, PNG/SVG;
* :mod:`~qkv.views.pack` — :func:`page_data`, long inputs pruned to top-k edges for a page;
* :mod:`~qkv.views.html` — :func:`render_html`, :func:`save_html`, :class:`AttentionView`;
* :mod:`~qkv.views.explore` — :func:`explore`, model + text → document, with the model's
  ``"prediction"`` (the translation, the next tokens or the class), shown beside the attention;
* :mod:`~qkv.views.confusion` — :func:`~qkv.views.confusion.save_confusion_matrix`, a
  classifier's confusion matrix as a PNG;
* :mod:`~qkv.views.curves` — training curves from ``metrics.jsonl`` (``qkv plot``);
* :mod:`~qkv.views.examples` — :func:`tiny_document`, a hand-computed document to try things.
"""

from qkv.views.contract import check_document
from qkv.views.explore import TooManyTokens, explore
from qkv.views.heatmap import grid_figure, head_figure, save_heatmap
from qkv.views.html import VIEWS, AttentionView, render_fragment, render_html, save_html
from qkv.views.pack import page_data

__all__ = [
           "VIEWS",
           "AttentionView",
           "TooManyTokens",
           "check_document",
           "explore",
           "grid_figure",
           "head_figure",
           "page_data",
           "render_fragment",
           "render_html",
           "save_heatmap",
           "save_html",
]
