"""Decoding controls on the random Marian of test_marian.py, whose plain greedy translation
repeats one token ("9 9 9 …", an undertrained model's "文件文件文件"): qkv's greedy and beam
search with no_repeat_ngram_size, repetition_penalty, min_length and num_return give the token
ids of transformers' generate with the same options, on a padded batch (min_length = its
min_new_tokens; beam search with length_penalty 0 on both sides)."""

import pytest
import torch

import qkv
from qkv.decoding import BeamSearch, Greedy
from tests.pretrained.test_marian import folder, loaded, reference  # noqa: F401  (shared fixtures)

transformers = pytest.importorskip("transformers")

TEXTS = ["the cat sat on the log", "we love attention", "a bird", "the fox jumps over the lazy dog"]
NEW = 20

# name: (qkv strategy fields, transformers options, transformers options it must differ from)
CONTROLS = {
    "no_repeat_ngram": (dict(no_repeat_ngram_size=2), dict(no_repeat_ngram_size=2), {}),
    "repetition_penalty": (dict(repetition_penalty=1.5), dict(repetition_penalty=1.5), {}),
    # plain greedy never ends here: min_length shows on top of the n-gram ban, which ends some
    "min_length": (dict(no_repeat_ngram_size=2, min_length=10),
                   dict(no_repeat_ngram_size=2, min_new_tokens=10), dict(no_repeat_ngram_size=2)),
}


@pytest.fixture(scope="module")
def source(loaded):
    """The padded batch of TEXTS, each ending with </s>."""
    _, tokenizer = loaded
    rows = [tokenizer.encode(t) + [tokenizer.eos_id] for t in TEXTS]
    longest = max(map(len, rows))
    return torch.tensor([row + [tokenizer.pad_id] * (longest - len(row)) for row in rows])


def expected_ids(reference, tokenizer, source, beams, num_return=1, **options):
    out = reference.generate(input_ids=source, attention_mask=(source != tokenizer.pad_id).long(),
                             max_new_tokens=NEW, do_sample=False, num_beams=beams,
                             num_return_sequences=num_return, length_penalty=0.0,
                             early_stopping=False, **options)
    rows = [row[1:] for row in out.tolist()]                        # the start token off
    return [row[:row.index(tokenizer.eos_id)] if tokenizer.eos_id in row else
            [t for t in row if t != tokenizer.pad_id] for row in rows]


def qkv_ids(model, tokenizer, source, beams, num_return=1, **fields):
    strategy = Greedy(**fields) if beams == 1 else \
        BeamSearch(beams, length_penalty=0.0, num_return=num_return, **fields)
    out = qkv.translate(model, source, strategy, bos_id=tokenizer.bos_id,
                        eos_id=tokenizer.eos_id, max_len=NEW, source_pad_id=tokenizer.pad_id)
    return [ids for per_source in out for ids in per_source] if num_return > 1 else out


@pytest.mark.parametrize("beams", [1, 4])
@pytest.mark.parametrize("control", list(CONTROLS))
@torch.no_grad()
def test_controls_give_the_ids_of_transformers(loaded, reference, source, beams, control):
    model, tokenizer = loaded
    fields, options, baseline = CONTROLS[control]
    expected = expected_ids(reference, tokenizer, source, beams, **options)
    assert qkv_ids(model, tokenizer, source, beams, **fields) == expected
    assert expected != expected_ids(reference, tokenizer, source, beams, **baseline)


@torch.no_grad()
def test_repetitive_greedy_output_is_what_the_controls_fix(loaded, reference, source):
    plain = expected_ids(reference, loaded[1], source, 1)
    assert all(len(set(ids)) == 1 and len(ids) == NEW for ids in plain)


@pytest.mark.parametrize("control", [None, "no_repeat_ngram"])
@torch.no_grad()
def test_beam_search_num_return_gives_transformers_num_return_sequences(loaded, reference,
                                                                        source, control):
    model, tokenizer = loaded
    fields, options, _ = CONTROLS[control] if control else ({}, {}, {})
    expected = expected_ids(reference, tokenizer, source, 4, num_return=3, **options)
    assert qkv_ids(model, tokenizer, source, 4, num_return=3, **fields) == expected
    assert len(expected) == 3 * len(TEXTS)


@torch.no_grad()
def test_qkv_translate_prints_k_ranked_lines_per_sentence(folder, loaded, reference, source,
                                                          capsys):
    """``qkv translate FOLDER TEXT… --beam 4 --num-return 2 --no-repeat-ngram 2``."""
    from qkv.cli.main import main

    _, tokenizer = loaded
    rows = expected_ids(reference, tokenizer, source, 4, num_return=2, no_repeat_ngram_size=2)
    groups = ["\n".join(f"{rank}\t{tokenizer.decode(ids)}" for rank, ids in
                        enumerate(rows[2 * i:2 * i + 2], start=1)) for i in range(len(TEXTS))]
    assert main(["translate", str(folder), *TEXTS, "--beam", "4", "--num-return", "2",
                 "--no-repeat-ngram", "2", "--length-penalty", "0", "--max-len", str(NEW)]) == 0
    assert capsys.readouterr().out == "\n\n".join(groups) + "\n"
