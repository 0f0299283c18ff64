"""``qkv export`` on a saved run: a BERT-shaped classifier as a transformers folder (its
predictions equal ``qkv classify``'s) and as ONNX; a model the format cannot express, or an
existing folder, is one line on stderr and exit status 2, with nothing written."""

import json

import pytest
import torch

import qkv
from qkv.cli.main import main
from qkv.decoding.classify import classify_texts

from .conftest import SIZES, TEXTS, randomize

LABELS = ["animal", "other"]


def _run(folder, tokenizer, **changes):
    config = qkv.SequenceClassifierConfig(
        vocab_size=tokenizer.vocab_size, labels=LABELS, positions="learned", activation="gelu",
        embedding_norm=True, pooler=True, **SIZES, **changes)
    model = randomize(qkv.SequenceClassifier(config))
    qkv.save_checkpoint(folder, model=model, task="classification", step=1,
                        source_tokenizer=tokenizer, target_tokenizer=tokenizer)
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from qkv.tokenizers import BPETokenizer

    return _run(tmp_path_factory.mktemp("run"), BPETokenizer.train(TEXTS, vocab_size=90))


def test_hf_export_predicts_what_qkv_classify_predicts(run, tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    out = tmp_path / "hf"
    assert main(["export", str(run), "--format", "hf", "-o", str(out)]) == 0
    assert "BertForSequenceClassification" in capsys.readouterr().out
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        probabilities = model(**tokenizer(TEXTS[:4], padding=True, return_tensors="pt")
                              ).logits.softmax(-1)
    checkpoint = qkv.load_checkpoint(run)
    expected = classify_texts(checkpoint.model, checkpoint.source_tokenizer, TEXTS[:4])
    torch.testing.assert_close(probabilities, expected, atol=1e-4, rtol=1e-4)
    assert model.config.id2label == dict(enumerate(LABELS))


def test_onnx_export_writes_the_model_and_its_description(run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path / "onnx"
    assert main(["export", str(run), "--format", "onnx", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "onnxruntime" in printed and "input_ids ('batch', 'sequence')" in printed
    info = json.loads((out / "model.json").read_text())
    assert info["labels"] == LABELS and info["model"] == "SequenceClassifier"
    assert info["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["batch", 2]}]


def test_a_model_bert_cannot_express_is_refused_in_one_line(tokenizers, tmp_path, capsys):
    run = _run(tmp_path / "mean", tokenizers["char"], pooling="mean")
    assert main(["export", str(run), "-o", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("qkv export: error: cannot export to BERT: pooling='mean'; ")
    assert len(error.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mean"]       # no out, no temporary


def test_an_existing_folder_is_kept_unless_forced(run, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", str(run), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert main(["export", str(run), "-o", str(out), "--force"]) == 0
    assert (out / "config.json").is_file() and not (out / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
