"""The notebook in docs/ runs top to bottom, and the outputs it carries are what qkv computes now.

The notebook is executed by nbclient in a fresh kernel of this interpreter
(``docs/run_notebooks.py``, the same code ``make notebooks`` saves it with); a cell that raises
fails the run. Its saved outputs are then compared with the fresh ones, and the fresh ones with
what the library computes in this process: the hand-computed tables with
``qkv.scaled_dot_product_attention`` and with ``qkv demo --task attention``, MiniLM's table and
inline view with ``qkv.trace`` and ``qkv.views.explore`` on the same sentence.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import math
import re
import struct
import sys
from pathlib import Path

import nbformat
import pytest
import torch

import qkv
from qkv.cli.walkthrough import walkthrough
from qkv.pretrained.bert import bert_inputs
from qkv.views import explore, page_data, save_heatmap

DOCS = Path(__file__).resolve().parents[1] / "docs"
NOTEBOOK = DOCS / "attention-walkthrough.ipynb"
TOKENS = ["I", "love", "my", "dog"]
MAX_BYTES = 200_000  # the saved notebook, outputs included (it is about 120 KB)

# Printed numbers carry 3 decimals; on another CPU the last one may round the other way.
PRINTED = {"rel_tol": 1e-3, "abs_tol": 1.5e-3}
# The inline view's data: 6 significant digits of float32 results.
DATA = {"rel_tol": 1e-4, "abs_tol": 1e-5}

NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")

_spec = importlib.util.spec_from_file_location("run_notebooks", DOCS / "run_notebooks.py")
run_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_notebooks)


@pytest.fixture(scope="module")
def saved():
    return nbformat.read(NOTEBOOK, as_version=4)


@pytest.fixture(scope="module")
def run(saved):
    """The notebook run now, plus the interpreter its kernel ran (printed by one extra cell)."""
    notebook = nbformat.from_dict(saved)
    notebook.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    executed = run_notebooks.execute(notebook)
    probe = executed.cells.pop()
    return executed, coalesced(probe.outputs)[0]["text"].strip()


@pytest.fixture(scope="module")
def fresh(run):
    return run[0]


def outputs(notebook):
    """(cell index, output) of every code cell's outputs, in order."""
    return [(index, output) for index, cell in enumerate(notebook.cells)
            if cell.cell_type == "code" for output in cell.outputs]


def printed(notebook) -> str:
    """Everything printed, as one text: each print ends in a newline, and a print the kernel
    sent in pieces joins back whole."""
    return "".join(output["text"] for _, output in outputs(notebook)
                   if output["output_type"] == "stream" and output["name"] == "stdout")


def rich(notebook, mime: str) -> list[str]:
    return [output["data"][mime] for _, output in outputs(notebook)
            if mime in output.get("data", {})]


def table(text: str, title: str) -> tuple[list[str], list[str], torch.Tensor]:
    """The rows, columns and values of the table titled ``title`` in printed text."""
    lines = text.splitlines()
    if title not in lines:
        raise AssertionError(f"no table titled {title!r} in the notebook's output")
    at = lines.index(title)
    columns, rows, values = lines[at + 1].split(), [], []
    for line in lines[at + 2:]:
        label, *cells = line.split() or [""]
        if len(cells) != len(columns) or not all(NUMBER.fullmatch(cell) for cell in cells):
            break
        rows.append(label)
        values.append([float(cell) for cell in cells])
    return rows, columns, torch.tensor(values)


# -- saved outputs against a fresh run ------------------------------------------------------------

VIEW_ID = re.compile(r"qkv-view-[0-9a-f]+")
ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
VIEW_DATA = re.compile(r'<script type="application/json" id="[^"]*">(.*?)</script>', re.S)
VIEW_CODE = re.compile(r"<style>.*?</style>|<script>(?!window\.qkvViews\.mount).*?</script>", re.S)


def text_difference(saved: str, fresh: str) -> str | None:
    """Why two outputs differ, or None: words equal once DOM ids, addresses and runs of
    whitespace are normalised, numbers equal to ``PRINTED``."""
    def pieces(text):
        text = " ".join(ADDRESS.sub("0x…", VIEW_ID.sub("qkv-view-…", text)).split())
        return NUMBER.split(text), [float(n) for n in NUMBER.findall(text)]
    (saved_words, saved_numbers), (fresh_words, fresh_numbers) = pieces(saved), pieces(fresh)
    if saved_words != fresh_words:
        at = next((i for i, (a, b) in enumerate(zip(saved_words, fresh_words)) if a != b),
                  min(len(saved_words), len(fresh_words)))
        return (f"text differs near {''.join(saved_words[max(0, at - 3):at + 1])[-120:]!r} "
                f"(fresh run: {''.join(fresh_words[max(0, at - 3):at + 1])[-120:]!r})")
    for a, b in zip(saved_numbers, fresh_numbers):
        if not math.isclose(a, b, **PRINTED):
            return f"a number differs: saved {a}, fresh run {b}"
    return None


