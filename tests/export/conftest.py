"""Shared set-up of the export tests: offline, tiny models whose every weight matters."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from qkv.tokenizers import BPETokenizer, CharTokenizer, WordTokenizer  # noqa: E402

TEXTS = ["I love my dog.", "The quick brown fox jumps over the lazy dog!",
         "Tom's café serves naïve coffee", "我爱我的狗。", "attention is all you need"] * 4
SIZES = dict(d_model=32, num_heads=4, num_layers=2, d_ff=64, max_len=64)


def randomize(model):
    """``model`` in eval mode with its LayerNorm weights and all biases away from their
    initial 1 and 0, so that a misplaced one changes the outputs."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                parameter.add_(torch.randn_like(parameter) * 0.3)
    return model.eval()


def padded(rows, pad_id, first=None):
    """Rows of ids, right-padded with ``pad_id``: ``(ids (B, T), valid (B, T))``."""
    rows = [([first] if first is not None else []) + list(row) for row in rows]
    longest = max(map(len, rows))
    ids = torch.tensor([row + [pad_id] * (longest - len(row)) for row in rows])
    valid = torch.tensor([[True] * len(row) + [False] * (longest - len(row)) for row in rows])
    return ids, valid


@pytest.fixture(scope="session")
def tokenizers():
    """qkv's three trained tokenizers, on the same texts."""
    return {"char": CharTokenizer.train(TEXTS), "word": WordTokenizer.train(TEXTS),
            "bpe": BPETokenizer.train(TEXTS, vocab_size=90)}
