"""Classification from the command line, end to end on tiny data: qkv train --task classify,
qkv classify, qkv evaluate (accuracy, F1, confusion matrix), resume, class weights, errors."""

import json
import random

import pytest
import torch

import qkv
from qkv.cli.main import main
from qkv.decoding.classify import classify_texts

TRAIN = ["--task", "classify", "--model", "tiny", "--max-tokens", "600", "--no-progress",
         "--tokenizer", "char", "--schedule", "cosine", "--lr", "3e-3", "--warmup", "10"]
# Three "languages" told apart by their letters: a rule a tiny model learns in a few dozen steps.
ALPHABETS = {"vowels": "aeiou", "consonants": "bcdfgklmnprst", "digits": "0123456789"}


def labelled(count, seed, weights=(1, 1, 1)):
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        label = rng.choices(list(ALPHABETS), weights=weights)[0]
        words = ["".join(rng.choices(ALPHABETS[label], k=rng.randint(2, 6)))
                 for _ in range(rng.randint(1, 4))]
        rows.append((" ".join(words), label))
    return rows


def write_tsv(path, rows):
    path.write_text("".join(f"{text}\t{label}\n" for text, label in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labelled")
    return {"train": write_tsv(folder / "train.tsv", labelled(600, seed=0)),
            "test": write_tsv(folder / "test.tsv", labelled(60, seed=1))}


@pytest.fixture(scope="module")
def run(files, tmp_path_factory):
    """A classifier trained for 60 steps, with a test file kept with the run."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", str(files["train"]), "--steps", "60", "--eval-every", "30",
                 "--test", str(files["test"]), "--out", str(out), *TRAIN]) == 0
    return out


def test_train_writes_a_classifier_that_learns(run):
    checkpoint = qkv.load_checkpoint(run)
    assert checkpoint.task == "classification" and checkpoint.step == 60
    assert isinstance(checkpoint.model, qkv.SequenceClassifier)
    assert checkpoint.model.labels == ("consonants", "digits", "vowels")        # sorted names
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in records if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [30, 60] and valid[-1]["accuracy"] >= 90


def test_classify_prints_label_and_probability(run, capsys):
    texts = ["aeio ua", "123 45", "bcd kl"]
    assert main(["classify", str(run), *texts]) == 0
    out = capsys.readouterr().out.splitlines()
    checkpoint = qkv.load_checkpoint(run)
    probabilities = classify_texts(checkpoint.model, checkpoint.source_tokenizer, texts)
    for line, text, row in zip(out, texts, probabilities):
        label, probability, shown = line.split("\t")
        assert shown == text and label == checkpoint.model.labels[row.argmax()]
        assert float(probability) == pytest.approx(row.max().item(), abs=5e-4)
    assert [line.split("\t")[0] for line in out] == ["vowels", "digits", "consonants"]


def test_classify_top_k_json_file_and_stdin(run, tmp_path, monkeypatch, capsys):
    assert main(["classify", str(run), "aeiou", "--top", "2", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["text"] == "aeiou" and record["label"] == record["top"][0]["label"]
    assert len(record["top"]) == 2 and record["top"][0]["probability"] >= record["top"][1]["probability"]
    (tmp_path / "in.txt").write_text("aeiou\n\n12 34\n", encoding="utf-8")
    assert main(["classify", str(run), "--input", str(tmp_path / "in.txt")]) == 0
    from_file = capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", open(tmp_path / "in.txt", encoding="utf-8"))
    assert main(["classify", str(run)]) == 0
    assert capsys.readouterr().out == from_file and len(from_file.splitlines()) == 2
    assert main(["classify", str(run), "aeiou", "--top", "3"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0] == "aeiou" and len(shown) == 4                                # text + 3 labels


def test_classification_batches_equal_one_text_at_a_time(run):
    checkpoint = qkv.load_checkpoint(run)
    texts = ["a", "bcd fgk lmn prs", "0 1 2 3 4 5 6 7 8 9", "ua"]
    together = classify_texts(checkpoint.model, checkpoint.source_tokenizer, texts, batch_size=4)
    for text, row in zip(texts, together):
        alone = classify_texts(checkpoint.model, checkpoint.source_tokenizer, [text])
        torch.testing.assert_close(alone[0], row, atol=1e-5, rtol=1e-5)


def test_evaluate_reports_sklearn_scores_and_saves_the_confusion_matrix(run, files, capsys):
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    assert main(["evaluate", str(run), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    rows = [line.split("\t") for line in files["test"].read_text().splitlines()]
    checkpoint = qkv.load_checkpoint(run)
    labels = list(checkpoint.model.labels)
    probabilities = classify_texts(checkpoint.model, checkpoint.source_tokenizer,
                                   [text for text, _ in rows])
    predicted = [labels[i] for i in probabilities.argmax(-1).tolist()]
    gold = [label for _, label in rows]
    assert scores["examples"] == 60
    assert scores["accuracy"] == pytest.approx(100 * accuracy_score(gold, predicted))
    assert scores["macro_f1"] == pytest.approx(100 * f1_score(gold, predicted, average="macro"))
    assert scores["confusion"] == confusion_matrix(gold, predicted, labels=labels).tolist()
    assert set(scores["per_label"]) == set(labels)
    png = run / "confusion-test.png"
    assert scores["confusion_png"] == str(png) and png.read_bytes()[:4] == b"\x89PNG"

    assert main(["evaluate", str(run), "--data", str(files["test"]),
                 "--confusion", str(run / "mine.png")]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "macro-F1" in out and "precision  recall" in out
    assert (run / "mine.png").is_file()


def test_labelled_data_errors_name_the_file_and_line(run, files, tmp_path, capsys):
    cases = {"no_tab.tsv": ("aeiou\tvowels\nno tab here\n", "no_tab.tsv:2", "text<TAB>label"),
             "empty_label.tsv": ("aeiou\tvowels\n\n12\t \n", "empty_label.tsv:3", "label is empty"),
             "empty_text.tsv": (" \tdigits\n", "empty_text.tsv:1", "text is empty")}
    for name, (content, where, what) in cases.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
        assert main(["train", str(tmp_path / name), "--out", str(tmp_path / "x"), *TRAIN]) == 2
        err = capsys.readouterr().err
        assert where in err and what in err and "Traceback" not in err
    write_tsv(tmp_path / "unseen.tsv", [("aeiou", "vowels"), ("xyz", "klingon")])
    assert main(["evaluate", str(run), "--data", str(tmp_path / "unseen.tsv")]) == 2
    err = capsys.readouterr().err
    assert "unseen.tsv:2" in err and "'klingon' was never seen in training" in err
    assert main(["train", str(files["train"]), "--valid", str(tmp_path / "unseen.tsv"),
                 "--out", str(tmp_path / "y"), *TRAIN]) == 2
    assert "unseen.tsv:2" in capsys.readouterr().err


def test_options_of_another_task_are_refused(run, tmp_path):
    with pytest.raises(SystemExit, match="--pooling is for classification"):
        main(["train", "reverse", "--pooling", "mean", "--out", str(tmp_path / "r")])
    with pytest.raises(SystemExit, match="--init is for classification"):
        main(["train", "reverse", "--init", "minilm", "--out", str(tmp_path / "r")])
    with pytest.raises(SystemExit, match="qkv translate needs an encoder-decoder; .* holds a "
                                         "sequence classifier \\(use qkv classify\\)"):
        main(["translate", str(run), "aeiou"])


def test_classify_refuses_a_translation_model(tmp_path, capsys):
    from qkv.data.toy import toy_pairs
    from tests.cli.test_commands import write_tsv as write_pairs

    data = write_pairs(tmp_path / "pairs.tsv", toy_pairs("reverse", 50, seed=0))
    assert main(["train", str(data), "--steps", "1", "--out", str(tmp_path / "t"), "--model",
                 "tiny", "--no-progress", "--tokenizer", "word"]) == 0
    with pytest.raises(SystemExit, match="qkv classify needs a sequence classifier; .* holds an "
                                         "encoder-decoder"):
        main(["classify", str(tmp_path / "t"), "1 2"])


def test_balanced_class_weights_are_saved_and_resume_continues(files, tmp_path, capsys):
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight

    from qkv.data.sources import corpus_from_description

    skewed = write_tsv(tmp_path / "skewed.tsv", labelled(300, seed=3, weights=(8, 1, 1)))
    out = tmp_path / "weighted"
    assert main(["train", str(skewed), "--steps", "4", "--class-weights", "balanced",
                 "--out", str(out), *TRAIN]) == 0
    first = qkv.load_checkpoint(out)
    labels = list(first.model.labels)
    corpus = corpus_from_description(first.metadata["data"])
    train_labels = np.array([label for _, label in corpus.train])
    expected = compute_class_weight("balanced", classes=np.array(labels), y=train_labels)
    assert first.metadata["class_weights"] == pytest.approx(expected.tolist())
    assert first.metadata["class_weights"][labels.index("vowels")] < 1 < \
        first.metadata["class_weights"][labels.index("digits")]
    assert main(["train", str(skewed), "--steps", "6", "--resume", "--out", str(out),
                 *TRAIN]) == 0
    resumed = qkv.load_checkpoint(out)
    assert resumed.step == 6 and resumed.metadata["class_weights"] == first.metadata["class_weights"]