def data_difference(saved, fresh, where="data") -> str | None:
    """Why two JSON values differ, or None; numbers equal to ``DATA``."""
    if isinstance(saved, dict) and isinstance(fresh, dict):
        if saved.keys() != fresh.keys():
            return f"{where}: keys {sorted(saved)} saved, {sorted(fresh)} in a fresh run"
        return next((d for key in saved
                     if (d := data_difference(saved[key], fresh[key], f"{where}.{key}"))), None)
    if isinstance(saved, list) and isinstance(fresh, list):
        if len(saved) != len(fresh):
            return f"{where}: {len(saved)} items saved, {len(fresh)} in a fresh run"
        return next((d for i, (a, b) in enumerate(zip(saved, fresh))
                     if (d := data_difference(a, b, f"{where}[{i}]"))), None)
    numbers = (int, float)
    if (isinstance(saved, numbers) and isinstance(fresh, numbers)
            and not isinstance(saved, bool) and not isinstance(fresh, bool)):
        if math.isclose(saved, fresh, **DATA):
            return None
        return f"{where}: {saved} saved, {fresh} in a fresh run"
    return None if saved == fresh else f"{where}: {saved!r} saved, {fresh!r} in a fresh run"


def html_difference(saved: str, fresh: str) -> str | None:
    """An inline view: its data compared as JSON, the rest as text. The view code (the package's
    CSS and JS, ``qkv/views/assets``, copied in verbatim) is not compared: a change to it does
    not make the saved data untrue."""
    saved_data, fresh_data = VIEW_DATA.findall(saved), VIEW_DATA.findall(fresh)
    if len(saved_data) != len(fresh_data):
        return f"{len(saved_data)} view data blocks saved, {len(fresh_data)} in a fresh run"
    for a, b in zip(saved_data, fresh_data):
        if difference := data_difference(json.loads(a), json.loads(b)):
            return difference
    def rest(text):
        return VIEW_CODE.sub("<view code>", VIEW_DATA.sub("<view data>", text))
    return text_difference(rest(saved), rest(fresh))


def png_size(data: str) -> tuple[int, int]:
    png = base64.b64decode(data)
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", png[16:24])                           # IHDR: width, height


def output_difference(saved, fresh) -> str | None:
    for field in ("output_type", "name", "execution_count"):
        if saved.get(field) != fresh.get(field):
            return f"{field} {saved.get(field)!r} saved, {fresh.get(field)!r} in a fresh run"
    if "text" in fresh:                                                   # a stream
        return text_difference(saved["text"], fresh["text"])
    if sorted(saved.get("data", {})) != sorted(fresh.get("data", {})):
        return f"kinds {sorted(saved['data'])} saved, {sorted(fresh['data'])} in a fresh run"
    for mime, value in fresh.get("data", {}).items():
        if mime == "image/png":   # its bytes depend on the font library; its size does not
            sizes = png_size(saved["data"][mime]), png_size(value)
            difference = sizes[0] != sizes[1] and f"{sizes[0]} saved, {sizes[1]} in a fresh run"
        elif mime == "text/html":
            difference = html_difference(saved["data"][mime], value)
        else:
            difference = text_difference(str(saved["data"][mime]), str(value))
        if difference:
            return f"{mime}: {difference}"
    return None


def test_notebook_runs_in_a_kernel_of_this_python(run):
    assert run_notebooks.kernel_manager().kernel_spec.argv[0] == sys.executable
    assert run[1] == sys.executable


def test_notebook_prints_no_warnings(fresh):
    noise = [output.get("text", "") for _, output in outputs(fresh)
             if output["output_type"] == "error" or output.get("name") == "stderr"]
    assert noise == []


def coalesced(outputs: list) -> list:
    """The outputs with consecutive stream outputs of one stream joined: a kernel may send one
    print as one message or several, depending on timing."""
    joined: list = []
    for output in outputs:
        if (output["output_type"] == "stream" and joined
                and joined[-1]["output_type"] == "stream" and joined[-1]["name"] == output["name"]):
            joined[-1] = {**joined[-1], "text": joined[-1]["text"] + output["text"]}
        else:
            joined.append(output)
    return joined


def test_saved_outputs_are_those_of_a_fresh_run(saved, fresh):
    """After a change to the notebook or to what it shows: ``make notebooks``, and commit it."""
    assert [cell.source for cell in saved.cells] == [cell.source for cell in fresh.cells]
    for cell_saved, cell_fresh in zip(saved.cells, fresh.cells):
        if cell_fresh.cell_type != "code":
            continue
        where = f"{NOTEBOOK.name}, cell {cell_saved.source.splitlines()[:1]}"
        assert cell_saved.execution_count == cell_fresh.execution_count, where
        saved_outputs, fresh_outputs = coalesced(cell_saved.outputs), coalesced(cell_fresh.outputs)
        assert len(saved_outputs) == len(fresh_outputs), (
            f"{where}: {len(saved_outputs)} outputs saved, {len(fresh_outputs)} in a "
            f"fresh run; run `make notebooks`")
        for output_saved, output_fresh in zip(saved_outputs, fresh_outputs):
            difference = output_difference(output_saved, output_fresh)
            assert difference is None, f"{where}: {difference}; run `make notebooks`"


