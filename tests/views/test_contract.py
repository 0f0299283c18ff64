"""Documents a view cannot render are refused with a message naming what is wrong."""

import pytest

from qkv.views import check_document, render_html
from qkv.views.examples import tiny_document


def test_not_a_dict():
    with pytest.raises(TypeError, match="must be a dict, got list"):
        render_html([])


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("sides"), "needs a 'sides' field"),
    (lambda d: d.update(attentions=[]), "non-empty list"),
    (lambda d: d["attentions"][0].update(kind="self"), "kind must be one of"),
    (lambda d: d["attentions"][0].update(key_side="source"), "key_side 'source' is not a side"),
    (lambda d: d["attentions"][0].pop("weights"), "lacks field"),
    (lambda d: d["attentions"][0]["weights"].pop(), r"\(H, T, S\) = \(2, 4, 4\), got \(1, 4, 4\)"),
])
def test_broken_documents_are_named(change, message):
    document = tiny_document()
    change(document)
    with pytest.raises(ValueError, match=message):
        check_document(document)
