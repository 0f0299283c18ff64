"""Decoding controls on the random GPT-2 of test_gpt2.py: qkv's greedy and beam search with
no_repeat_ngram_size, repetition_penalty, min_length and num_return give the token ids of
transformers' generate with the same options (min_length = its min_new_tokens; beam search with
length_penalty 0 on both sides, since qkv's length penalty is GNMT's)."""

import pytest
import torch

import qkv
from qkv.decoding import BeamSearch, Greedy
from qkv.pretrained import load_pretrained
from tests.pretrained.test_gpt2 import folder, reference  # noqa: F401  (the shared fixtures)

transformers = pytest.importorskip("transformers")

PROMPTS = ["The quick brown fox", "Attention is", "I love my dog"]
NEW = 30

# (qkv strategy fields, transformers generate options)
CONTROLS = {
    "no_repeat_ngram": (dict(no_repeat_ngram_size=2), dict(no_repeat_ngram_size=2)),
    "repetition_penalty": (dict(repetition_penalty=1.5), dict(repetition_penalty=1.5)),
    "min_length": (dict(min_length=8), dict(min_new_tokens=8)),
    "all_three": (dict(no_repeat_ngram_size=1, repetition_penalty=0.7, min_length=3),
                  dict(no_repeat_ngram_size=1, repetition_penalty=0.7, min_new_tokens=3)),
}


@pytest.fixture(scope="module")
def loaded(folder):
    return load_pretrained(folder)


def early_eos(reference, ids):
    """An end token the plain greedy search meets early: its 3rd new token (so that min_length
    has something to hold back)."""
    out = reference.generate(ids, max_new_tokens=3, do_sample=False, eos_token_id=None,
                             pad_token_id=0)
    return out[0, -1].item()


def expected_ids(reference, ids, eos, beams, num_return=1, **options):
    out = reference.generate(ids, max_new_tokens=NEW, do_sample=False, num_beams=beams,
                             num_return_sequences=num_return, length_penalty=0.0,
                             early_stopping=False, eos_token_id=eos, pad_token_id=eos,
                             **options)
    new = [row[ids.shape[1]:] for row in out.tolist()]
    return [row[:row.index(eos)] if eos in row else row for row in new]


def qkv_ids(model, ids, eos, beams, num_return=1, **fields):
    strategy = Greedy(**fields) if beams == 1 else \
        BeamSearch(beams, length_penalty=0.0, num_return=num_return, **fields)
    out = qkv.generate(model, ids.tolist(), strategy, eos_id=eos, max_new_tokens=NEW)[0]
    return out if num_return > 1 else [out]


@pytest.mark.parametrize("beams", [1, 4])
@pytest.mark.parametrize("control", list(CONTROLS))
@torch.no_grad()
def test_controls_give_the_ids_of_transformers(loaded, reference, beams, control):
    model, tokenizer = loaded
    fields, options = CONTROLS[control]
    changed = 0
    for prompt in PROMPTS:
        ids = torch.tensor([tokenizer.encode(prompt)])
        eos = early_eos(reference, ids) if "min_length" in fields else tokenizer.eos_id
        expected = expected_ids(reference, ids, eos, beams, **options)
        assert qkv_ids(model, ids, eos, beams, **fields) == expected, prompt
        changed += expected != expected_ids(reference, ids, eos, beams)
    assert changed >= 2                                   # the option does change the output


@pytest.mark.parametrize("control", [None, "no_repeat_ngram", "min_length"])
@torch.no_grad()
def test_beam_search_num_return_gives_transformers_num_return_sequences(loaded, reference,
                                                                        control):
    model, tokenizer = loaded
    fields, options = CONTROLS[control] if control else ({}, {})
    for prompt in PROMPTS:
        ids = torch.tensor([tokenizer.encode(prompt)])
        eos = early_eos(reference, ids)                   # hypotheses of several lengths
        expected = expected_ids(reference, ids, eos, 4, num_return=3, **options)
        assert qkv_ids(model, ids, eos, 4, num_return=3, **fields) == expected, prompt
        assert len({tuple(row) for row in expected}) == 3


@torch.no_grad()
def test_qkv_generate_prints_k_ranked_lines_per_prompt(folder, loaded, reference, capsys):
    """``qkv generate FOLDER PROMPT… --no-repeat-ngram 2 --beam 4 --num-return 2``."""
    from qkv.cli.main import main

    _, tokenizer = loaded
    prompts = ["The quick brown fox", "Attention is"]
    groups = []
    for prompt in prompts:
        ids = torch.tensor([tokenizer.encode(prompt)])
        rows = expected_ids(reference, ids, tokenizer.eos_id, 4, num_return=2,
                            no_repeat_ngram_size=2)
        groups.append([f"{rank}\t{prompt}{tokenizer.decode(row)}"
                       for rank, row in enumerate(rows, start=1)])
    assert main(["generate", str(folder), *prompts, "--no-repeat-ngram", "2", "--beam", "4",
                 "--num-return", "2", "--length-penalty", "0", "--max-new-tokens", str(NEW)]) == 0
    assert capsys.readouterr().out == "\n\n".join("\n".join(g) for g in groups) + "\n"