def test_saved_notebook_is_small_and_valid(saved):
    nbformat.validate(saved)
    assert NOTEBOOK.stat().st_size < MAX_BYTES
    assert saved.metadata.kernelspec.name == "python3"


# -- fresh outputs against the library ------------------------------------------------------------

def seeded_head():
    """Part 1's inputs, as the notebook's markdown says they are made (the demo's seed 0)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(len(TOKENS), 8, generator=generator)                 # (T, E)
    w_query, w_key, w_value = (torch.randn(8, 4, generator=generator) / math.sqrt(8)
                               for _ in range(3))                         # (E, D)
    return x, x @ w_query, x @ w_key, x @ w_value


def test_weights_tables_are_scaled_dot_product_attention(fresh):
    text = printed(fresh)
    x, query, key, value = seeded_head()
    output, weights = qkv.scaled_dot_product_attention(query, key, value, need_weights=True)
    _, causal = qkv.scaled_dot_product_attention(query, key, value, causal=True, need_weights=True)
    expected = {
        "x, token embeddings (T, E)": x,
        "softmax, attention weights (T, S): each row sums to 1": weights,
        "qkv weights, math path (T, S)": weights,
        "MultiHeadAttention, head 0 weights (T, S)": weights,
        "weights · V, outputs (T, D)": output,
        "causal weights (T, S): no token attends to a later one": causal,
    }
    for title, tensor in expected.items():
        rows, _, values = table(text, title)
        assert rows == TOKENS, title
        torch.testing.assert_close(values, tensor, atol=PRINTED["abs_tol"], rtol=0, msg=title)


def test_hand_computed_tables_are_the_demos(fresh):
    """Part 1 says its numbers are those of ``qkv demo --task attention``."""
    text, demo = printed(fresh), walkthrough(TOKENS, seed=0)
    for title, demo_title in [
        ("Q = x W^Q, queries (T, D)", "Q, queries (T, D)"),
        ("K = x W^K, keys (S, D)", "K, keys (S, D)"),
        ("V = x W^V, values (S, D)", "V, values (S, D)"),
        ("Q Kᵀ, raw scores (T, S): row = query, column = key",) * 2,
        ("Q Kᵀ / √D, scaled scores (√4 = 2)",) * 2,
        ("softmax, attention weights (T, S): each row sums to 1",) * 2,
        ("weights · V, outputs (T, D)",) * 2,
    ]:
        rows, columns, values = table(text, title)
        demo_rows, demo_columns, demo_values = table(demo, demo_title)
        assert (rows, columns) == (demo_rows, demo_columns), title
        torch.testing.assert_close(values, demo_values, atol=PRINTED["abs_tol"], rtol=0, msg=title)


@pytest.fixture(scope="module")
def minilm():
    return qkv.load_pretrained("minilm")


def test_minilm_table_is_the_traced_weights(fresh, minilm):
    model, tokenizer = minilm
    ids, _ = bert_inputs(tokenizer, ["I love my dog"])                 # [CLS] … [SEP]
    with torch.no_grad(), qkv.trace(model, layers=0, heads=2, fields="weights") as t:
        model(ids)
    rows, columns, values = table(printed(fresh), "layers.0.self_attention, head 2 weights (T, S)")
    assert rows == columns == tokenizer.tokens(ids[0]) == ["[CLS]", "i", "love", "my", "dog",
                                                           "[SEP]"]
    torch.testing.assert_close(values, t["layers.0.self_attention"].weights[0, 0],
                               atol=PRINTED["abs_tol"], rtol=0)


def test_inline_view_holds_the_document_of_minilm(fresh, minilm):
    model, tokenizer = minilm
    document = explore(model, task="encoder", source_tokenizer=tokenizer,
                                 text="I love my dog", detail=False)
    [view] = rich(fresh, "text/html")
    [data] = VIEW_DATA.findall(view)
    assert data_difference(json.loads(data), page_data(document)) is None
    assert 'data-views="head model"' in view and "window.qkvViews.mount(" in view


def test_heatmap_is_the_png_save_heatmap_draws(fresh, minilm, tmp_path):
    model, tokenizer = minilm
    document = explore(model, task="encoder", source_tokenizer=tokenizer,
                                 text="I love my dog", detail=False)
    png = save_heatmap(document, tmp_path / "head.png", name="layers.2.self_attention",
                                 head=0, dpi=80)
    [image] = rich(fresh, "image/png")
    assert png_size(image) == png_size(base64.b64encode(png.read_bytes()).decode())
