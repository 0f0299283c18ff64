"""Issue 15's training row: the base encoder–decoder's training step against ``nn.Transformer``.

    python benchmarks/training.py            # about three minutes on 2 cores
    python benchmarks/training.py --quick    # 2 + 2 layers

The paper's base size (d_model 512, 8 heads, 6 + 6 layers, d_ff 2048), batch 16, source and
target 64 tokens (right-padded to lengths between 48 and 64), vocabulary 8000, fp32, Adam,
training mode (dropout 0.1). One step = forward, a loss, backward, optimizer step.
``qkv.Transformer`` (embeddings ×√d_model + sinusoidal positions, tied output layer) against
``nn.Transformer`` with the same embedding, positions and output layer and the same weights
(``benchmarks/transformer.py``'s "model" comparison; outputs checked equal in eval mode first).
Tokens per second of each, taking turns, median of the rounds; the ratio is qkv's over
PyTorch's (above 1: qkv is faster).

Two rows: qkv as it comes, and qkv after :func:`qkv.training.compile.compile_model` — what
``qkv train --compile`` runs (oneDNN linear layers; benchmarks/README.md says why). Goal: 1.4×.
Limit: the step's useful FLOPs (3 × 2 × the multiply-adds of the linear layers and the
attention products, padding included) per second as a share of the measured GEMM rate.

Importable: :func:`rows` takes the machine's figures. Benchmarks never run as unit tests.
"""

from __future__ import annotations

import copy
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import qkv  # noqa: E402
import transformer as reference_setup  # noqa: E402  (benchmarks/transformer.py)
from common import median_times, run_alone  # noqa: E402
from qkv.training.compile import compile_model, onednn_available  # noqa: E402

VOCAB = reference_setup.VOCAB


def models(E: int, heads: int, layers: int, d_ff: int, length: int):
    """``(qkv.Transformer, nn.Transformer with embeddings)``, the same weights."""
    config = qkv.TransformerConfig(vocab_size=VOCAB, d_model=E, num_heads=heads,
                                   num_layers=layers, d_ff=d_ff, share_embeddings=True,
                                   max_len=length, pad_id=0)
    model = qkv.Transformer(config)
    encoder_layer = nn.TransformerEncoderLayer(E, heads, d_ff, batch_first=True)
    decoder_layer = nn.TransformerDecoderLayer(E, heads, d_ff, batch_first=True)
    torch_model = reference_setup.TorchModel(nn.Transformer(
        E, heads, batch_first=True,
        custom_encoder=nn.TransformerEncoder(encoder_layer, layers, enable_nested_tensor=False),
        custom_decoder=nn.TransformerDecoder(decoder_layer, layers)), E, length)
    converted = qkv.from_torch(torch_model.stack)
    model.encoder.load_state_dict(converted.encoder.state_dict())
    model.decoder.load_state_dict(converted.decoder.state_dict())
    torch_model.embedding.weight.data.copy_(model.src_embedding.token.weight.data)
    return model, torch_model


def step_flops(E: int, layers: int, d_ff: int, B: int, length: int) -> float:
    """Forward + backward ≈ 3 × forward; forward = 2 × multiply-adds, padding included."""
    tokens = B * length
    encoder = layers * (4 * E * E + 2 * E * d_ff + 2 * length * E)
    decoder = layers * (8 * E * E + 2 * E * d_ff + 4 * length * E)
    return 3 * 2 * tokens * (encoder + decoder + E * VOCAB)


def rows(machine: dict, *, quick: bool = False) -> list[dict]:
    """The two training rows (qkv as it comes, and compiled), measured now."""
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.")
    torch.manual_seed(0)
    E, heads, d_ff, B, length = 512, 8, 2048, 16, 64
    layers = 2 if quick else 6
    m = reference_setup.masks(B, length, length)
    model, torch_model = models(E, heads, layers, d_ff, length)
    src = torch.randint(1, VOCAB, (B, length)).masked_fill(m["src_pad"], 0)
    tgt = torch.randint(1, VOCAB, (B, length)).masked_fill(m["tgt_pad"], 0)
    compiled = compile_model(copy.deepcopy(model))
    valid = ~m["tgt_pad"]
    for each in (model, compiled, torch_model):
        each.eval()
    with torch.no_grad():
        expected = torch_model(src, tgt, m)[valid]
        torch.testing.assert_close(model(src, tgt)[valid], expected, atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(compiled(src, tgt)[valid], expected, atol=1e-3, rtol=1e-4)
    for each in (model, compiled, torch_model):
        each.train()
    step = reference_setup.training_step
    adam = reference_setup.adam
    times = median_times({
        "torch": step(torch_model, adam(torch_model), lambda: torch_model(src, tgt, m)),
        "qkv": step(model, adam(model), lambda: model(src, tgt)),
        "compiled": step(compiled, adam(compiled), lambda: compiled(src, tgt)),
    }, rounds=2 if quick else 3)
    target_tokens = int(m["tgt_len"].sum())
    flops = step_flops(E, layers, d_ff, B, length)
    size = f"{layers}+{layers} layers" if quick else "base size"
    result = []
    for name, title in (("qkv", "as it comes"), ("compiled", "qkv train --compile")):
        ratio = times["torch"] / times[name]
        rate = flops / times[name] / 1e9
        notes = (f"{target_tokens} target tokens a step: qkv {target_tokens / times[name]:.0f} "
                 f"tokens/s, nn.Transformer {target_tokens / times['torch']:.0f}")
        if name == "compiled":
            notes += ("; compile_model: oneDNN linear layers" if onednn_available() else
                      "; oneDNN unavailable here: compile_model changed nothing")
        result.append({
            "figure": f"encoder–decoder training step, {size}, B{B} T{length}+{length}, {title}",
            "reference": "nn.Transformer, same weights, embeddings and output layer",
            "qkv_s": times[name], "reference_s": times["torch"], "ratio": ratio,
            "goal": "≥ 1.4× tokens/s (--compile counts)",
            "met": ratio >= 1.4,
            "limit": (f"{rate / machine['gemm_gflops']:.0%} of the GEMM rate ({rate:.0f} useful "
                      f"GFLOP/s; PyTorch at {flops / times['torch'] / 1e9:.0f})"),
            "notes": notes,
        })
    return result


def main() -> None:
    run_alone(rows, __doc__, "2 + 2 layers, fewer rounds")


if __name__ == "__main__":
    main()
