"""The explorer's layout at 1280 px and at 400 px, in Debian's Chromium, and its screenshots.

At both widths, in every view (the model view zoomed on a head, its weight matrix shown), the
page is no wider than the window (``scrollWidth <= clientWidth``: wide drawings and tables
scroll inside their own box) and the prediction panel is visible: beside the views at 1280 px,
below them at 400 px (bounding boxes). The same input screenshots pixel-identically twice; a
static ``qkv view`` page of a seeded document is compared with committed reference screenshots
(``tests/serve/reference``), where this Chromium and its fonts are those they were made with —
else the test says so and skips. ``QKV_UPDATE_SCREENSHOTS=1`` records them anew.
"""

import json
import os
from pathlib import Path

import pytest

from qkv.views import VIEWS, save_html
from qkv.views.examples import tiny_document
from tests.serve.browser import (
    NO_OVERFLOW,
    artefact,
    assert_clean,
    box,
    link,
    pixels,
    ready,
    serving,
)

WIDE, NARROW = 1280, 400
LONG = "I love my dog the cat I love my dog the cat"       # 12 words: the matrices run wide
REFERENCE = Path(__file__).parent / "reference"
CHANGED = 32                # a pixel differs when a channel moves by more than this (of 255) …
CHANGED_SHARE = 0.002       # … and at most this share of the reference's pixels may differ


@pytest.fixture(params=["translation", "language_model", "classification"])
def task_server(request, loaded, language_model_loaded, classifier_loaded):
    model = {"translation": loaded, "language_model": language_model_loaded,
             "classification": classifier_loaded}[request.param]
    with serving(model) as url:
        yield request.param, url


def fits(page, where):
    assert page.evaluate(NO_OVERFLOW), (
        f"{where}: the page is {page.evaluate('document.documentElement.scrollWidth')} px wide "
        f"in a {page.evaluate('document.documentElement.clientWidth')} px window")
    assert page.is_visible("#qkv-live .qkv-prediction"), f"{where}: no prediction panel"


def test_layout_fits_a_wide_and_a_narrow_window(task_server, page, tmp_path):
    task, url = task_server
    boxes = {}
    for width in (WIDE, NARROW):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(link(url, text=LONG))
        ready(page)
        for view in VIEWS:
            page.click(f"#qkv-live button.qkv-tab[data-view='{view}']")
            if view == "model":
                page.click("#qkv-live .qkv-thumb[data-layer='0'][data-head='0']")
                matrix = page.evaluate("""() => { const box = document.querySelector(
                    '#qkv-live .qkv-zoom .qkv-scroll'); return [box.scrollWidth,
                    box.clientWidth, box.firstChild.className]; }""")
                assert matrix[2] == "qkv-matrix"
                if width == NARROW:
                    assert matrix[0] > matrix[1]        # wider than the window: it scrolls
            fits(page, f"{task}, {view} view at {width} px")
        page.click("#qkv-live button.qkv-tab[data-view='head']")
        boxes[width] = {"main": box(page, "#qkv-live .qkv-main"),
                        "panel": box(page, "#qkv-live .qkv-prediction")}
        artefact(page, tmp_path, f"serve-{task}-{width}.png")
    wide, narrow = boxes[WIDE], boxes[NARROW]
    assert wide["panel"]["x"] >= wide["main"]["x"] + wide["main"]["width"]        # beside …
    assert wide["panel"]["y"] < wide["main"]["y"] + wide["main"]["height"]
    assert narrow["panel"]["y"] >= narrow["main"]["y"] + narrow["main"]["height"]  # … below
    assert narrow["panel"]["x"] == pytest.approx(narrow["main"]["x"], abs=1)
    assert narrow["panel"]["x"] + narrow["panel"]["width"] <= NARROW
    assert_clean(page)


def test_a_wide_screenshot_is_the_same_twice(loaded, page, tmp_path):
    page.set_viewport_size({"width": WIDE, "height": 900})
    with serving(loaded) as url:
        shots = []
        for attempt in range(2):
            page.goto(link(url, text=LONG, target="the cat"))
            ready(page)
            shots.append(artefact(page, tmp_path, f"serve-{WIDE}-{attempt}.png"))
    assert pixels(shots[0]) == pixels(shots[1])
    assert_clean(page)


def reference_document():
    """A seeded document (no model) with a next-token prediction: the same page everywhere."""
    document = tiny_document(["I", "love", "my", "dog", "and", "my", "cat"])
    document["prediction"] = {"kind": "next_token", "tokens": ["dog", "cat", "</script>", "."],
                              "ids": [7, 9, 11, 12], "probabilities": [0.5, 0.25, 0.125, 0.0625]}
    return document


def setup_of(page):
    """This Chromium's version and the fonts it drew the page's text with (DevTools)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    fonts = set()
    for selector in (".qkv-title", ".qkv-token", ".qkv-prediction h4", ".qkv-label"):
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        for font in cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]:
            fonts.add(font["familyName"])
    cdp.detach()
    return {"chromium": page.context.browser.version, "fonts": sorted(fonts)}


def differing_share(png, reference_png, diff_path):
    """The share of pixels that differ by more than ``CHANGED``; writes a diff image."""
    from PIL import Image, ImageChops

    size, _ = pixels(png)
    reference_size, _ = pixels(reference_png)
    if size != reference_size:
        return 1.0
    import io

    diff = ImageChops.difference(Image.open(io.BytesIO(png)).convert("RGB"),
                                 Image.open(io.BytesIO(reference_png)).convert("RGB"))
    strongest = diff.convert("L").point(lambda x: 255 if x > CHANGED else 0)
    strongest.save(diff_path)
    return strongest.histogram()[255] / (size[0] * size[1])


def test_static_page_looks_like_its_reference(page, tmp_path):
    path = save_html(reference_document(), tmp_path / "reference.html")
    update = os.environ.get("QKV_UPDATE_SCREENSHOTS") == "1"
    for width in (WIDE, NARROW):
        page.set_viewport_size({"width": width, "height": 720})
        page.goto(path.as_uri())
        page.wait_for_selector(".qkv-prediction")
        assert page.evaluate(NO_OVERFLOW)
        png = artefact(page, tmp_path, f"reference-{width}.png")
        setup, name = setup_of(page), f"view-{width}"
        if update:
            REFERENCE.mkdir(exist_ok=True)
            (REFERENCE / f"{name}.png").write_bytes(png)
            (REFERENCE / f"{name}.json").write_text(json.dumps(setup, indent=1) + "\n")
            continue
        if not (REFERENCE / f"{name}.json").exists():
            pytest.skip(f"no reference screenshot {name}: record with QKV_UPDATE_SCREENSHOTS=1")
        recorded = json.loads((REFERENCE / f"{name}.json").read_text())
        if recorded != setup:
            pytest.skip(f"the reference was made with {recorded}, this is {setup}: screenshots "
                        f"differ with the browser and fonts; re-record with "
                        f"QKV_UPDATE_SCREENSHOTS=1")
        share = differing_share(png, (REFERENCE / f"{name}.png").read_bytes(),
                                tmp_path / f"diff-{width}.png")
        assert share <= CHANGED_SHARE, (
            f"{name}: {share:.2%} of the pixels differ from tests/serve/reference/{name}.png "
            f"(diff: {tmp_path / f'diff-{width}.png'})")
    assert_clean(page)
