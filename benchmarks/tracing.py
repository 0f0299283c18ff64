"""Issue 15's trace row: a full trace of MiniLM on 512 tokens vs the same forward untraced.

    python benchmarks/tracing.py             # about a minute on 2 cores
    python benchmarks/tracing.py --quick

all-MiniLM-L6-v2 (``load_pretrained("minilm")``: 6 layers, 12 heads, d_model 384), one sequence
of 512 random tokens, under ``torch.inference_mode()``: ``model(ids)`` against
``with qkv.trace(model): model(ids)`` recording every field of every attention (q, k, v,
scores, scaled scores, mask, weights, head outputs, concat, output), taking turns, median of
the rounds. Goals: at most 2× the untraced time (ratio ≥ 0.5), and a peak memory of the traced
forward at most 25% above the bytes it records (measured in a fresh process, see
``common.peak_memory``). Also reported, in the notes: the same trace with autograd on (what a
trace inside a training step, or ``qkv.views.explore``, pays).

Importable: :func:`rows` takes the machine's figures. Benchmarks never run as unit tests.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import qkv  # noqa: E402
from common import median_times, mib, peak_memory, run_alone  # noqa: E402
from qkv.trace import trace  # noqa: E402

LENGTH = 512
MEMORY_GOAL = 1.25


def token_ids(tokenizer, length: int = LENGTH) -> torch.Tensor:
    """``(1, length)``: ``[CLS]``, random word pieces, ``[SEP]``."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, tokenizer.vocab_size, (1, length), generator=generator)
    ids[0, 0], ids[0, -1] = tokenizer.bos_id, tokenizer.eos_id
    return ids


def recorded_bytes(recorded) -> int:
    return sum(getattr(record, field).untyped_storage().nbytes()
               for name in recorded.names() for record in recorded.records(name)
               for field in record.fields())


def multiply_adds(config, length: int) -> float:
    """The forward's multiply-adds: the linear layers and the two attention products."""
    E, L = config.d_model, config.num_layers
    return L * length * (4 * E * E + 2 * E * config.d_ff + 2 * length * E)


_MEMORY = """
import torch, qkv
from qkv.trace import trace
model, tokenizer = qkv.load_pretrained("minilm")
model.eval()
ids = torch.randint(1000, tokenizer.vocab_size, (1, {length}))
with torch.inference_mode():
    model(ids)
    with trace(model) as warm:                    # warm-up: the traced path's lazy imports
        model(ids[:, :16])
    del warm
    start()
    with trace(model) as recorded:
        model(ids)
    recorded_bytes = sum(getattr(r, f).untyped_storage().nbytes() for n in recorded.names()
                         for r in recorded.records(n) for f in r.fields())
    stop(recorded=recorded_bytes)
"""


def rows(machine: dict, *, quick: bool = False) -> list[dict]:
    """The full-trace row, measured now."""
    model, tokenizer = qkv.load_pretrained("minilm")
    model.eval()
    ids = token_ids(tokenizer)

    def plain():
        with torch.inference_mode():
            return model(ids)

    def traced():
        with torch.inference_mode(), trace(model) as recorded:
            model(ids)
        return recorded

    def traced_with_autograd():
        with trace(model) as recorded:
            model(ids)
        return recorded

    recorded = traced()
    fields = set(recorded[recorded.names()[0]].fields())
    with torch.inference_mode():
        torch.testing.assert_close(traced_output(model, ids), plain(), atol=1e-5, rtol=1e-5)
    nbytes = recorded_bytes(recorded)
    del recorded
    times = median_times({"plain": plain, "traced": traced,
                          "autograd": traced_with_autograd}, rounds=3 if quick else 5)
    memory = peak_memory(_MEMORY.format(length=LENGTH))
    ratio = times["plain"] / times["traced"]
    memory_ratio = memory["rise"] / memory["recorded"]
    written_s = nbytes / (machine["read_gbps"] * 1e9)
    rate = 2 * multiply_adds(model.config, LENGTH) / times["plain"] / 1e9
    return [{
        "figure": f"full trace (every field) of MiniLM on {LENGTH} tokens",
        "reference": "the same forward untraced (inference mode)",
        "qkv_s": times["traced"], "reference_s": times["plain"], "ratio": ratio,
        "goal": "≤ 2× time; memory ≤ recorded + 25%",
        "met": ratio >= 0.5 and memory_ratio <= MEMORY_GOAL,
        "limit": (f"untraced forward at {rate / machine['gemm_gflops']:.0%} of the GEMM rate; "
                  f"writing the {mib(nbytes)} recorded takes {written_s * 1e3:.0f} ms at "
                  f"{machine['read_gbps']:.0f} GB/s"),
        "notes": (f"peak memory {mib(memory['rise'])} for {mib(memory['recorded'])} recorded "
                  f"({memory_ratio:.2f}×; fields: {len(fields)}); with autograd on, the trace "
                  f"takes {times['autograd'] / times['plain']:.2f}× the untraced forward"),
    }]


def traced_output(model, ids: torch.Tensor) -> torch.Tensor:
    """The traced forward's output (must equal the untraced one)."""
    with trace(model):
        return model(ids)


def main() -> None:
    run_alone(rows, __doc__, "fewer rounds")


if __name__ == "__main__":
    main()
