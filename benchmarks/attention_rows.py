"""Issue 15's attention rows: the math path at T = 2048 and 4096, the fused path at T = 16384.

    python benchmarks/attention_rows.py            # about two minutes on 2 cores
    python benchmarks/attention_rows.py --quick    # one length, fewer rounds

B = 1, H = 8, D = 64, fp32, no autograd, each against PyTorch's fused
``torch.nn.functional.scaled_dot_product_attention`` in the same run (taking turns, median of
the rounds), outputs checked equal first:

* **math path** (``qkv.scaled_dot_product_attention(..., need_weights=True)``, which also returns
  the ``(B, H, T, S)`` weights), causal (SDPA: ``is_causal``) and with a key-padding mask (the
  last quarter of the keys masked), T = S = 2048 and 4096. Goal: within 3× of the kernel that
  returns no weights (ratio ≥ 0.33). Limit: the useful FLOPs (``Q Kᵀ`` and ``weights @ V``,
  halved for causal) per second as a share of the measured GEMM rate, and the time the weights
  alone take to write at the measured memory bandwidth.
* **long context, fused path** (``need_weights=False``), T = S = 16384, causal and padded.
  Goal: ratio ≥ 1.0 and an extra peak memory of at most 64 MiB beyond q, k, v and the output,
  measured in a fresh process (the peak resident memory, see ``common.peak_memory``).

Importable: :func:`rows` takes the machine's figures (``machine.measure()``). Benchmarks never
run as unit tests.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import qkv  # noqa: E402
from common import median_times, mib, peak_memory, run_alone  # noqa: E402

B, H, D = 1, 8, 64
LONG = 16384
MEMORY_GOAL = 64 * 2 ** 20


def inputs(T: int, case: str) -> tuple[tuple, dict, dict]:
    """``(q, k, v)``, SDPA's and qkv's keyword arguments for ``case`` at length ``T``."""
    generator = torch.Generator().manual_seed(T)
    q, k, v = (torch.randn(B, H, T, D, generator=generator) for _ in range(3))
    if case == "causal":
        return (q, k, v), dict(is_causal=True), dict(causal=True)
    padding = qkv.length_mask(torch.tensor([T - T // 4]), max_len=T)   # (B, 1, 1, S)
    return (q, k, v), dict(attn_mask=padding), dict(mask=padding)


def useful_flops(T: int, case: str) -> float:
    """``Q Kᵀ`` and ``weights @ V``: 2·2·B·H·T·S·D, half of it for causal."""
    flops = 4 * B * H * T * T * D
    return flops / 2 if case == "causal" else flops


def math_rows(machine: dict, lengths: list[int], rounds: int) -> list[dict]:
    result = []
    for T in lengths:
        for case in ("causal", "padded"):
            (q, k, v), torch_kwargs, qkv_kwargs = inputs(T, case)
            with torch.no_grad():
                reference = F.scaled_dot_product_attention(q, k, v, **torch_kwargs)
                output, weights = qkv.scaled_dot_product_attention(q, k, v, need_weights=True,
                                                                   **qkv_kwargs)
                torch.testing.assert_close(output, reference, atol=1e-5, rtol=1e-5)
                del output, weights
                times = median_times({
                    "sdpa": lambda: F.scaled_dot_product_attention(q, k, v, **torch_kwargs),
                    "qkv": lambda: qkv.scaled_dot_product_attention(q, k, v, need_weights=True,
                                                                    **qkv_kwargs),
                }, rounds)
            ratio = times["sdpa"] / times["qkv"]
            rate = useful_flops(T, case) / times["qkv"] / 1e9
            weight_bytes = B * H * T * T * 4
            write_s = weight_bytes / (machine["read_gbps"] * 1e9)
            result.append({
                "figure": f"math path (weights returned), B1 H8 D64, T={T}, {case}",
                "reference": "torch SDPA (fused, no weights), same inputs",
                "qkv_s": times["qkv"], "reference_s": times["sdpa"], "ratio": ratio,
                "goal": "≥ 0.33× (within 3× of the fused kernel)", "met": ratio >= 0.33,
                "limit": (f"{rate / machine['gemm_gflops']:.0%} of the GEMM rate ({rate:.0f} "
                          f"useful GFLOP/s); the {mib(weight_bytes)} of weights alone take "
                          f"{write_s * 1e3:.0f} ms at {machine['read_gbps']:.0f} GB/s"),
                "notes": "output equal to SDPA's (1e-5)",
            })
    return result


_LONG_MEMORY = """
import torch, torch.nn.functional as F, qkv
T, B, H, D = {T}, 1, 8, 64
q, k, v = (torch.randn(B, H, T, D) for _ in range(3))
padded = {padded}
mask = qkv.length_mask(torch.tensor([T - T // 4]), max_len=T) if padded else None
small = [torch.randn(B, H, 64, D) for _ in range(3)]
with torch.no_grad():
    if {use_qkv}:
        call = lambda q, k, v, m: qkv.scaled_dot_product_attention(q, k, v, m, causal=not padded)[0]
    else:
        call = lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m,
                                                                 is_causal=not padded)
    call(*small, None if mask is None else mask[..., :64])          # warm-up: lazy imports
    start()
    output = call(q, k, v, mask)
    stop(output=output.numel() * output.element_size())
"""


def long_rows(machine: dict, rounds: int) -> list[dict]:
    result = []
    for case in ("causal", "padded"):
        (q, k, v), torch_kwargs, qkv_kwargs = inputs(LONG, case)
        with torch.no_grad():
            reference = F.scaled_dot_product_attention(q, k, v, **torch_kwargs)
            output, _ = qkv.scaled_dot_product_attention(q, k, v, **qkv_kwargs)
            torch.testing.assert_close(output, reference, atol=1e-5, rtol=1e-5)
            del output, reference
            times = median_times({
                "sdpa": lambda: F.scaled_dot_product_attention(q, k, v, **torch_kwargs),
                "qkv": lambda: qkv.scaled_dot_product_attention(q, k, v, **qkv_kwargs),
            }, rounds, warmup=0)
        memory = {}
        for name, use_qkv in (("qkv", True), ("sdpa", False)):
            measured = peak_memory(_LONG_MEMORY.format(T=LONG, padded=case == "padded",
                                                       use_qkv=use_qkv))
            memory[name] = measured["rise"] - measured["output"]
        ratio = times["sdpa"] / times["qkv"]
        rate = useful_flops(LONG, case) / times["qkv"] / 1e9
        result.append({
            "figure": f"long context, fused path, B1 H8 D64, T={LONG}, {case}",
            "reference": "torch SDPA, same inputs",
            "qkv_s": times["qkv"], "reference_s": times["sdpa"], "ratio": ratio,
            "goal": "≥ 1.0×, extra peak ≤ 64 MiB",
            "met": ratio >= 1.0 and memory["qkv"] <= MEMORY_GOAL,
            "limit": (f"{rate / machine['gemm_gflops']:.0%} of the GEMM rate ({rate:.0f} "
                      f"useful GFLOP/s)"),
            "notes": (f"extra peak memory beyond q, k, v and the output: qkv {mib(memory['qkv'])}"
                      f", SDPA {mib(memory['sdpa'])}; output equal to SDPA's (1e-5)"),
        })
    return result


def rows(machine: dict, *, quick: bool = False) -> list[dict]:
    """The math-path and long-context rows, measured now."""
    torch.manual_seed(0)
    lengths = [2048] if quick else [2048, 4096]
    return math_rows(machine, lengths, rounds=3 if quick else 5) + long_rows(
        machine, rounds=1 if quick else 3)


def main() -> None:
    run_alone(rows, __doc__, "T = 2048 only, fewer rounds")


if __name__ == "__main__":
    main()
