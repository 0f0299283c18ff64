"""Inspection: record every intermediate of attention (:func:`trace`), and turn the records into
data for the views (:func:`attention_document`).

* :mod:`~qkv.trace.record` — :class:`AttentionRecord`, what one attention call computed;
  :func:`stitch`, decoding steps joined into one record;
* :mod:`~qkv.trace.selection` — which modules, layers, heads, query rows and fields to keep;
* :mod:`~qkv.trace.recorder` — :func:`trace`, the context manager, and :class:`Trace`;
* :mod:`~qkv.trace.document` — :func:`attention_document`, a trace as a JSON-able dict.
"""

from qkv.trace.document import attention_document, document_to_json
from qkv.trace.record import RECORD_FIELDS, AttentionRecord, stitch
from qkv.trace.recorder import Trace, trace

__all__ = [
    "trace",
    "Trace",
    "AttentionRecord",
    "RECORD_FIELDS",
    "stitch",
    "attention_document",
    "document_to_json",
]
