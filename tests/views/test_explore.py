"""explore: each task builds its model's input, traces it, and returns the document."""

import pytest
import torch

from qkv.decoding.classify import classify_texts
from qkv.trace import trace
from qkv.views import TooManyTokens, check_document, explore
from qkv.views.explore import DEFAULT_TEXTS, TASKS, next_token_prediction


def test_language_model_starts_with_bos(language_model, tokenizer):
    doc = explore(language_model, task="language_model", source_tokenizer=tokenizer,
                  text="I love my dog")
    assert doc["sides"] == {"text": ["<bos>", "I", "love", "my", "dog"]}
    assert {a["kind"] for a in doc["attentions"]} == {"decoder"}


def test_encoder_wraps_in_bos_and_eos(encoder_model, tokenizer):
    doc = explore(encoder_model, task="encoder", source_tokenizer=tokenizer, text="the cat")
    assert doc["sides"]["text"] == ["<bos>", "the", "cat", "<eos>"]
    assert [a["name"] for a in doc["attentions"]] == ["layers.0.self_attention",
                                                     "layers.1.self_attention"]


def test_translation_teacher_forces_a_given_target(translation_model, tokenizer):
    doc = explore(translation_model, task="translation", source_tokenizer=tokenizer,
                  target_tokenizer=tokenizer, text="I love my dog", target_text="the cat")
    assert doc["sides"] == {"source": ["I", "love", "my", "dog", "<eos>"],
                            "target": ["<bos>", "the", "cat"]}
    src, tgt = torch.tensor([[4, 5, 6, 7, 2]]), torch.tensor([[1, 8, 9]])
    with trace(translation_model) as t:
        translation_model(src, tgt)
    cross = next(a for a in doc["attentions"] if a["name"] == "decoder.layers.1.cross_attention")
    assert cross["kind"] == "cross" and cross["query_side"] == "target"
    torch.testing.assert_close(torch.tensor(cross["weights"]),
                               t["decoder.layers.1.cross_attention"].weights[0],
                               atol=1e-6, rtol=1e-5)


def test_translation_decodes_greedily_without_a_target(translation_model, tokenizer):
    doc = explore(translation_model, task="translation", source_tokenizer=tokenizer,
                  text="I love", max_tokens=8)
    target = doc["sides"]["target"]
    assert target[0] == "<bos>" and 1 <= len(target) <= 8


def test_too_many_tokens_names_the_limit(language_model, tokenizer):
    with pytest.raises(TooManyTokens, match="has 5 tokens, more than the limit of 4") as caught:
        explore(language_model, task="language_model", source_tokenizer=tokenizer,
                text="I love my dog", max_tokens=4)
    assert (caught.value.count, caught.value.limit) == (5, 4)


def test_unknown_task(language_model, tokenizer):
    with pytest.raises(ValueError, match="task must be one of"):
        explore(language_model, task="chat", source_tokenizer=tokenizer, text="I")


def test_classification_carries_the_prediction_of_the_traced_forward(classifier, tokenizer):
    doc = explore(classifier, task="classification", source_tokenizer=tokenizer,
                  text="I love my dog")
    assert doc["sides"] == {"text": ["<bos>", "I", "love", "my", "dog", "<eos>"]}
    assert [(a["name"], a["kind"]) for a in doc["attentions"]] == [
        ("encoder.layers.0.self_attention", "encoder"), ("encoder.layers.1.self_attention",
                                                         "encoder")]
    ids = torch.tensor([[1, 4, 5, 6, 7, 2]])
    with trace(classifier) as t:
        logits = classifier(ids)[0]
    for record in doc["attentions"]:
        torch.testing.assert_close(torch.tensor(record["weights"]), t[record["name"]].weights[0],
                                   atol=1e-6, rtol=1e-5)
    prediction = doc["prediction"]
    expected = classify_texts(classifier, tokenizer, ["I love my dog"])[0]
    assert prediction["kind"] == "classification"
    assert prediction["labels"] == ["negative", "positive", "</script><b>x"]
    torch.testing.assert_close(torch.tensor(prediction["probabilities"]), expected,
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.tensor(prediction["logits"]), logits, atol=1e-6, rtol=1e-5)
    assert prediction["label"] == prediction["labels"][int(expected.argmax())]
    assert check_document(doc) is doc


