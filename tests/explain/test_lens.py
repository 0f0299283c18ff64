"""The logit lens: known answers (the last layer is the model's own output; layer l is the model
cut after l layers; layer 0 is the embeddings read out), every family, reports and views."""

import copy
import json

import pytest
import torch

from qkv.explain import analyse
from qkv.explain.analysis import ANALYSES
from qkv.explain.lens import logit_lens, logit_lens_report, read_out, residual_stream
from tests.explain.conftest import FAMILIES

TOKEN_FAMILIES = ("language_model", "gpt2", "translation", "marian")


def _lens(subject, **options):
    side = "target" if "source" in subject.ids else "text"
    return logit_lens(subject.model, subject.ids[side], source=subject.ids.get("source"),
                      **options)


def _own_logits(subject):
    with torch.no_grad():
        if "source" in subject.ids:
            return subject.model(subject.ids["source"][None], subject.ids["target"][None])[0]
        return subject.model(subject.ids["text"][None])[0]


@pytest.mark.parametrize("family", TOKEN_FAMILIES)
def test_last_layer_of_the_lens_is_the_models_own_logits(subjects, family):
    subject = subjects[family]
    lens = _lens(subject)                                               # (L + 1, T, V)
    own = _own_logits(subject)                                          # (T, V)
    L = len(subject.model.decoder.layers if family in ("translation", "marian")
            else subject.model.layers)
    assert lens.shape == (L + 1, *own.shape)
    torch.testing.assert_close(lens[-1], own, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(lens[0], own, atol=1e-3)                  # the layers do something


@pytest.mark.parametrize("family", ("language_model", "gpt2"))
def test_lens_at_layer_l_is_the_model_cut_after_l_layers(subjects, family):
    """A language model with its layers after l removed outputs exactly the lens' row l."""
    subject = subjects[family]
    ids = subject.ids["text"]
    lens = logit_lens(subject.model, ids)
    for keep in range(len(subject.model.layers)):
        cut = copy.deepcopy(subject.model)
        cut.layers = cut.layers[:keep]
        with torch.no_grad():
            if keep == 0:                                               # no layers: read by hand
                x = cut.embedding(ids[None], torch.arange(len(ids)))
                x = x if cut.final_norm is None else cut.final_norm(x)
                expected = cut.output_layer(x)[0]
            else:
                expected = cut(ids[None])[0]
        torch.testing.assert_close(lens[keep], expected, atol=1e-5, rtol=1e-5)


def test_classifier_lens_last_layer_is_its_probabilities(subjects):
    subject = subjects["classifier"]
    lens = _lens(subject, output="probability")                        # (L + 1, C)
    with torch.no_grad():
        own = subject.model(subject.ids["text"][None])[0].softmax(-1)   # (C,)
    assert lens.shape == (len(subject.model.encoder.layers) + 1, len(subject.model.labels))
    torch.testing.assert_close(lens[-1], own, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(lens.sum(-1), torch.ones(lens.shape[0]))


@pytest.mark.parametrize("family", ("encoder", "minilm"))
def test_encoder_lens_is_the_projection_onto_the_token_embeddings(subjects, family):
    subject = subjects[family]
    model, ids = subject.model, subject.ids["text"]
    lens = logit_lens(model, ids)                                       # (L + 1, T, V)
    with torch.no_grad():
        hidden = model(ids[None])[0]                                    # (T, E)
    torch.testing.assert_close(lens[-1], hidden @ model.embedding.token.weight.T, atol=1e-4,
                               rtol=1e-5)
    stream = residual_stream(model, ids)
    assert stream.shape == (len(model.layers) + 1, len(ids), model.config.d_model)


@pytest.mark.parametrize("family", FAMILIES)
def test_report_target_probability_at_the_last_layer_is_the_subjects_score(subjects, models,
                                                                            family):
    subject = subjects[family]
    report = logit_lens_report(subject, k=3, tokenizer=models[family][1])
    assert json.loads(json.dumps(report)) == report                     # JSON-able
    assert ANALYSES["logit-lens"].html(report).startswith("<div")
    L1 = len(report["layers"])
    assert len(report["top"]) == L1 and len(report["top"][0]) == len(report["positions"])
    assert len(report["top"][0][0]) == (2 if family == "classifier" else 3)   # k ≤ C labels
    if family in ("encoder", "minilm"):
        assert report["target_token"] is None and report["approximation"]
        assert len(report["input_probability"]) == L1
        return
    target = report["target_token"]
    assert target["probability"][-1] == pytest.approx(float(subject.score()[0]), abs=1e-5)
    if family in ("classifier", "language_model", "gpt2"):            # the predicted target
        assert target["rank"][-1] == 0
    # The final prediction is the top token of the last row, and its probability there is its own.
    assert report["final"][-1]["id"] == report["top"][-1][-1][0]["id"]
    assert report["final_probability"][-1][-1] == pytest.approx(
        report["top"][-1][-1][0]["probability"])


def test_registered_run_html_escapes_token_text_and_png_is_written(subjects, models, tmp_path):
    analysis = ANALYSES["logit-lens"]
    for family in ("language_model", "classifier"):
        report = analyse(subjects[family], "logit-lens", tokenizer=models[family][1])
        report["positions"][0] = "<script>alert(1)</script>"
        report["top"][-1][0][0]["token"] = "</td><script>x</script>"
        if family == "classifier":
            report["labels"][0] = "<script>label</script>"
        fragment = analysis.html(report)
        assert "<script" not in fragment and "&lt;script&gt;" in fragment
        assert "<html" not in fragment and fragment.startswith("<div")
        path = tmp_path / f"{family}.png"
        analysis.png(report, path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lens_refuses_what_it_cannot_read(subjects):
    translation, lm = subjects["translation"], subjects["language_model"]
    with pytest.raises(ValueError, match="source"):
        logit_lens(translation.model, translation.ids["target"])
    with pytest.raises(ValueError, match="source= is for a translation"):
        logit_lens(lm.model, lm.ids["text"], source=[1, 2])
    with pytest.raises(ValueError, match="output must be one of"):
        logit_lens(lm.model, lm.ids["text"], output="probs")
    with pytest.raises(TypeError, match="LanguageModel, Transformer"):
        logit_lens(torch.nn.Linear(2, 2), [1])
    with pytest.raises(ValueError, match="non-empty sequence"):
        logit_lens(lm.model, [])
    with pytest.raises(ValueError, match="k must be"):
        logit_lens_report(lm, k=0)
    with pytest.raises(ValueError, match=r"\(\.\.\., T, E\)"):
        read_out(lm.model, torch.zeros(3, 5))


@pytest.mark.parametrize("family", ("language_model", "translation"))
def test_report_names_tokens_with_the_subjects_own_tokenizer(subjects, models, family):
    report = analyse(subjects[family], "logit-lens", k=2)              # no tokenizer= given
    tokenizer = models[family][1]
    cell = report["top"][-1][-1][0]
    assert cell["token"] == tokenizer.tokens([cell["id"]])[0]
    assert report["target_token"]["token"] == tokenizer.tokens([report["target_token"]["id"]])[0]
