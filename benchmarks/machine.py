"""This machine's limits, measured now: the fp32 GEMM rate and the memory read bandwidth.

    python benchmarks/machine.py

Every benchmark row relates its time to one of these (a share of the GEMM rate for
compute-bound work, a share of the bandwidth floor for memory-bound decoding), measured in the
same run, because machines differ between sessions and the CPU is shared.

* GEMM rate: a 4096³ fp32 product, best of a few, by PyTorch's default BLAS (``torch.mm``) and
  by oneDNN (``torch.ops.mkldnn._linear_pointwise``, where present); ``gemm_gflops`` is the
  better of the two — the machine's limit as far as PyTorch's own kernels reach it. (On AMD
  CPUs the MKL that PyTorch ships runs no AVX-512 code and can be several times slower than
  oneDNN, so the two are reported apart.)
* Read bandwidth: ``x.sum()`` over a 512 MiB fp32 tensor (far larger than any cache), best of a
  few: the rate at which weights can stream from memory.

Best-of rather than median: other work on a shared machine only ever makes a round slower.

On a machine busier than its cores (other jobs), OpenMP's default spin-waiting turns every
parallel region into a wait for a descheduled thread: kernel times become multiples of ~12 ms and
a decoding step takes 6× longer, for qkv and the reference alike. :func:`settle_threads`, called
by the benchmarks before they import torch, then sets ``OMP_WAIT_POLICY=PASSIVE`` (idle threads
sleep instead of spinning), which gives stable times; on a quiet machine it changes nothing.
"""

from __future__ import annotations

import os
import platform
import time


def settle_threads() -> bool:
    """Before torch is imported: ``OMP_WAIT_POLICY=PASSIVE`` if the 1-minute load exceeds the
    cores (and nobody chose a policy). Returns whether it did."""
    busy = hasattr(os, "getloadavg") and os.getloadavg()[0] > (os.cpu_count() or 1)
    if busy and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        return True
    return False


def _best_seconds(call, rounds: int) -> float:
    call()                                                              # warm-up
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(size: int = 4096, read_mib: int = 512, rounds: int = 5) -> dict:
    """The machine's fp32 GEMM rate and read bandwidth, measured now.

    Returns:
        A dict: ``gemm_gflops`` (the better of the two GEMM rates), ``gemm_gflops_blas``
        (``torch.mm``), ``gemm_gflops_onednn`` (``None`` without oneDNN), ``read_gbps``,
        ``threads``, ``cpu``, ``cpu_capability``, ``load`` (the 1-minute load average, a hint
        of how shared the machine was) and ``wait_policy`` (``OMP_WAIT_POLICY``).
    """
    import torch

    with torch.inference_mode():
        a, b = torch.randn(size, size), torch.randn(size, size)
        flops = 2 * size ** 3
        blas = flops / _best_seconds(lambda: torch.mm(a, b), rounds) / 1e9
        onednn = None
        try:
            weight = b.t().contiguous()                                 # (out, in)
            linear = torch.ops.mkldnn._linear_pointwise
            onednn = flops / _best_seconds(lambda: linear(a, weight, None, "none", [], ""),
                                           rounds) / 1e9
        except (AttributeError, RuntimeError):
            pass
        del a, b
        x = torch.ones(read_mib * 2 ** 20 // 4)
        read = x.numel() * 4 / _best_seconds(x.sum, rounds + 2) / 1e9
        del x
    return {
        "gemm_gflops": max(blas, onednn or 0.0),
        "gemm_gflops_blas": blas,
        "gemm_gflops_onednn": onednn,
        "read_gbps": read,
        "threads": torch.get_num_threads(),
        "cpu": _cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    }


def describe(machine: dict) -> str:
    """One line for a benchmark's header."""
    onednn = machine.get("gemm_gflops_onednn")
    rates = f"BLAS {machine['gemm_gflops_blas']:.0f}" + (
        f", oneDNN {onednn:.0f}" if onednn else "")
    return (f"{machine['cpu']} ({machine['cpu_capability']}), {machine['threads']} threads, "
            f"load {machine['load']:.1f}, OMP_WAIT_POLICY={machine['wait_policy']}: fp32 GEMM "
            f"{machine['gemm_gflops']:.0f} GFLOP/s ({rates}), read "
            f"{machine['read_gbps']:.1f} GB/s")


if __name__ == "__main__":
    settle_threads()
    print(describe(measure()))
