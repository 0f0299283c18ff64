"""Issue 15's explorer row: ``qkv serve minilm``, ``/api/attention`` on a 128-token sentence.

    python benchmarks/serve.py               # about two minutes on 2 cores
    python benchmarks/serve.py --quick       # fewer requests

Starts ``python -m qkv serve minilm`` on a free local port (a process of its own, as a user
runs it), waits until it answers, sends one request to warm it up, then ``/api/attention``
requests one after another, each with a text that MiniLM reads as exactly 128 tokens
(``[CLS]``, 126 word pieces, ``[SEP]``), and times each at the client (the full HTTP answer,
body read). Reported: the median (p50) and the 99th percentile (nearest rank: with fewer than
100 requests, the slowest); goal: p50 ≤ 150 ms. No reference: the row compares with the goal
only. Limit: one untraced forward of the same 128 tokens, measured here, as the floor of a
request (the figure is p50 / that).

Importable: :func:`rows` takes the machine's figures. Benchmarks never run as unit tests.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import qkv  # noqa: E402
from common import ROOT, median_times, run_alone  # noqa: E402

TOKENS = 128
GOAL_S = 0.150
WORDS = ("the quick brown fox jumps over the lazy dog while attention shows which words "
         "matter to each other in a sentence").split()


def sentence(tokenizer, tokens: int = TOKENS) -> str:
    """A text that MiniLM reads as ``tokens`` tokens, ``[CLS]`` and ``[SEP]`` included."""
    words: list[str] = []
    while len(tokenizer.encode(" ".join(words))) < tokens - 2:
        words.append(WORDS[len(words) % len(WORDS)])
    text = " ".join(words)
    if len(tokenizer.encode(text)) != tokens - 2:
        raise RuntimeError(f"could not make a {tokens}-token sentence")
    return text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, timeout: float = 120) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def request_times(text: str, requests: int) -> tuple[list[float], int]:
    """Seconds of each of ``requests`` sequential ``/api/attention`` calls, and the body size."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "qkv", "serve", "minilm", "--port",
                               str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                get(base + "/api/info", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"qkv serve did not start:\n{server.stderr.read()[-2000:]}")
                time.sleep(0.5)
        url = base + "/api/attention?" + urllib.parse.urlencode({"text": text})
        status, body = get(url)                                         # warm-up
        if status != 200:
            raise RuntimeError(f"/api/attention answered {status}: {body[:500]!r}")
        times = []
        for _ in range(requests):
            start = time.perf_counter()
            get(url)
            times.append(time.perf_counter() - start)
        return times, len(body)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def rows(machine: dict, *, quick: bool = False) -> list[dict]:
    """The explorer row, measured now."""
    model, tokenizer = qkv.load_pretrained("minilm")
    model.eval()
    text = sentence(tokenizer)
    ids = torch.tensor([[tokenizer.bos_id, *tokenizer.encode(text), tokenizer.eos_id]])
    with torch.inference_mode():
        forward = median_times({"forward": lambda: model(ids)}, rounds=5)["forward"]
    del model
    times, size = request_times(text, requests=5 if quick else 30)
    p50, p99 = percentile(times, 50), percentile(times, 99)
    return [{
        "figure": f"qkv serve minilm, /api/attention on {TOKENS} tokens",
        "reference": "— (goal only)",
        "qkv_s": p50, "reference_s": None, "ratio": None,
        "goal": "p50 ≤ 150 ms, reported with p99", "met": p50 <= GOAL_S,
        "limit": (f"p50 = {p50 / forward:.0f}× one untraced forward of the same tokens "
                  f"({forward * 1e3:.0f} ms)"),
        "notes": (f"p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms over {len(times)} requests "
                  f"(one at a time, after a warm-up); answer {size / 1e6:.1f} MB of JSON"),
    }]


def main() -> None:
    run_alone(rows, __doc__, "5 requests instead of 30")


if __name__ == "__main__":
    main()
