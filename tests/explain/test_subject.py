"""The subject every method explains: targets resolved, scores of variants, the score from token
embeddings equal to the score from ids, and a capture of every attention step."""

import pytest
import torch

from qkv.explain import Label, NextToken, OutputToken, capture, subject
from tests.explain.conftest import FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_score_from_embeddings_equals_score_from_ids(subjects, family):
    s = subjects[family]
    embeddings = s.token_embeddings()
    for output in ("probability", "log_probability", "logit"):
        expected = s.score(output=output)
        got = s.score_from_embeddings(*[e.expand(3, -1, -1) for e in embeddings], output=output)
        torch.testing.assert_close(got.detach(), expected.expand(3), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_capture_lays_open_every_attention_and_keeps_the_score(subjects, models, family):
    s = subjects[family]
    captured = capture(s, output="probability")
    attention_modules = [name for name, module in s.model.named_modules()
                         if type(module).__name__ == "MultiHeadAttention"]
    assert [step.name for step in captured.steps] == attention_modules
    torch.testing.assert_close(captured.score, s.score(), atol=1e-6, rtol=1e-6)
    for step in captured.steps:
        T, S = s.ids[step.query_side].shape[0], s.ids[step.key_side].shape[0]
        assert step.weights.shape[-2:] == (T, S)
        assert step.residual_input.shape == step.residual_output.shape == (1, T, s.model.config.d_model)


def test_variants_of_other_lengths_are_scored(subjects):
    s = subjects["classifier"]
    text = s.ids["text"]
    variants = [{"text": text}, {"text": text[[0, 1, -1]]}, {"text": text[[0, -1]]}]
    scores = s.score(variants)
    assert scores.shape == (3,)
    assert scores[0] == pytest.approx(float(s.score()[0]), abs=1e-6)


def test_targets_resolve_to_ids_and_names(models):
    model, tokenizer = models["language_model"]
    ids = [tokenizer.bos_id, *tokenizer.encode("I love my dog")]
    s = subject(model, ids, NextToken(position=2), tokenizer=tokenizer)
    assert s.ids["text"].tolist() == ids[:3] and s.target.token == ids[3]
    assert s.target_name == "next token 'my'"
    classifier, _ = models["classifier"]
    assert subject(classifier, ids, Label("pos")).target == Label(1)
    translator, _ = models["translation"]
    t = subject(translator, {"source": ids, "target": [tokenizer.bos_id, 7, 8]}, OutputToken(-1))
    assert t.ids["target"].tolist() == [tokenizer.bos_id, 7] and t.target.token == 8


@pytest.mark.parametrize("call, message", [
    (lambda m: subject(m["classifier"][0], [1, 2], NextToken()), "Label target"),
    (lambda m: subject(m["classifier"][0], [1, 2], Label("maybe")), "not one of the model's"),
    (lambda m: subject(m["language_model"][0], [1, 2], NextToken(position=5)), "position"),
    (lambda m: subject(m["language_model"][0], [], NextToken()), "non-empty"),
    (lambda m: subject(m["encoder"][0], [1, 2]), "Similarity"),
    (lambda m: subject(m["translation"][0], [1, 2]), "source"),
])
def test_bad_subjects_are_refused_by_name(models, call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call(models)
