"""What the browser tests share: a served explorer (in a thread, or ``qkv serve`` as a process),
waiting for it, reading what it shows.

Chromium is Debian's (``/usr/bin/chromium``), driven headless by Playwright, which never
downloads a browser here; the fixtures (``browser``, ``page``) are in ``conftest.py``.
Screenshots go to ``tmp_path`` and to ``$QKV_ARTIFACTS`` (default ``tests/artifacts``).
"""

import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import httpx

from qkv.serve import create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NO_OVERFLOW = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(loaded, **options):
    """The explorer of ``loaded`` served by uvicorn in a thread; yields its URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(create_app(loaded, max_tokens=16, **options), host="127.0.0.1",
                            port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        instance.should_exit = True
        thread.join(10)


@contextmanager
def qkv_serve(folder, *options, timeout=60):
    """``qkv serve FOLDER --port P OPTIONS…`` as a real process on a free loopback port, once it
    answers; yields ``(url, process)``, ``process.output()`` being what it printed so far."""
    port = free_port()
    log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "qkv", "serve", str(folder), "--port",
                                str(port), *options], stdout=log, stderr=subprocess.STDOUT)
    process.output = lambda: (log.flush(), log.seek(0), log.read())[-1]
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + timeout
    try:
        while True:
            try:
                httpx.get(f"{url}/api/info", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.output()
                assert time.monotonic() < deadline, "qkv serve did not start"
                time.sleep(0.2)
        yield url, process
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def link(url, **params):
    """``url`` with a query string: the explorer's permalink of a sentence."""
    return f"{url}?{urlencode(params)}"


def artefact(page, tmp_path, name):
    """A full-page screenshot, in ``tmp_path`` and the artifacts folder; returns its PNG bytes."""
    data = page.screenshot(path=tmp_path / name, full_page=True)
    folder = Path(os.environ.get("QKV_ARTIFACTS") or Path(__file__).parents[1] / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / name, folder / name)
    return data


def pixels(png):
    """``(size, RGBA bytes)`` of a PNG, to compare screenshots pixel by pixel."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGBA")
    return image.size, image.tobytes()


def ready(page):
    """Wait until the explorer has drawn the answer to its latest request."""
    page.wait_for_selector("#qkv-live[data-ready='1'] .qkv-edges line", state="attached",
                           timeout=20_000)


def submit(page, text):
    """Type ``text``, submit, and wait for its attention (after the page's first one)."""
    ready(page)
    page.evaluate("document.getElementById('qkv-live').removeAttribute('data-ready')")
    page.fill("#qkv-text", text)
    page.press("#qkv-text", "Enter")
    ready(page)


def shown_prediction(page, scope):
    """A ranked prediction panel as the reader sees it: the best label, and each row's cells."""
    best = page.text_content(f"{scope} .qkv-predicted-label")
    rows = page.eval_on_selector_all(f"{scope} .qkv-ranking tr[data-label]", """
        rows => rows.map(r => ({rank: r.cells[0].textContent, label: r.cells[1].textContent,
                                children: r.cells[1].children.length,
                                text: r.cells[2].textContent,
                                probability: +r.dataset.probability}))""")
    return best, rows


def box(page, selector):
    """The bounding box of the element ``selector`` names: ``{x, y, width, height}`` in px."""
    return page.locator(selector).bounding_box()


def assert_clean(page, *, expected_statuses=()):
    """No script error, no console error, no failed request and no HTTP error but those of
    ``expected_statuses`` (e.g. ``[400]`` where a test sends a too-long sentence)."""
    assert page.errors == []
    bad = [r for r in page.bad_responses if r[0] not in expected_statuses]
    assert bad == [] and page.failed_requests == []
    unexpected = [m for m in page.console_errors
                  if not any(f"status of {status}" in m for status in expected_statuses)]
    assert unexpected == []
