"""Greedy decoding speed, GPT-2-small shape, batch 1: qkv vs ``transformers``' ``generate``.

    python benchmarks/decoding.py                  # about a minute and a half on 2 cores
    python benchmarks/decoding.py --new-tokens 64  # quicker

Two rows, each against ``transformers`` in float32, measured in the same run, taking turns,
the median of the rounds:

* **fp32**: ``qkv.generate`` (its fast path, :class:`qkv.models.inference.IncrementalDecoder`)
  vs ``GPT2LMHeadModel.generate``, both greedy with a KV cache, an 8-token prompt and 256 new
  tokens, on the same random weights (``transformers`` saves them, ``qkv.load_pretrained`` reads
  them); the tokens must be identical.
* **int8 weight-only** (opt-in, :func:`qkv.quantization.quantize`): the same model quantized;
  its agreement with fp32 is reported (tokens equal before the first difference, next-token
  agreement when both read the fp32 continuation, perplexity of that continuation).

Machine-relative figure: the *bandwidth floor*, the bytes of weights one token reads (every
layer, the final norm and the output layer) divided by the measured read bandwidth; the row
gives the floor as a share of qkv's time per token. Random weights make the perplexities
meaningless in themselves (near the vocabulary size); their change is what the row reports.

Importable: :func:`rows` takes the machine's figures (:func:`machine.measure`) and returns the
rows as dicts. Benchmarks never run as unit tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__":                     # before torch: see machine.settle_threads
    import machine

    machine.settle_threads()

import torch  # noqa: E402

import qkv  # noqa: E402
from qkv.quantization import quantize  # noqa: E402

PROMPT_LENGTH = 8


def median_times(calls: dict, rounds: int) -> dict:
    """Median seconds of each named call; one warm-up each, then they take turns."""
    times = {name: [] for name in calls}
    for call in calls.values():
        call()
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def weight_bytes_per_token(model: torch.nn.Module) -> int:
    """Bytes of parameters and buffers one decoding step reads: all but the embedding tables
    (one row each), the output layer counted even when it shares the token embedding."""
    tables = {id(model.embedding.token.weight)}
    tables |= {id(t) for t in model.embedding.positions.parameters()}
    total, seen = 0, set()
    modules = [model.layers, model.output_layer] + ([model.final_norm] if model.final_norm else [])
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            if id(tensor) in tables and module is not model.output_layer:
                continue
            total += tensor.numel() * tensor.element_size()
    return total


def gpt2_pair(layers: int = 12):
    """``(transformers model, qkv model)`` with the same random GPT-2-small-shape weights."""
    import transformers

    from pretrained import _write_byte_level_tokenizer

    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=layers)
    reference = transformers.GPT2LMHeadModel(config).eval()
    with tempfile.TemporaryDirectory() as folder:
        reference.save_pretrained(folder)
        _write_byte_level_tokenizer(folder)
        model, _ = qkv.load_pretrained(folder)
    return reference, model


@torch.inference_mode()
def agreement(model, quantized, prompt: list[int], tokens: list[int]) -> dict:
    """How close ``quantized`` is to ``model`` on the fp32 greedy continuation ``tokens``."""
    ids = torch.tensor([prompt + tokens])
    theirs = quantized(ids)[0, len(prompt) - 1:-1]                      # (N, V) predicting tokens
    ours = model(ids)[0, len(prompt) - 1:-1]
    target = torch.tensor(tokens)
    nll = {name: torch.nn.functional.cross_entropy(logits.float(), target).item()
           for name, logits in (("fp32", ours), ("int8", theirs))}
    return {
        "top1": (theirs.argmax(-1) == ours.argmax(-1)).float().mean().item(),
        "perplexity_fp32": float(torch.exp(torch.tensor(nll["fp32"]))),
        "perplexity_int8": float(torch.exp(torch.tensor(nll["int8"]))),
    }


def rows(machine: dict, *, new_tokens: int = 256, rounds: int = 3, layers: int = 12) -> list[dict]:
    """The decoding rows (fp32 and int8 weight-only) against ``transformers`` fp32."""
    import transformers

    transformers.logging.set_verbosity_error()
    reference, model = gpt2_pair(layers)
    small = quantize(model, "int8")
    prompt = torch.randint(0, model.config.vocab_size, (1, PROMPT_LENGTH),
                           generator=torch.Generator().manual_seed(1))
    prompt_ids = prompt[0].tolist()

    def ours(m=model):
        return qkv.generate(m, [prompt_ids], eos_id=None, max_new_tokens=new_tokens)[0]

    def theirs():
        return reference.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                  do_sample=False, num_beams=1, use_cache=True,
                                  pad_token_id=reference.config.eos_token_id)[0, PROMPT_LENGTH:]

    with torch.inference_mode():
        fp32_tokens, reference_tokens, int8_tokens = ours(), theirs().tolist(), ours(small)
    identical = fp32_tokens == reference_tokens
    same_prefix = next((i for i, (a, b) in enumerate(zip(fp32_tokens, int8_tokens)) if a != b),
                       len(fp32_tokens))
    close = agreement(model, small, prompt_ids, fp32_tokens)
    with torch.inference_mode():
        times = median_times({"qkv": ours, "transformers": theirs,
                              "qkv int8": lambda: ours(small)}, rounds)

    bandwidth = machine["read_gbps"] * 1e9
    shape = f"GPT-2-small shape ({layers} layers)" if layers != 12 else "GPT-2-small shape"
    result = []
    for name, seconds, m, goal_ratio in (("qkv", times["qkv"], model, 1.5),
                                         ("qkv int8", times["qkv int8"], small, 3.0)):
        floor = weight_bytes_per_token(m) / bandwidth                   # s per token
        share = floor / (seconds / new_tokens)
        ratio = times["transformers"] / seconds
        if name == "qkv":
            figure = f"greedy decoding, batch 1, {new_tokens} new tokens, {shape}, fp32"
            met = ratio >= 1.5 and share >= 0.6 and identical
            goal = "≥ 1.5×, ≥ 60% of bandwidth floor, identical tokens"
            notes = ("tokens identical to transformers" if identical else
                     "TOKENS DIFFER from transformers")
        else:
            figure = (f"greedy decoding, batch 1, {new_tokens} new tokens, {shape}, "
                      f"int8 weight-only")
            met = ratio >= 3.0
            goal = "≥ 3× transformers fp32"
            notes = (f"vs qkv fp32: first {same_prefix}/{new_tokens} tokens equal; next-token "
                     f"agreement {close['top1']:.0%} on the fp32 continuation; perplexity "
                     f"{close['perplexity_fp32']:.0f} → {close['perplexity_int8']:.0f} "
                     f"({close['perplexity_int8'] / close['perplexity_fp32'] - 1:+.1%}; random "
                     f"weights)")
        result.append({
            "figure": figure, "reference": "transformers generate, fp32",
            "qkv_s": seconds, "reference_s": times["transformers"], "ratio": ratio,
            "goal": goal, "met": bool(met),
            "limit": (f"{share:.0%} of bandwidth floor ({floor * 1e3:.1f} ms/token for "
                      f"{weight_bytes_per_token(m) / 1e6:.0f} MB at "
                      f"{machine['read_gbps']:.1f} GB/s; qkv {seconds / new_tokens * 1e3:.1f} "
                      f"ms/token)"),
            "notes": notes,
        })
    return result


def print_rows(rows_: list[dict]) -> None:
    for row in rows_:
        print(f"{row['figure']}: qkv {row['qkv_s']:.2f} s, {row['reference']} "
              f"{row['reference_s']:.2f} s, ratio {row['ratio']:.2f}× (goal {row['goal']}: "
              f"{'met' if row['met'] else 'NOT met'}); {row['limit']}; {row['notes']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--layers", type=int, default=12)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import machine as machine_module  # noqa: F811

    measured = machine_module.measure()
    print(machine_module.describe(measured))
    print_rows(rows(measured, new_tokens=args.new_tokens, rounds=args.rounds,
                    layers=args.layers))


if __name__ == "__main__":
    main()
