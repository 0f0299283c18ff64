"""What the row benchmarks share: timing in turns, peak memory in a fresh process, printing.

* :func:`median_times`: the calls take turns, round after round (the order reversed every other
  round), and each keeps the median of its rounds: the reference and qkv see the same
  machine, also when other work comes and goes on it.
* :func:`peak_memory`: runs a snippet in a fresh Python process and returns by how much its
  peak resident memory rose during the measured part (Linux: ``VmHWM`` after resetting it
  through ``/proc/self/clear_refs``; elsewhere ``ru_maxrss``, less exact). ``tracemalloc`` does
  not see PyTorch's allocations, hence a process of its own.
* :func:`print_rows`: the rows as a table.

A row is a dict with the keys ``figure``, ``reference``, ``qkv_s``, ``reference_s``, ``ratio``
(above 1: qkv is faster), ``goal``, ``met``, ``limit`` (the figure relative to this machine's
measured limits) and ``notes``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def median_times(calls: dict, rounds: int, warmup: int = 1) -> dict:
    """Median seconds of each named call over ``rounds`` turns, after ``warmup`` calls each."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times: dict = {name: [] for name in calls}
    names = list(calls)
    for round_ in range(rounds):
        for name in (names if round_ % 2 == 0 else reversed(names)):
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


_MEMORY_PRELUDE = """
import json, resource, sys
def _rss():
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * resource.getpagesize()
def _peak():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
def start():
    global _before
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")                             # reset VmHWM to the current RSS
    except OSError:
        pass
    _before = _rss()
def stop(**extra):
    print("PEAK_MEMORY " + json.dumps({"rise": _peak() - _before, **extra}))
"""


def peak_memory(snippet: str, timeout: float = 600) -> dict:
    """Run ``snippet`` in a fresh process; it calls ``start()`` and ``stop(**numbers)`` around the
    part to measure. Returns ``{"rise": bytes, **numbers}``: how far the peak resident memory
    rose above the memory at ``start()``."""
    code = _MEMORY_PRELUDE + textwrap.dedent(snippet)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=timeout, cwd=ROOT,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    for line in result.stdout.splitlines():
        if line.startswith("PEAK_MEMORY "):
            return json.loads(line[len("PEAK_MEMORY "):])
    raise RuntimeError(f"the memory measurement failed:\n{result.stderr[-2000:]}")


def mib(n: float) -> str:
    return f"{n / 2 ** 20:.0f} MiB"


def print_rows(rows: list[dict]) -> None:
    """The rows as a table: figure, qkv, reference, ratio, goal, met; limit and notes below."""
    print(f"{'figure':<64} {'qkv':>9} {'reference':>9} {'ratio':>6}  {'goal':<30} met")
    for row in rows:
        qkv_s, ref_s, ratio = row["qkv_s"], row["reference_s"], row["ratio"]
        print(f"{row['figure'][:64]:<64} {_seconds(qkv_s):>9} {_seconds(ref_s):>9} "
              f"{'—' if ratio is None else f'{ratio:.2f}×':>6}  {row['goal'][:30]:<30} "
              f"{'yes' if row['met'] else 'NO'}")
        print(f"    reference: {row['reference']}; limit: {row['limit']}")
        if row.get("notes"):
            print(f"    {row['notes']}")


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1e3:.1f}ms" if value < 10 else f"{value:.1f}s"


def run_alone(rows, doc: str, quick_help: str) -> None:
    """A benchmark file run by itself: measure the machine, then print its ``rows(machine,
    quick=…)``; ``--quick`` as ``quick_help`` says."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    args = parser.parse_args()
    import machine as machine_module

    measured = machine_module.measure()
    print(machine_module.describe(measured))
    print_rows(rows(measured, quick=args.quick))
