"""`qkv demo` runs as a real command and its tables are the attention formula's numbers."""

import subprocess
import sys

import torch


def run_qkv(*args):
    result = subprocess.run([sys.executable, "-m", "qkv", *args], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def parse_table(text, title_start):
    """The numbers of the table whose title starts with ``title_start``, as a (rows, cols) tensor."""
    block = text.split("\n\n" + title_start, 1)[1].split("\n\n", 1)[0]
    rows = block.splitlines()[2:]  # skip the title's remainder and the column header
    return torch.tensor([[float(cell) for cell in row.split()[1:]] for row in rows])


def test_demo_prints_the_walkthrough_for_i_love_my_dog():
    out = run_qkv("demo", "--task", "attention")
    assert 'Attention over "I love my dog"' in out
    query = parse_table(out, "Q, queries")
    key = parse_table(out, "K, keys")
    value = parse_table(out, "V, values")
    weights = parse_table(out, "softmax, attention weights")
    outputs = parse_table(out, "weights · V, outputs")
    causal = parse_table(out, "causal (masked) weights")
    assert query.shape == key.shape == value.shape == (4, 4)
    # the printed numbers obey the formula (to the 3 printed decimals)
    recomputed = torch.softmax(query @ key.T / 2.0, dim=-1)
    torch.testing.assert_close(weights, recomputed, atol=6e-3, rtol=0)
    torch.testing.assert_close(outputs, weights @ value, atol=6e-3, rtol=0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4), atol=3e-3, rtol=0)
    assert torch.all(causal.triu(diagonal=1) == 0)
    assert "head 1 weights" in out
    math_vs_fused = float(out.split("max |difference| = ")[1].split()[0])
    assert math_vs_fused < 1e-5


def test_demo_takes_another_sentence_and_seed():
    out = run_qkv("demo", "--task", "attention", "--sentence", "the cat sat", "--seed", "3")
    assert parse_table(out, "softmax, attention weights").shape == (3, 3)


def test_help_lists_the_commands():
    assert "demo" in run_qkv("--help")
