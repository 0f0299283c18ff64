"""`qkv embed minilm ...` prints embeddings and cosine similarities, and saves the vectors."""

import json
import os
import subprocess
import sys

import numpy
import pytest
import torch

from qkv.pretrained import embed_sentences


def run_qkv(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "qkv", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_embed_prints_similarities_and_saves_the_vectors(tmp_path, minilm):
    sentences = ["I love my dog", "I adore my puppy", "Stocks fell today"]
    result = run_qkv("embed", "minilm", *sentences, "--output", str(tmp_path / "v.npy"))
    assert result.returncode == 0, result.stderr
    assert "cosine similarity" in result.stdout and "I adore my puppy" in result.stdout
    saved = torch.from_numpy(numpy.load(tmp_path / "v.npy"))
    expected = embed_sentences(*minilm, sentences)
    assert torch.allclose(saved, expected, atol=1e-5)
    rows = result.stdout.split("cosine similarity")[1].split("\n\n")[0].strip().splitlines()[1:]
    printed = torch.tensor([[float(v) for v in row.split()[1:]] for row in rows])
    assert torch.allclose(printed, expected @ expected.T, atol=1e-4)


def test_embed_saves_json(tmp_path, minilm):
    result = run_qkv("embed", "minilm", "hello", "--output", str(tmp_path / "v.json"))
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "v.json").read_text())
    assert data["sentences"] == ["hello"] and len(data["embeddings"][0]) == 384


@pytest.mark.parametrize("args, message", [
    (["embed", "no/such/folder", "hi"], "is not a folder"),
    (["embed", "minilm", "hi", "--output", "v.txt"], "must end in .npy or .json"),
])
def test_embed_errors_are_one_line(args, message):
    result = run_qkv(*args)
    assert result.returncode != 0 and message in result.stderr
    assert "Traceback" not in result.stderr