def test_classification_refuses_long_text_and_other_models(classifier, encoder_model, tokenizer):
    with pytest.raises(TooManyTokens, match="has 6 tokens, more than the limit of 5"):
        explore(classifier, task="classification", source_tokenizer=tokenizer,
                text="I love my dog", max_tokens=5)
    with pytest.raises(ValueError, match="needs a qkv.SequenceClassifier .* got EncoderModel"):
        explore(encoder_model, task="classification", source_tokenizer=tokenizer, text="I")


def test_classification_limit_follows_the_tokenizers_max_length(classifier, tokenizer):
    tokenizer.max_length = 4                                   # sentence-transformers' cut
    with pytest.raises(TooManyTokens, match="more than the limit of 4"):
        explore(classifier, task="classification", source_tokenizer=tokenizer, text="I love my")


def test_language_model_predicts_the_next_token_of_the_traced_forward(language_model, tokenizer):
    doc = explore(language_model, task="language_model", source_tokenizer=tokenizer,
                  text="I love my")
    ids = torch.tensor([[tokenizer.bos_id, *tokenizer.encode("I love my")]])
    expected = torch.softmax(language_model(ids)[0, -1], dim=-1).topk(10)    # a direct call
    prediction = doc["prediction"]
    assert prediction["kind"] == "next_token"
    assert prediction["ids"] == expected.indices.tolist()
    assert prediction["tokens"] == tokenizer.tokens(expected.indices.tolist())
    torch.testing.assert_close(torch.tensor(prediction["probabilities"]), expected.values,
                               atol=1e-6, rtol=0)
    assert check_document(doc) is doc


def test_translation_predicts_the_greedy_text_of_its_target_side(translation_model, tokenizer):
    from qkv.decoding import greedy

    doc = explore(translation_model, task="translation", source_tokenizer=tokenizer,
                  text="I love my dog", max_tokens=12)
    source = torch.tensor([tokenizer.encode("I love my dog") + [tokenizer.eos_id]])
    output = greedy(translation_model, source, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id,
                    max_len=11)[0]                                            # a direct call
    assert doc["prediction"] == {"kind": "translation", "text": tokenizer.decode(output),
                                 "greedy": True}
    assert doc["sides"]["target"] == tokenizer.tokens([tokenizer.bos_id, *output])
    forced = explore(translation_model, task="translation", source_tokenizer=tokenizer,
                     text="I love my dog", target_text="the cat")
    assert forced["prediction"] == {"kind": "translation", "text": "the cat", "greedy": False}


def test_an_encoder_has_no_prediction(encoder_model, tokenizer):
    doc = explore(encoder_model, task="encoder", source_tokenizer=tokenizer, text="the cat")
    assert "prediction" not in doc


def test_every_task_has_a_default_sentence(language_model, tokenizer):
    assert set(DEFAULT_TEXTS) == set(TASKS)
    assert DEFAULT_TEXTS["translation"] == "I love my dog"
    doc = explore(language_model, task="language_model", source_tokenizer=tokenizer,
                  text=DEFAULT_TEXTS["language_model"])
    assert doc["sides"]["text"] == ["<bos>", "I", "love", "my"]


def test_next_token_prediction_checks_its_logits(tokenizer):
    with pytest.raises(ValueError, match=r"logits must have shape \(V,\), got \(1, 13\)"):
        next_token_prediction(tokenizer, torch.zeros(1, 13))
    assert len(next_token_prediction(tokenizer, torch.zeros(13), k=50)["tokens"]) == 13
