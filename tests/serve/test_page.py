"""The explorer's page: shipped static files, declared as package data, filled in safely."""

import fnmatch
import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from qkv.serve import page as explorer
from qkv.serve.page import explorer_page, fill

ROOT = Path(__file__).parents[2]


def test_every_static_file_is_package_data():
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "tool"]["setuptools"]["package-data"]["qkv.serve"]
    names = sorted(f"static/{f.name}" for f in resources.files("qkv.serve").joinpath(
        "static").iterdir() if f.is_file())
    assert names == ["static/explorer.css", "static/explorer.js", "static/favicon.svg",
                     "static/index.html"]
    assert all(any(fnmatch.fnmatch(name, glob) for glob in globs) for name in names)


def test_fill_names_missing_and_unused_slots():
    with pytest.raises(ValueError, match=r"slot\(s\) \['b'\] without a value; given: \['a'\]"):
        fill("{{a}} {{b}}", {"a": "1"})
    with pytest.raises(ValueError, match=r"has no slot\(s\) \['c'\]; its slots: \['a'\]"):
        fill("{{a}}", {"a": "1", "c": "2"})
    assert fill("{{a}}{{a}}", {"a": "{{a}}"}) == "{{a}}{{a}}"     # values are not re-read


def test_task_text_is_escaped_and_labels_stay_out():
    text = explorer_page("classification", max_tokens=4, max_chars=80, default_text="a </script>",
                         labels=["</script><b>x", "y"])
    assert '<small id="qkv-task" data-task="classification">(classification, 2 labels)' in text
    assert "<b>x" not in text and text.count("</script>") == 3     # config, views, explorer
    assert '"default_text": "a \\u003c/script\\u003e"' in text


def test_a_file_that_would_end_its_element_is_refused(monkeypatch):
    shipped = explorer.static
    monkeypatch.setattr(explorer, "static", lambda name: ("x = '</script>';"
                                                          if name == "explorer.js" else
                                                          shipped(name)))
    with pytest.raises(ValueError, match="explorer.js cannot be inlined: it contains '</script'"):
        explorer_page("encoder", max_tokens=4, max_chars=80, default_text="a")


def test_the_explorer_writes_text_as_text_and_loads_nothing():
    script = explorer.static("explorer.js")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
    text = explorer_page("translation", max_tokens=4, max_chars=80, default_text="a")
    assert not re.search(r"""src\s*=|@import|url\(|https://""", text)
    assert re.findall(r"""href\s*=\s*"([^"]*)""", text) == [explorer.favicon()]
