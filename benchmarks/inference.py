"""Batch encoding speed, MiniLM: qkv vs ``transformers`` (sdpa), 32 × 128 right-padded tokens.

    python benchmarks/inference.py                 # under half a minute on 2 cores

Two rows, each against ``transformers.AutoModel`` on the same folder (its default attention,
``sdpa``) in float32, measured in the same run, taking turns, the median of the rounds:

* **fp32**: :func:`qkv.models.inference.unpadded_hidden_states` (what
  :func:`qkv.embed_sentences` runs): the real tokens packed, padding skipped by the projections
  and feed-forward networks; the hidden states at the real tokens must be within 1e-4 of
  ``transformers``'.
* **int8 dynamic** (opt-in, ``qkv.quantize(model, "int8-dynamic")``): the same, int8 weights and
  per-token int8 activations; its agreement is the cosine of sentence embeddings (mean-pooled,
  normalised) with fp32's, on real sentences and on the benchmark batch.

The batch: all-MiniLM-L6-v2, 32 sequences of random ids, lengths 96–128 (``[CLS]`` … ``[SEP]``
then padding). Machine-relative figure: the useful multiply-adds (the projections and
feed-forward networks on the real tokens, attention on the padded ``T × T``) per second, as a
share of the measured fp32 GEMM rate.

Importable: :func:`rows` takes the machine's figures (:func:`machine.measure`).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__":                     # before torch: see machine.settle_threads
    import machine

    machine.settle_threads()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import qkv  # noqa: E402
from decoding import median_times  # noqa: E402
from qkv.models.inference import unpadded_hidden_states  # noqa: E402
from qkv.pretrained import load_pretrained, minilm_path  # noqa: E402

SENTENCES = [
    "A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
    "A man is riding a horse.", "A woman is playing violin.", "Two men pushed carts through the "
    "woods.", "A man is riding a white horse on an enclosed ground.", "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.", "The quick brown fox jumps over "
    "the lazy dog.", "Stocks fell sharply on Tuesday after the central bank raised interest "
    "rates.", "I love my dog.", "Where is the nearest train station?", "Python is a programming "
    "language that lets you work quickly and integrate systems more effectively.",
    "Attention is all you need.", "The committee postponed its decision until next spring.",
]


def batch(tokenizer, size: int = 32, length: int = 128):
    """Random ids, right-padded to ``length``: ``(ids (B, T), valid (B, T))``."""
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(length * 3 // 4, length + 1, (size,), generator=generator)
    ids = torch.randint(1000, tokenizer.vocab_size, (size, length), generator=generator)
    ids[:, 0] = tokenizer.bos_id
    ids[torch.arange(size), lengths - 1] = tokenizer.eos_id
    valid = torch.arange(length)[None] < lengths[:, None]               # (B, T)
    ids[~valid] = tokenizer.pad_id
    return ids, valid


def multiply_adds(config, valid: torch.Tensor) -> float:
    """FLOPs that the output needs: projections and FFN on the real tokens, attention on the
    padded ``T × T`` of every row (what the kernels compute)."""
    N, (B, T) = int(valid.sum()), valid.shape
    E, d_ff, L = config.d_model, config.d_ff, config.num_layers
    linear = 2 * N * (4 * E * E + 2 * E * d_ff)                         # Q, K, V, O; W_1, W_2
    attention = 2 * 2 * B * T * T * E                                   # Q Kᵀ and weights · V
    return L * (linear + attention)


def pooled(hidden: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    weights = valid[..., None].to(hidden.dtype)
    return F.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1)


@torch.inference_mode()
def rows(machine: dict, *, rounds: int = 5, size: int = 32, length: int = 128) -> list[dict]:
    """The MiniLM rows (fp32 and int8 dynamic) against ``transformers`` fp32."""
    import transformers

    transformers.logging.set_verbosity_error()
    model, tokenizer = load_pretrained("minilm")
    small = qkv.quantize(model, "int8-dynamic")
    reference = transformers.AutoModel.from_pretrained(str(minilm_path())).eval()
    ids, valid = batch(tokenizer, size, length)
    theirs = reference(input_ids=ids, attention_mask=valid.long()).last_hidden_state
    ours = unpadded_hidden_states(model, ids, valid)
    difference = (ours - theirs)[valid].abs().max().item()
    batch_cosine = (pooled(unpadded_hidden_states(small, ids, valid), valid)
                    * pooled(ours, valid)).sum(-1).min().item()
    sentence_cosine = (qkv.embed_sentences(small, tokenizer, SENTENCES)
                       * qkv.embed_sentences(model, tokenizer, SENTENCES)).sum(-1).min().item()
    times = median_times({
        "qkv": lambda: unpadded_hidden_states(model, ids, valid),
        "transformers": lambda: reference(input_ids=ids, attention_mask=valid.long()),
        "qkv int8": lambda: unpadded_hidden_states(small, ids, valid),
    }, rounds)
    flops = multiply_adds(model.config, valid)
    padding = 1 - valid.float().mean().item()
    result = []
    for name, goal in (("qkv", 1.25), ("qkv int8", 2.0)):
        seconds = times[name]
        ratio = times["transformers"] / seconds
        rate = flops / seconds / 1e9
        if name == "qkv":
            figure = f"MiniLM, {size} × {length} right-padded, fp32"
            met = ratio >= goal and difference <= 1e-4
            notes = (f"hidden states within {difference:.1e} of transformers at the real "
                     f"tokens; {padding:.0%} padding skipped")
            goal_text = "≥ 1.25×, hidden states within 1e-4"
        else:
            figure = f"MiniLM, {size} × {length} right-padded, int8 dynamic"
            met = ratio >= goal and min(batch_cosine, sentence_cosine) >= 0.99
            notes = (f"sentence-embedding cosine with fp32: min {sentence_cosine:.4f} on "
                     f"{len(SENTENCES)} sentences, min {batch_cosine:.4f} on the batch")
            goal_text = "≥ 2× transformers fp32, cosine ≥ 0.99"
        result.append({
            "figure": figure, "reference": "transformers AutoModel (sdpa), fp32",
            "qkv_s": seconds, "reference_s": times["transformers"], "ratio": ratio,
            "goal": goal_text, "met": bool(met),
            "limit": (f"{rate / machine['gemm_gflops']:.0%} of the measured fp32 GEMM rate "
                      f"({rate:.0f} of {machine['gemm_gflops']:.0f} GFLOP/s, useful FLOPs)"),
            "notes": notes,
        })
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import machine as machine_module  # noqa: F811
    from decoding import print_rows

    measured = machine_module.measure()
    print(machine_module.describe(measured))
    print_rows(rows(measured, rounds=args.rounds))


if __name__ == "__main__":
    main()
