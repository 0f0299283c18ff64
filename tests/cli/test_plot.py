"""Watching training from the command line: qkv train validates with BLEU/chrF on a fixed subset,
draws curves.png at the end, and qkv plot redraws a run's metrics.jsonl as curves."""

import json

import pytest

import qkv
from qkv.cli.main import main
from qkv.data.sources import corpus_from_description
from qkv.decoding.text import translate_texts
from qkv.evaluation import bleu, chrf
from qkv.views.curves import curve_series, read_metrics

TRAIN = ["--model", "tiny", "--max-tokens", "400", "--no-progress", "--size", "300"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """20 steps on the reverse task, validated every 10 steps, BLEU on 8 validation pairs."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "reverse", "--steps", "20", "--eval-every", "10", "--eval-subset", "8",
                 "--out", str(out), *TRAIN]) == 0
    return out


def records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_validation_measures_bleu_and_chrf_on_the_first_validation_pairs(run):
    valid = [r for r in records(run) if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [10, 20]
    assert all({"loss", "ppl", "bleu", "chrf"} == r.keys() - {"step", "split"} for r in valid)
    checkpoint = qkv.load_checkpoint(run)                        # the model of step 20
    assert checkpoint.metadata["training"]["eval_subset"] == 8
    pairs = corpus_from_description(checkpoint.metadata["data"]).valid[:8]
    hypotheses = translate_texts(checkpoint.model, checkpoint.source_tokenizer,
                                 checkpoint.target_tokenizer, [s for s, _ in pairs])
    references = [t for _, t in pairs]
    assert valid[-1]["bleu"] == pytest.approx(bleu(hypotheses, references))
    assert valid[-1]["chrf"] == pytest.approx(chrf(hypotheses, references))


def test_training_draws_its_curves_and_plot_redraws_them(run, tmp_path, capsys):
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", str(run), "-o", str(tmp_path / "mine.png")]) == 0
    assert (tmp_path / "mine.png").read_bytes()[:4] == b"\x89PNG"
    assert "loss, ppl, lr, tokens_per_s, bleu, chrf" in capsys.readouterr().out
    assert main(["plot", str(run / "metrics.jsonl"), "-o", str(tmp_path / "mine.svg")]) == 0
    assert (tmp_path / "mine.svg").read_text().lstrip().startswith("<?xml")


def test_the_plotted_series_are_the_numbers_of_metrics_jsonl(run):
    lines = records(run)
    series = curve_series(read_metrics(run))
    assert list(series) == ["loss", "ppl", "lr", "tokens_per_s", "bleu", "chrf"]
    for name, splits in series.items():
        for split, curve in splits.items():
            logged = [r for r in lines if r["split"] == split and name in r]
            assert curve == {"step": [r["step"] for r in logged],
                             "value": [r[name] for r in logged]}, (name, split)
    assert set(series["loss"]) == {"train", "valid"} and set(series["bleu"]) == {"valid"}
    json.dumps(series)                                               # JSON-able, for any view


def test_series_are_sorted_by_step_and_a_step_logged_twice_keeps_its_last_value():
    series = curve_series([{"step": 4, "split": "train", "loss": 2.0},
                           {"step": 2, "split": "train", "loss": 3.0, "note": "text"},
                           {"step": 4, "split": "train", "loss": 1.5},
                           {"step": 4, "split": "valid", "accuracy": 75.0}])
    assert series == {"loss": {"train": {"step": [2, 4], "value": [3.0, 1.5]}},
                      "accuracy": {"valid": {"step": [4], "value": [75.0]}}}


def test_plot_errors_are_one_line_naming_the_problem(run, tmp_path, capsys):
    assert main(["plot", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "metrics.jsonl" in err and len(err.splitlines()) == 1
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 2}\n{"ste\n')
    assert main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "metrics.jsonl:2" in err and len(err.splitlines()) == 1
    assert main(["plot", str(run), "-o", str(tmp_path / "no" / "dir.png")]) == 2
    assert "--output" in capsys.readouterr().err
