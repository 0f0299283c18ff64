"""Every row of issue 15 ("Performance: ahead of the references, close to this machine's limits").

    python benchmarks/run.py                    # or: make bench; about 12 minutes on 2 cores
    python benchmarks/run.py --quick            # about 5 minutes: smaller sizes, fewer rounds
    python benchmarks/run.py --json bench.json  # also write the rows as JSON

First measures the machine (``machine.measure()``: the fp32 GEMM rate and the memory read
bandwidth), then each group of rows, each against its reference in the same run:

* ``attention_rows.py``: the math path at T = 2048 and 4096, the fused path at T = 16384;
* ``tracing.py``: a full trace of MiniLM on 512 tokens;
* ``training.py``: the base encoder–decoder's training step, as it comes and compiled;
* ``serve.py``: ``qkv serve minilm``, ``/api/attention`` on 128 tokens;
* ``decoding.py`` and ``inference.py`` (where present): greedy decoding and MiniLM inference.

Prints one table (figure, qkv's median time, the reference's, the ratio — above 1: qkv is
faster —, the goal, whether it is met, the figure relative to the machine's limits) and, with
``--json``, writes ``{"machine", "environment", "rows", "skipped", "seconds"}``. A group that
fails is reported as skipped, with the error, and the others still run.

On a shared machine, OpenMP's default wait policy (threads spin between parallel regions)
makes every program that launches many small kernels erratic: a 4 MB ``mul_`` took 0.06 ms or
12 ms depending on the neighbours (benchmarks/README.md). This script therefore runs itself
with ``OMP_WAIT_POLICY=PASSIVE`` unless the variable is set already — for the references and
qkv alike; set ``OMP_WAIT_POLICY=ACTIVE`` to measure with spinning threads. Not part of
``make test``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sys
import time
import traceback
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

GROUPS = (  # (module in benchmarks/, keyword arguments for --quick where its rows() takes them)
    ("attention_rows", {"quick": True}),
    ("tracing", {"quick": True}),
    ("training", {"quick": True}),
    ("serve", {"quick": True}),
    ("decoding", {"rounds": 1, "new_tokens": 64}),
    ("inference", {"rounds": 2}),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes and fewer rounds (the figures are then indicative)")
    parser.add_argument("--json", metavar="PATH", help="write the rows as JSON to PATH")
    parser.add_argument("--only", nargs="+", metavar="GROUP", choices=[g for g, _ in GROUPS],
                        help="run only these groups")
    args = parser.parse_args()
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"                      # before torch loads
        os.execv(sys.executable, [sys.executable, *sys.argv])

    import torch

    import machine as machine_module
    from common import print_rows

    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    measured = machine_module.measure()
    environment = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                   "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"), "quick": args.quick}
    print(machine_module.describe(measured))
    print(f"torch {torch.__version__}, OMP_WAIT_POLICY={environment['OMP_WAIT_POLICY']}"
          f"{', --quick' if args.quick else ''}", flush=True)

    rows, skipped = [], []
    for name, quick_arguments in GROUPS:
        if args.only and name not in args.only:
            continue
        if not os.path.exists(os.path.join(HERE, f"{name}.py")):
            skipped.append({"group": name, "reason": f"benchmarks/{name}.py is not there"})
            continue
        group_started = time.perf_counter()
        try:
            module = importlib.import_module(name)
            accepted = inspect.signature(module.rows).parameters
            kwargs = ({k: v for k, v in quick_arguments.items() if k in accepted}
                      if args.quick else {})
            group_rows = module.rows(measured, **kwargs)
        except Exception as error:                                      # report, go on
            traceback.print_exc()
            skipped.append({"group": name, "reason": f"{type(error).__name__}: {error}"})
            continue
        for row in group_rows:
            row.setdefault("group", name)
        rows.extend(group_rows)
        print(f"[{name}: {len(group_rows)} rows in {time.perf_counter() - group_started:.0f} s]",
              flush=True)

    print()
    print_rows(rows)
    for skip in skipped:
        print(f"skipped {skip['group']}: {skip['reason']}")
    met = sum(bool(row["met"]) for row in rows)
    seconds = time.perf_counter() - started
    print(f"\n{met} of {len(rows)} rows met their goal; {seconds / 60:.1f} minutes")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump({"machine": measured, "environment": environment, "rows": rows,
                       "skipped": skipped, "seconds": seconds}, file, indent=1,
                      ensure_ascii=False, default=float)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
