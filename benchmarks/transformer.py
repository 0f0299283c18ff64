"""Training speed of qkv's encoder–decoder relative to ``torch.nn.Transformer``, in the same run.

    python benchmarks/transformer.py                      # the issue's size; a few minutes on 2 cores
    python benchmarks/transformer.py --layers 2 --steps 2 # quicker

One training step = forward, cross-entropy-like loss, backward, Adam update, in training mode
(dropout 0.1), with a source padding mask, a causal + padding target mask and a memory padding mask.
Two comparisons, each with identical weights (checked equal in eval mode before timing):

* **stacks**: ``qkv.from_torch(nn.Transformer)`` (an :class:`qkv.EncoderDecoder`) vs the
  ``nn.Transformer`` it came from, on hidden states;
* **model**: :class:`qkv.Transformer` (embeddings ×√d_model + sinusoidal positions, tied output
  layer) vs the same ``nn.Transformer`` with the same embedding, positions and output layer.

Printed: target tokens per second of each and the ratio qkv / PyTorch (above 1 is faster). Steps
take turns and each keeps its best round. Benchmarks never run as unit tests.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import torch
from torch import nn

import qkv
from qkv.models.positions import sinusoidal_table

VOCAB = 8000


def masks(B: int, S: int, T: int) -> dict:
    """Right-padded lengths between 3/4 and all of the sequence, in both conventions."""
    generator = torch.Generator().manual_seed(1)
    src_len = torch.randint(S * 3 // 4, S + 1, (B,), generator=generator)
    tgt_len = torch.randint(T * 3 // 4, T + 1, (B,), generator=generator)
    src_pad = torch.arange(S)[None] >= src_len[:, None]                 # PyTorch: True = padding
    tgt_pad = torch.arange(T)[None] >= tgt_len[:, None]
    return dict(src_pad=src_pad, tgt_pad=tgt_pad,
                src_len=src_len, tgt_len=tgt_len,
                causal=nn.Transformer.generate_square_subsequent_mask(T))


def torch_stack_call(reference: nn.Transformer, src, tgt, m):
    return reference(src, tgt, tgt_mask=m["causal"], src_key_padding_mask=m["src_pad"],
                     tgt_key_padding_mask=m["tgt_pad"], memory_key_padding_mask=m["src_pad"],
                     tgt_is_causal=True)


def qkv_stack_call(model: qkv.EncoderDecoder, src, tgt, m):
    src_mask = qkv.mask_from_torch(key_padding_mask=m["src_pad"])
    return model(src, tgt, src_mask=src_mask, tgt_mask=qkv.mask_from_torch(key_padding_mask=m["tgt_pad"]),
                 memory_mask=src_mask)


class TorchModel(nn.Module):
    """nn.Transformer with the embeddings and output layer qkv.Transformer has."""

    def __init__(self, stack: nn.Transformer, d_model: int, max_len: int) -> None:
        super().__init__()
        self.stack = stack
        self.embedding = nn.Embedding(VOCAB, d_model)
        self.register_buffer("pe", sinusoidal_table(max_len, d_model))
        self.dropout = nn.Dropout(0.1)
        self.scale = math.sqrt(d_model)

    def embed(self, ids):
        return self.dropout(self.embedding(ids) * self.scale + self.pe[: ids.shape[1]])

    def forward(self, src, tgt, m):
        hidden = torch_stack_call(self.stack, self.embed(src), self.embed(tgt), m)
        return hidden @ self.embedding.weight.T                         # tied output layer


def timed_steps(steps: dict, rounds: int, per_round: int) -> dict:
    """Best seconds per step of each named step function; they take turns every round."""
    best = {name: float("inf") for name in steps}
    for step in steps.values():
        step()                                                          # warm-up
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(per_round):
                step()
            best[name] = min(best[name], (time.perf_counter() - start) / per_round)
    return best


def training_step(model, optimizer, forward):
    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = forward().float().square().mean()
        loss.backward()
        optimizer.step()
    return step


def adam(model):
    return torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--d-model", type=int, default=512)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--layers", type=int, default=6, help="encoder and decoder layers each")
    parser.add_argument("--d-ff", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=64, help="source and target length")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="steps per round")
    args = parser.parse_args()
    # PyTorch warns that bool padding masks and float causal masks differ in type; both are meant.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.")
    torch.manual_seed(0)
    E, B, L = args.d_model, args.batch, args.length
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; d_model {E}, "
          f"{args.heads} heads, {args.layers}+{args.layers} layers, d_ff {args.d_ff}, "
          f"B {B}, T {L}+{L}, fp32, Adam, training mode (dropout 0.1)")
    m = masks(B, L, L)
    target_tokens = int(m["tgt_len"].sum())

    reference = nn.Transformer(E, args.heads, args.layers, args.layers, args.d_ff,
                               batch_first=True)
    stack = qkv.from_torch(reference)
    src, tgt = torch.randn(B, L, E), torch.randn(B, L, E)
    reference.eval(), stack.eval()
    with torch.no_grad():
        valid = ~m["tgt_pad"]
        torch.testing.assert_close(qkv_stack_call(stack, src, tgt, m)[valid],
                                   torch_stack_call(reference, src, tgt, m)[valid],
                                   atol=1e-4, rtol=1e-4)
    reference.train(), stack.train()

    config = qkv.TransformerConfig(vocab_size=VOCAB, d_model=E, num_heads=args.heads,
                                   num_layers=args.layers, d_ff=args.d_ff, share_embeddings=True,
                                   max_len=L, pad_id=0)
    model = qkv.Transformer(config)
    # nn.Transformer always ends its stacks with a LayerNorm; the paper's post-norm model does not.
    encoder_layer = nn.TransformerEncoderLayer(E, args.heads, args.d_ff, batch_first=True)
    decoder_layer = nn.TransformerDecoderLayer(E, args.heads, args.d_ff, batch_first=True)
    torch_model = TorchModel(nn.Transformer(
        E, args.heads, batch_first=True,
        custom_encoder=nn.TransformerEncoder(encoder_layer, args.layers, enable_nested_tensor=False),
        custom_decoder=nn.TransformerDecoder(decoder_layer, args.layers)), E, L)
    converted = qkv.from_torch(torch_model.stack)
    model.encoder.load_state_dict(converted.encoder.state_dict())
    model.decoder.load_state_dict(converted.decoder.state_dict())
    torch_model.embedding.weight.data.copy_(model.src_embedding.token.weight.data)
    src_ids = torch.randint(1, VOCAB, (B, L)).masked_fill(m["src_pad"], 0)
    tgt_ids = torch.randint(1, VOCAB, (B, L)).masked_fill(m["tgt_pad"], 0)
    model.eval(), torch_model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(src_ids, tgt_ids)[valid],
                                   torch_model(src_ids, tgt_ids, m)[valid], atol=1e-3, rtol=1e-4)
    model.train(), torch_model.train()

    steps = {
        "stacks/torch": training_step(reference, adam(reference),
                                      lambda: torch_stack_call(reference, src, tgt, m)),
        "stacks/qkv": training_step(stack, adam(stack), lambda: qkv_stack_call(stack, src, tgt, m)),
        "model/torch": training_step(torch_model, adam(torch_model),
                                     lambda: torch_model(src_ids, tgt_ids, m)),
        "model/qkv": training_step(model, adam(model), lambda: model(src_ids, tgt_ids)),
    }
    best = timed_steps(steps, args.rounds, args.steps)
    print(f"\n{'':<8} {'torch tok/s':>12} {'qkv tok/s':>10} {'ratio':>6}")
    for row in ("stacks", "model"):
        torch_rate = target_tokens / best[f"{row}/torch"]
        qkv_rate = target_tokens / best[f"{row}/qkv"]
        print(f"{row:<8} {torch_rate:>12.0f} {qkv_rate:>10.0f} {qkv_rate / torch_rate:>6.2f}")
    print(f"\n({target_tokens} target tokens per step; ratio = qkv tokens/s / torch tokens/s)")


if __name__ == "__main__":
    main()
