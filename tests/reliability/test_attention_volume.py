"""Attention at volume: thousands of random configurations per run against a float64 reference.

``tests/attention/test_properties.py`` states the properties (hypothesis, a few hundred examples);
this file checks the numbers, many times over: every configuration is drawn from its own seed
(``SEED + index``), so a run is the same in CI and locally and a failure names the index that
reproduces it. Each configuration runs on both paths of :func:`qkv.scaled_dot_product_attention`
— the math path (``need_weights=True``) and the fused path (weights ``None``) — and is compared
with :func:`reference`, a plain float64 ``softmax(Q Kᵀ · scale + mask) · V`` written here with the
project's conventions (module docstring of ``qkv/attention/functional.py``):

* a boolean mask is ``True`` where a query may attend; a float mask is added, ``-inf`` = masked;
* a row with no key left gets zeros, in the output and in the weights;
* causal with ``T ≠ S`` is bottom-right aligned: query ``i`` sits at position ``S - T + i``.

Drawn: 0–2 leading dims that broadcast between query, key and value (sizes 0–3, so some are
empty), ``T, S`` in 0–6, ``D`` in 1–8, ``Dv`` in 1–5; no mask, a boolean or a float mask of one
of six shapes (full, ``(T, S)``, ``(S,)``, ``(1, S)``, a key-padding ``(…, 1, S)``, a 0-d
scalar), random density and whole rows masked out; causal or not; the default scale or a drawn
one; float32 and bfloat16.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch

from qkv import scaled_dot_product_attention

SEED = 20_240_501
CONFIGS_PER_DTYPE = 10_000                     # × 2 dtypes × 2 paths = 40,000 checks per run

# float32: the project's stated agreement (1e-5); the worst seen is ~1.3e-6. bfloat16 keeps 8
# significant bits: the spacing of bf16 numbers at 1 is 2⁻⁷. The inputs are rounded to bf16
# before the reference sees them, so what is left is the kernels' own rounding (scores, weights
# and output in bf16, ≈ 2⁻⁹ relative each); the worst seen is 0.0028 · (1 + |x|), so
# 2⁻⁷ · (1 + |x|) leaves a margin of ~3. Weights lie in [0, 1] and get the same bound.
TOLERANCE = {torch.float32: dict(atol=1e-5, rtol=1e-5),
             torch.bfloat16: dict(atol=2 ** -7, rtol=2 ** -7)}
MASK_SHAPES = ("full", "(T, S)", "(S,)", "(1, S)", "key padding (…, 1, S)", "0-d")


def reference(query, key, value, mask, causal, scale):
    """float64 ``softmax(Q Kᵀ · scale + mask) · V`` with qkv's conventions, without qkv.

    Returns ``(output (..., T, Dv), weights (..., T, S), allowed (..., T, S))``.
    """
    query, key, value = query.double(), key.double(), value.double()
    T, S, D = query.shape[-2], key.shape[-2], query.shape[-1]
    lead = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    allowed = torch.ones(T, S, dtype=torch.bool)
    bias = torch.zeros(T, S, dtype=torch.float64)
    if mask is not None and mask.dtype == torch.bool:
        allowed = allowed & mask
    elif mask is not None:
        minus_infinity = mask == float("-inf")
        allowed = allowed & ~minus_infinity
        bias = bias + torch.where(minus_infinity, 0.0, mask.double())
    if causal:
        query_position = torch.arange(T)[:, None] + (S - T)          # bottom-right aligned
        allowed = allowed & (torch.arange(S)[None, :] <= query_position)
    allowed = allowed.expand(*lead, T, S)
    output_shape = (*lead, T, value.shape[-1])
    if S == 0:                                                        # nothing to attend
        return (torch.zeros(output_shape, dtype=torch.float64),
                torch.zeros(*lead, T, 0, dtype=torch.float64), allowed)
    scores = torch.matmul(query, key.transpose(-2, -1)) * scale + bias
    scores = scores.expand(*lead, T, S).masked_fill(~allowed, float("-inf"))
    top = scores.amax(dim=-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, 0.0)                  # empty rows: any shift
    exponentials = torch.exp(scores - top)                            # exp(-inf) = 0
    total = exponentials.sum(dim=-1, keepdim=True)
    weights = torch.where(total > 0, exponentials / total.clamp_min(1e-300), 0.0)
    output = torch.matmul(weights, value).expand(output_shape)
    return output, weights, allowed


def draw(index: int, dtype: torch.dtype) -> dict:
    """Configuration ``index``: inputs, mask and flags, from the seed ``SEED + index``."""
    rng = random.Random(SEED + index)
    generator = torch.Generator().manual_seed(SEED + index)
    lead = [rng.choice((0, 1, 2, 3)) if rng.random() < 0.05 else rng.choice((1, 2, 3))
            for _ in range(rng.choice((0, 1, 2)))]
    T = 0 if rng.random() < 0.06 else rng.randint(1, 6)
    S = 0 if rng.random() < 0.06 else rng.randint(1, 6)
    D, Dv = rng.randint(1, 8), rng.randint(1, 5)

    def side_lead():                # each leading dim kept or broadcast (1); fewer dims at times
        dims = [n if rng.random() < 0.7 else 1 for n in lead]
        return dims[rng.randint(0, len(dims)) if rng.random() < 0.2 else 0:]

    def randn(*shape):
        return torch.randn(*shape, generator=generator).to(dtype)

    query, key = randn(*side_lead(), T, D), randn(*(kv := side_lead()), S, D)
    value = randn(*(kv if rng.random() < 0.8 else side_lead()), S, Dv)
    batch = list(torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2]))

    kind = rng.choices(("none", "bool", "float"), weights=(1, 2, 2))[0]
    mask, mask_shape, masked_rows = None, None, False
    if kind != "none":
        mask_shape = rng.choice(MASK_SHAPES)
        shape = {"full": (*batch, T, S), "(T, S)": (T, S), "(S,)": (S,), "(1, S)": (1, S),
                 "key padding (…, 1, S)": (*[n if rng.random() < 0.5 else 1 for n in batch], 1, S),
                 "0-d": ()}[mask_shape]
        allowed = torch.rand(shape, generator=generator) < rng.choice((0.0, 0.3, 0.7, 1.0))
        if len(shape) >= 2 and shape[-2] > 0 and rng.random() < 0.3:   # whole rows masked out
            rows = torch.rand(shape[:-1], generator=generator) < 0.5
            allowed = allowed & ~rows[..., None]
        mask = allowed
        if kind == "float":                           # a bias where allowed, -inf elsewhere
            mask = (torch.randn(shape, generator=generator) * rng.choice((0.5, 3.0))).to(dtype)
            mask = mask.masked_fill(~allowed, float("-inf"))
    causal = rng.random() < 0.4
    scale = None if rng.random() < 0.8 else rng.choice((0.0, 0.3, 1.0, 2.5))
    return dict(query=query, key=key, value=value, mask=mask, causal=causal, scale=scale,
                kind=kind, mask_shape=mask_shape, lead=batch)


def categories(config: dict, allowed: torch.Tensor) -> list[str]:
    """The categories configuration ``config`` counts in (a configuration is in several)."""
    T, S = config["query"].shape[-2], config["key"].shape[-2]
    names = [f"mask: {config['kind']}"]
    if config["mask_shape"] is not None:
        names.append(f"mask shape: {config['mask_shape']}")
    if config["causal"]:
        names.append("causal, T = S" if T == S else "causal, T ≠ S (bottom-right)")
    if 0 in (T, S) or 0 in config["lead"]:
        names.append("a zero-size dim (T, S or a leading dim)")
    if len({config[name].shape[:-2] for name in ("query", "key", "value")}) > 1:
        names.append("leading dims broadcast between query, key, value")
    if allowed.numel() and S > 0 and not allowed.any(dim=-1).all():
        names.append("fully masked rows")
    if config["scale"] is not None:
        names.append("explicit scale")
    return names


def check(config: dict, need_weights: bool, expected) -> str | None:
    """``None`` if qkv matches the reference on this path, else what differs."""
    output_ref, weights_ref, allowed = expected
    dtype = config["query"].dtype
    output, weights = scaled_dot_product_attention(
        config["query"], config["key"], config["value"], config["mask"],
        causal=config["causal"], scale=config["scale"], need_weights=need_weights)
    if output.shape != output_ref.shape or output.dtype != dtype:
        return f"output {tuple(output.shape)} {output.dtype}, expected {tuple(output_ref.shape)}"
    if not torch.isfinite(output).all():
        return "non-finite output"
    empty = ~allowed.any(dim=-1)                                       # (..., T)
    if not (output[empty] == 0).all():
        return "a fully masked row's output is not exactly zero"
    if not torch.allclose(output.double(), output_ref, **TOLERANCE[dtype]):
        error = (output.double() - output_ref).abs().max().item()
        return f"output differs by up to {error:.3g}"
    if not need_weights:
        return None if weights is None else "the fused path returned weights"
    if weights is None or weights.shape != weights_ref.shape:
        return f"weights {None if weights is None else tuple(weights.shape)}"
    if not torch.isfinite(weights).all():
        return "non-finite weights"
    if not (weights[~allowed] == 0).all():
        return "a masked key has a non-zero weight"
    if not torch.allclose(weights.double(), weights_ref, **TOLERANCE[dtype]):
        error = (weights.double() - weights_ref).abs().max().item()
        return f"weights differ by up to {error:.3g}"
    return None


@pytest.fixture
def one_thread():
    """Tensors this small gain nothing from intra-op threads, and on a loaded machine their
    spin-waits cost 10–50× (measured on the 2-core CI box): the volume runs on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_attention_matches_a_float64_reference_at_volume(dtype, one_thread):
    first = 0 if dtype == torch.float32 else CONFIGS_PER_DTYPE      # distinct seeds per dtype
    counts, mismatches = Counter(), []
    for index in range(first, first + CONFIGS_PER_DTYPE):
        config = draw(index, dtype)
        expected = reference(config["query"], config["key"], config["value"], config["mask"],
                             config["causal"], config["scale"])
        counts.update(categories(config, expected[2]))
        for need_weights, path in ((True, "math path"), (False, "fused path")):
            counts[path] += 1
            problem = check(config, need_weights, expected)
            if problem is not None:
                mismatches.append(f"index {index} ({path}, mask {config['kind']} "
                                  f"{config['mask_shape']}, causal={config['causal']}, query "
                                  f"{tuple(config['query'].shape)}, key "
                                  f"{tuple(config['key'].shape)}): {problem}")
    print(f"\n{dtype}: {CONFIGS_PER_DTYPE} configurations, {len(mismatches)} mismatches")
    for name, count in sorted(counts.items()):
        print(f"  {name:50s} {count:6d}")
    assert mismatches == [], f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:10])
    assert counts["math path"] == counts["fused path"] == CONFIGS_PER_DTYPE
    # Every category is exercised, not merely possible.
    for name in ("mask: none", "mask: bool", "mask: float", "causal, T ≠ S (bottom-right)",
                 "causal, T = S", "fully masked rows", "a zero-size dim (T, S or a leading dim)",
                 "leading dims broadcast between query, key, value", "explicit scale",
                 *(f"mask shape: {shape}" for shape in MASK_SHAPES)):
        assert counts[name] >= 100, f"only {counts[name]} configurations with {name}"


def test_weights_take_the_leading_dims_that_only_the_value_has():
    """Found by the volume test: with a value of more leading dims than query and key, the math
    path returned weights of the query/key shape, not the documented ``(..., T, S)``."""
    query, key, value = torch.randn(1, 5, 3), torch.randn(1, 4, 3), torch.randn(3, 4, 2)
    output, weights = scaled_dot_product_attention(query, key, value, need_weights=True)
    assert output.shape == (3, 5, 2) and weights.shape == (3, 5, 4)
    expected, expected_weights, _ = reference(query, key, value, None, False, None)
    torch.testing.assert_close(weights.double(), expected_weights, **TOLERANCE[torch.float32])
    torch.testing.assert_close(output.double(), expected, **TOLERANCE[torch.float32])
