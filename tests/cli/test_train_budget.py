"""Bounding training from the command line: --max-time stops at the budget with a checkpoint
that resumes; --eval-subset fixes the validation examples that accuracy is measured on."""

import json

import pytest

import qkv
from qkv.cli.main import main
from qkv.cli.train import parse_duration
from qkv.data.sources import corpus_from_description
from qkv.decoding.classify import classify_texts
from qkv.data.toy import toy_pairs
from tests.cli.test_classify import TRAIN as CLASSIFY, labelled, write_tsv
from tests.cli.test_commands import TRAIN, write_tsv as write_pairs


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("1.5h", 5400),
                                           ("45", 45), ("0.5", 0.5), (" 2M ", 120)])
def test_durations_are_seconds_minutes_or_hours(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "0", "-5m", "1d", "inf", "nan", "1h30m", ""])
def test_a_bad_max_time_is_one_line_naming_the_option(bad, tmp_path, capsys):
    assert main(["train", "reverse", f"--max-time={bad}", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err == (f"qkv train: error: --max-time must be a duration above 0 like 90s, 30m, "
                   f"1.5h or plain seconds, got {bad!r}\n")
    assert not (tmp_path / "r").exists()


def test_max_time_stops_early_with_a_checkpoint_and_resume_goes_on(tmp_path, capsys):
    data = write_pairs(tmp_path / "pairs.tsv", toy_pairs("reverse", 300, seed=0))
    out = tmp_path / "run"
    common = ["train", str(data), "--tokenizer", "word", "--out", str(out), *TRAIN]
    assert main([*common, "--steps", "100000", "--max-time", "1s"]) == 0
    checkpoint = qkv.load_checkpoint(out)
    assert 1 <= checkpoint.step < 100000
    assert checkpoint.metadata["training"]["max_time"] == 1.0
    err = capsys.readouterr().err
    assert (f"stopped at step {checkpoint.step} of 100000: the time budget of 1 s ran out"
            in err)
    last = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert (last["split"], last["step"]) == ("valid", checkpoint.step)

    more = checkpoint.step + 3
    assert main([*common, "--steps", str(more), "--resume", "--max-time", "1h"]) == 0
    assert qkv.load_checkpoint(out).step == more
    assert f"stopped at step {more}: all {more} steps done" in capsys.readouterr().err


def test_accuracy_is_measured_on_the_first_eval_subset_examples(tmp_path):
    data = write_tsv(tmp_path / "labelled.tsv", labelled(400, seed=0))
    out = tmp_path / "run"
    assert main(["train", str(data), "--steps", "8", "--eval-subset", "5", "--out", str(out),
                 *CLASSIFY]) == 0
    checkpoint = qkv.load_checkpoint(out)
    valid = corpus_from_description(checkpoint.metadata["data"]).valid
    assert len(valid) == 8 and checkpoint.metadata["training"]["eval_subset"] == 5
    labels = list(checkpoint.model.labels)
    predicted = classify_texts(checkpoint.model, checkpoint.source_tokenizer,
                               [text for text, _ in valid[:5]]).argmax(-1).tolist()
    right = sum(labels[p] == gold for p, (_, gold) in zip(predicted, valid[:5]))
    assert checkpoint.metadata["metrics"]["accuracy"] == pytest.approx(100 * right / 5)
