"""SequenceClassifier: pooling, padding, the head, its config, and that trace sees its attention."""

import pytest
import torch

import qkv
from qkv.training.tasks import ClassificationTask, classification_ids


def classifier(pooling="cls", pooler=False, labels=("a", "b", "c"), **changes):
    torch.manual_seed(0)
    fields = dict(vocab_size=30, d_model=16, num_heads=2, num_layers=2, d_ff=32, dropout=0.0)
    config = qkv.SequenceClassifierConfig(**{**fields, **changes}, labels=labels, pooling=pooling,
                                          pooler=pooler)
    return qkv.SequenceClassifier(config).eval()


IDS = torch.tensor([[1, 5, 6, 7, 2, 0, 0], [1, 8, 9, 10, 11, 12, 2]])     # 0 = padding


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("pooler", [False, True])
def test_logits_are_the_head_on_the_pooled_hidden_states(pooling, pooler):
    model = classifier(pooling, pooler)
    hidden = model.encoder(IDS)                                                  # (B, T, E)
    real = (IDS != 0).float().unsqueeze(-1)                                     # (B, T, 1)
    pooled = hidden[:, 0] if pooling == "cls" else (hidden * real).sum(1) / real.sum(1)
    if pooler:
        pooled = torch.tanh(pooled @ model.pooler.weight.T + model.pooler.bias)
    expected = pooled @ model.classifier.weight.T + model.classifier.bias
    torch.testing.assert_close(model(IDS), expected, atol=1e-6, rtol=1e-5)
    assert model(IDS).shape == (2, 3)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_padding_changes_nothing(pooling):
    model = classifier(pooling)
    alone = model(IDS[:1, :5])                                                   # no padding
    torch.testing.assert_close(model(IDS)[:1], alone, atol=1e-5, rtol=1e-5)


def test_an_explicit_mask_equals_the_pad_id_mask():
    model = classifier("mean")
    for mask in (IDS != 0, (IDS != 0)[:, None, None, :]):
        torch.testing.assert_close(model(IDS, mask), model(IDS), atol=1e-6, rtol=1e-6)


def test_bad_inputs_name_the_problem():
    model = classifier()
    with pytest.raises(ValueError, match=r"ids must have shape \(B, T\)"):
        model(torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="bool"):
        model(IDS, torch.ones(2, 7))
    with pytest.raises(ValueError, match=r"mask must be \(B, T\)"):
        model(IDS, torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="vocab_size"):
        model(torch.tensor([[1, 99]]))


@pytest.mark.parametrize("labels, error, match", [
    (["only"], ValueError, "at least 2 labels"),
    (["a", "a", "b"], ValueError, "repeated: \\['a'\\]"),
    (["a", " "], ValueError, "must not be empty"),
    ("ab", TypeError, "sequence of label names"),
    ([1, 2], TypeError, "sequence of label names"),
])
def test_config_checks_the_labels(labels, error, match):
    with pytest.raises(error, match=match):
        qkv.SequenceClassifierConfig(vocab_size=10, d_model=8, num_heads=2, labels=labels)


def test_config_checks_pooling_and_keeps_labels_as_a_tuple():
    with pytest.raises(ValueError, match="pooling must be one of 'cls', 'mean'"):
        qkv.SequenceClassifierConfig(vocab_size=10, d_model=8, num_heads=2, labels=["a", "b"],
                                     pooling="max")
    config = qkv.SequenceClassifierConfig(vocab_size=10, d_model=8, num_heads=2, labels=["a", "b"])
    assert config.labels == ("a", "b") and config.num_labels == 2
    assert type(config)(**config.to_dict()) == config                           # JSON round trip
    assert config.encoder_config() == qkv.EncoderModelConfig(vocab_size=10, d_model=8, num_heads=2)


def test_classifier_dropout_defaults_to_dropout():
    config = dict(vocab_size=10, d_model=8, num_heads=2, labels=["a", "b"], dropout=0.3)
    assert qkv.SequenceClassifier(qkv.SequenceClassifierConfig(**config)).dropout.p == 0.3
    assert qkv.SequenceClassifier(qkv.SequenceClassifierConfig(
        **config, classifier_dropout=0.0)).dropout.p == 0.0


def test_trace_records_the_encoders_attention():
    model = classifier()
    with qkv.trace(model) as recorded:
        model(IDS)
    names = recorded.names()
    assert names == ["encoder.layers.0.self_attention", "encoder.layers.1.self_attention"]
    weights = recorded["encoder.layers.0.self_attention"].weights                # (B, H, T, S)
    assert torch.all(weights[0, :, :, 5:] == 0)                                  # padding


def test_checkpoint_round_trip_keeps_labels_and_logits(tmp_path):
    from qkv.tokenizers import CharTokenizer
    tokenizer = CharTokenizer.train(["abc"])
    model = classifier(labels=("négatif", "positif"))
    qkv.save_checkpoint(tmp_path, model=model, task="classification", step=3,
                        source_tokenizer=tokenizer, target_tokenizer=tokenizer)
    loaded = qkv.load_checkpoint(tmp_path)
    assert loaded.task == "classification" and loaded.model.labels == ("négatif", "positif")
    torch.testing.assert_close(loaded.model(IDS), model(IDS))


def test_task_loss_is_weighted_label_smoothed_cross_entropy():
    from qkv.tokenizers import CharTokenizer
    tokenizer = CharTokenizer.train(["abcdefg"])
    model = classifier(labels=("x", "y", "z"), vocab_size=tokenizer.vocab_size)
    weights = [0.5, 2.0, 1.0]
    task = ClassificationTask(tokenizer, ("x", "y", "z"), max_len=8, class_weights=weights)
    examples = task.encode([("abc", "y"), ("gfedcba", "x"), ("a", "z")])
    batch = task.collate(examples)
    result = task.loss(model, batch, smoothing=0.1)
    log_probs = torch.log_softmax(model(batch.inputs), dim=-1)
    per_example = torch.nn.functional.cross_entropy(model(batch.inputs), batch.targets,
                                                    label_smoothing=0.1, reduction="none")
    expected = (torch.tensor(weights)[batch.targets] * per_example).sum()
    torch.testing.assert_close(result.loss, expected)
    torch.testing.assert_close(result.nll, -log_probs[range(3), batch.targets].sum())
    assert result.tokens.item() == 3
    unweighted = ClassificationTask(tokenizer, ("x", "y", "z"), max_len=8).loss(model, batch, 0.1)
    torch.testing.assert_close(unweighted.loss, per_example.sum())


def test_task_refuses_unknown_labels_and_cuts_long_texts():
    from qkv.tokenizers import CharTokenizer
    tokenizer = CharTokenizer.train(["abcdefg"])
    task = ClassificationTask(tokenizer, ("x", "y"), max_len=4)
    with pytest.raises(ValueError, match=r"unknown label\(s\) \['w'\]; this classifier knows"):
        task.encode([("abc", "w")])
    (ids, label), = task.encode([("abcdefg", "y")])
    assert ids == classification_ids(tokenizer, "ab", 4) and len(ids) == 4 and label == 1
    with pytest.raises(ValueError, match="2 positive numbers"):
        ClassificationTask(tokenizer, ("x", "y"), max_len=4, class_weights=[1.0])
