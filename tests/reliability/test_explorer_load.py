"""The live explorer under load: the real ``qkv serve`` process, 16 clients × 500 requests.

A tiny language model is saved as a checkpoint and served by ``qkv serve`` on a free loopback
port (:func:`tests.serve.browser.qkv_serve`). 16 client threads, each with its own keep-alive
``httpx.Client``, send 500 requests apiece — 8,000 in all: 7 in 10 ``/api/attention`` on one of
five short sentences, 2 in 10 ``/api/info``, 1 in 10 the page ``/``. Every answer must be a 200
with what that route promises (a document whose tokens are those of the sentence asked, the
info, the page), within a wall-clock cap; the server's resident memory (``VmRSS`` in
``/proc/PID/status``), read after a warm-up of the same mix and at the end, may grow by at most
``RSS_GROWTH_MIB``. The figures are printed and written to ``explorer-load.json`` in
``$QKV_ARTIFACTS`` (default ``tests/artifacts``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import httpx
import pytest

import qkv
from qkv.tokenizers import WordTokenizer
from qkv.training.checkpoint import save_checkpoint
from tests.serve.browser import qkv_serve

CLIENTS, REQUESTS = 16, 500          # 8,000 requests
WARM_UP = 20                         # requests per client before the first memory reading
WALL_LIMIT_S = 180                   # measured 32 s on 2 cores shared with other work
RSS_GROWTH_MIB = 50                  # between the warm-up and the end
SENTENCES = ["I love my dog", "the cat sat on the mat", "my dog saw the cat",
             "I love the mat", "the dog"]


def resident_mib(pid: int) -> float:
    """``VmRSS`` of process ``pid``, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024           # "VmRSS:   123456 kB"
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def run_clients(url: str, count: int, tokens: dict[str, list[str]]):
    """``CLIENTS`` threads of ``count`` requests each; returns (latencies by route, errors)."""
    latencies = {"attention": [], "info": [], "page": []}
    errors, record = [], threading.Lock()

    def client(index: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for step in range(count):
                kind = "attention" if step % 10 < 7 else "info" if step % 10 < 9 else "page"
                sentence = SENTENCES[(index + step) % len(SENTENCES)]
                start = time.perf_counter()
                try:
                    if kind == "attention":
                        response = http.get("/api/attention", params={"text": sentence})
                        ok = (response.status_code == 200
                              and response.json()["sides"]["text"] == tokens[sentence])
                    elif kind == "info":
                        response = http.get("/api/info")
                        ok = response.status_code == 200 and response.json()["max_tokens"] == 32
                    else:
                        response = http.get("/")
                        ok = response.status_code == 200 and 'id="qkv-text"' in response.text
                    problem = None if ok else f"{kind}: {response.status_code} " \
                                              f"{response.text[:200]}"
                except (httpx.HTTPError, ValueError, KeyError) as error:  # ValueError: bad JSON
                    problem = f"{kind}: {type(error).__name__}: {error}"
                elapsed = time.perf_counter() - start
                with record:
                    latencies[kind].append(elapsed)
                    if problem is not None:
                        errors.append(problem)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors


def test_explorer_answers_8000_concurrent_requests_without_error_or_growth(tmp_path):
    tokenizer = WordTokenizer.train(SENTENCES)
    config = qkv.LanguageModelConfig(vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2,
                                     num_layers=2, d_ff=32, dropout=0.0)
    folder = save_checkpoint(tmp_path / "run", model=qkv.LanguageModel(config),
                             task="language_model", source_tokenizer=tokenizer,
                             target_tokenizer=tokenizer, step=1)
    tokens = {s: ["<bos>", *tokenizer.tokens(tokenizer.encode(s))] for s in SENTENCES}
    if not Path("/proc/self/status").exists():
        pytest.skip("reads resident memory from /proc (Linux)")

    with qkv_serve(folder, "--max-tokens", "32") as (url, process):
        _, warm_up_errors = run_clients(url, WARM_UP, tokens)
        assert warm_up_errors == []
        rss_warm, peak, done = resident_mib(process.pid), [0.0], threading.Event()

        def watch() -> None:                               # the peak, every 0.2 s
            while not done.wait(0.2):
                peak[0] = max(peak[0], resident_mib(process.pid))

        watcher = threading.Thread(target=watch)
        watcher.start()
        start = time.perf_counter()
        try:
            latencies, errors = run_clients(url, REQUESTS, tokens)
        finally:
            wall = time.perf_counter() - start
            done.set()
            watcher.join()
        rss_end = resident_mib(process.pid)
        assert process.poll() is None, process.output()

    every = [t for times in latencies.values() for t in times]
    figures = {
        "clients": CLIENTS, "requests_per_client": REQUESTS, "requests": len(every),
        "errors": len(errors), "wall_s": round(wall, 2),
        "requests_per_s": round(len(every) / wall, 1),
        "p50_ms": round(1000 * percentile(every, 0.50), 2),
        "p99_ms": round(1000 * percentile(every, 0.99), 2),
        "by_route": {kind: {"requests": len(times),
                            "p50_ms": round(1000 * percentile(times, 0.50), 2),
                            "p99_ms": round(1000 * percentile(times, 0.99), 2)}
                     for kind, times in latencies.items()},
        "rss_after_warm_up_mib": round(rss_warm, 1), "rss_end_mib": round(rss_end, 1),
        "rss_peak_mib": round(max(peak[0], rss_end), 1),
        "rss_growth_mib": round(rss_end - rss_warm, 1),
        "limits": {"wall_s": WALL_LIMIT_S, "rss_growth_mib": RSS_GROWTH_MIB},
    }
    folder = Path(os.environ.get("QKV_ARTIFACTS") or Path(__file__).parents[1] / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "explorer-load.json").write_text(json.dumps(figures, indent=2) + "\n")
    print("\nexplorer under load:", json.dumps(figures))

    assert len(every) == CLIENTS * REQUESTS == 8000
    assert errors == [], f"{len(errors)} errors, the first: {errors[:5]}"
    assert wall <= WALL_LIMIT_S, f"8,000 requests took {wall:.0f} s, more than {WALL_LIMIT_S} s"
    assert rss_end - rss_warm <= RSS_GROWTH_MIB, figures
