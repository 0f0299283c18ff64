"""Speed of qkv's attention relative to PyTorch, measured in the same run.

    python benchmarks/attention.py            # or: make bench
    python benchmarks/attention.py --lengths 128 512 --min-time 0.5

Prints, for each sequence length T (B=1, H=8, D=64, fp32):

* scaled_dot_product_attention, fused path and math path, as a ratio to
  ``torch.nn.functional.scaled_dot_product_attention`` (causal self-attention, plus a padding mask);
* ``qkv.MultiHeadAttention`` forward + backward (E=512, causal) as a ratio to ``torch.nn.MultiheadAttention``
  with the same weights (converted by ``qkv.from_torch`` and checked equal first).

A ratio is qkv's time / PyTorch's time: 1.00 is parity, below 1 is faster. Benchmarks never run as
unit tests; timings depend on the machine.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.utils import benchmark

import qkv

B, H, D = 1, 8, 64
E = H * D


def measure(fns: list, min_time: float, rounds: int = 3) -> list[float]:
    """Best seconds per call of each function in ``fns``.

    The functions take turns, ``rounds`` times, and each keeps its fastest block: on a shared
    machine the minimum is the figure least disturbed by other work, and taking turns exposes the
    reference and qkv to the same conditions.
    """
    best = [float("inf")] * len(fns)
    for fn in fns:
        fn()  # warm-up
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            timer = benchmark.Timer(stmt="fn()", globals={"fn": fn})
            best[i] = min(best[i], *timer.blocked_autorange(min_run_time=min_time / rounds).times)
    return best


def attention_rows(T: int, min_time: float) -> list[tuple[str, float, float, float]]:
    """(case, torch ms, qkv fused ms, qkv math ms) for causal and padded attention at length T."""
    q, k, v = (torch.randn(B, H, T, D) for _ in range(3))
    lengths = torch.tensor([T - T // 4])
    pad = qkv.length_mask(lengths, max_len=T)                           # (B, 1, 1, S)
    rows = []
    cases = {
        "causal": (dict(is_causal=True), dict(causal=True)),
        "padding mask": (dict(attn_mask=pad), dict(mask=pad)),
    }
    for case, (torch_kwargs, qkv_kwargs) in cases.items():
        with torch.no_grad():
            reference = F.scaled_dot_product_attention(q, k, v, **torch_kwargs)
            fused, _ = qkv.scaled_dot_product_attention(q, k, v, **qkv_kwargs)
            math_out, _ = qkv.scaled_dot_product_attention(q, k, v, need_weights=True,
                                                           **qkv_kwargs)
            torch.testing.assert_close(fused, reference, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(math_out, reference, atol=1e-5, rtol=1e-5)
            t_torch, t_fused, t_math = measure([
                lambda: F.scaled_dot_product_attention(q, k, v, **torch_kwargs),
                lambda: qkv.scaled_dot_product_attention(q, k, v, **qkv_kwargs),
                lambda: qkv.scaled_dot_product_attention(q, k, v, need_weights=True, **qkv_kwargs),
            ], min_time)
        rows.append((case, t_torch, t_fused, t_math))
    return rows


def multi_head_row(T: int, min_time: float) -> tuple[float, float]:
    """(torch s, qkv s) for forward + backward of causal multi-head self-attention."""
    reference = torch.nn.MultiheadAttention(E, H, batch_first=True)
    attention = qkv.from_torch(reference)
    x = torch.randn(B, T, E, requires_grad=True)
    torch_mask = torch.ones(T, T, dtype=torch.bool).triu(1)             # PyTorch: True = masked
    expected, _ = reference(x, x, x, attn_mask=torch_mask, need_weights=False)
    torch.testing.assert_close(attention(x, causal=True)[0], expected, atol=1e-5, rtol=1e-5)

    def torch_step():
        reference(x, x, x, attn_mask=torch_mask, need_weights=False, is_causal=True)[0].sum().backward()

    def qkv_step():
        attention(x, causal=True)[0].sum().backward()

    t_torch, t_qkv = measure([torch_step, qkv_step], min_time)
    return t_torch, t_qkv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--min-time", type=float, default=1.0,
                        help="seconds of timing per measurement (default %(default)s)")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"B={B} H={H} D={D} fp32; ratio = qkv time / torch time")
    print()
    print("scaled_dot_product_attention (forward)")
    print(f"{'T':>5}  {'case':<13} {'torch SDPA':>11} {'qkv fused':>10} {'ratio':>6} "
          f"{'qkv math':>10} {'ratio':>6}")
    for T in args.lengths:
        for case, t_torch, t_fused, t_math in attention_rows(T, args.min_time):
            print(f"{T:>5}  {case:<13} {t_torch * 1e3:>9.3f}ms {t_fused * 1e3:>8.3f}ms "
                  f"{t_fused / t_torch:>6.2f} {t_math * 1e3:>8.3f}ms {t_math / t_torch:>6.2f}")
    print()
    print(f"MultiHeadAttention forward + backward (E={E}, causal self-attention)")
    print(f"{'T':>5}  {'torch nn.MHA':>12} {'qkv':>10} {'ratio':>6}")
    for T in args.lengths:
        t_torch, t_qkv = multi_head_row(T, args.min_time)
        print(f"{T:>5}  {t_torch * 1e3:>10.3f}ms {t_qkv * 1e3:>8.3f}ms {t_qkv / t_torch:>6.2f}")


if __name__ == "__main__":
    main()
