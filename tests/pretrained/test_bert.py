"""BERT family: MiniLM's hidden states, attention weights and sentence embeddings equal the
references (transformers, sentence-transformers) on a padded batch."""

import pytest
import torch

from qkv.pretrained import embed_sentences
from qkv.pretrained.bert import bert_inputs
from qkv.trace import trace

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def reference(minilm_folder):
    model = transformers.AutoModel.from_pretrained(str(minilm_folder), attn_implementation="eager")
    return model.eval()


@pytest.fixture(scope="module")
def reference_tokenizer(minilm_folder):
    return transformers.AutoTokenizer.from_pretrained(str(minilm_folder))


def test_minilm_loads_as_bert_encoder(minilm):
    model, tokenizer = minilm
    config = model.config
    assert (config.num_layers, config.d_model, config.num_heads, config.d_ff) == (6, 384, 12, 1536)
    assert (config.norm_eps, config.type_vocab_size, config.embedding_norm) == (1e-12, 2, True)
    assert not model.training
    assert tokenizer.tokens([tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id,
                             tokenizer.unk_id]) == ["[CLS]", "[SEP]", "[PAD]", "[UNK]"]


def test_wordpiece_ids_equal_the_reference_tokenizer(sentences, minilm, reference_tokenizer):
    _, tokenizer = minilm
    for text in [*sentences, "Tokenization of unbelievably rare words: zyzzyva"]:
        assert tokenizer.encode(text) == reference_tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(tokenizer.encode(text)) == reference_tokenizer.decode(
            reference_tokenizer(text)["input_ids"], skip_special_tokens=True)


def test_padded_batch_matches_the_reference_tokenizer(sentences, minilm, reference_tokenizer):
    _, tokenizer = minilm
    ids, valid = bert_inputs(tokenizer, sentences)
    expected = reference_tokenizer(sentences, padding=True, return_tensors="pt")
    assert torch.equal(ids, expected["input_ids"])
    assert torch.equal(valid, expected["attention_mask"].bool())


@torch.no_grad()
def test_hidden_states_and_every_attention_weight_equal_transformers(sentences, minilm, reference):
    model, tokenizer = minilm
    ids, valid = bert_inputs(tokenizer, sentences)                      # padded: lengths differ
    assert not valid.all()
    expected = reference(input_ids=ids, attention_mask=valid.long(), output_attentions=True)
    with trace(model, fields="weights") as recorded:
        hidden = model(ids, mask=valid[:, None, None, :])
    assert (hidden - expected.last_hidden_state).abs().max() < 1e-4
    assert len(expected.attentions) == model.config.num_layers
    for layer, weights in enumerate(expected.attentions):               # (B, H, T, T) each
        mine = recorded[f"layers.{layer}.self_attention"].weights
        assert mine.shape == weights.shape
        assert (mine - weights).abs().max() < 1e-4, f"layer {layer}"
    # The fused path (outside the trace) agrees, and the default mask (from the pad id) is the
    # same mask.
    fused = model(ids, mask=valid[:, None, None, :])
    assert (fused - expected.last_hidden_state).abs().max() < 1e-4
    assert torch.equal(model(ids), fused)


@torch.no_grad()
def test_token_types_match_transformers_on_a_sentence_pair(minilm, reference, reference_tokenizer):
    model, _ = minilm
    pair = reference_tokenizer("How old are you?", "I am six.", return_tensors="pt")
    assert pair["token_type_ids"].any()
    expected = reference(**pair).last_hidden_state
    mine = model(pair["input_ids"], token_types=pair["token_type_ids"])
    assert (mine - expected).abs().max() < 1e-4
    assert (model(pair["input_ids"]) - expected).abs().max() > 1e-3    # types matter


def test_sentence_embeddings_equal_sentence_transformers(sentences, minilm, minilm_folder):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(str(minilm_folder), device="cpu")
    expected = torch.as_tensor(reference.encode(sentences, batch_size=3))
    mine = embed_sentences(*minilm, sentences, batch_size=3)
    assert mine.shape == expected.shape == (len(sentences), 384)
    cosine = torch.nn.functional.cosine_similarity(mine, expected, dim=1)
    assert (1 - cosine).abs().max() < 1e-5
    assert torch.allclose(mine.norm(dim=1), torch.ones(len(sentences)), atol=1e-5)


def test_sentence_embeddings_do_not_depend_on_batching(sentences, minilm):
    alone = torch.cat([embed_sentences(*minilm, [s]) for s in sentences])
    together = embed_sentences(*minilm, sentences, batch_size=32)
    assert torch.allclose(alone, together, atol=1e-5)


def test_embed_sentences_truncates_to_max_length(minilm):
    model, tokenizer = minilm
    assert tokenizer.max_length == 256                                  # sentence_bert_config.json
    long = " ".join(["word"] * 600)                                     # > model.config.max_len
    assert embed_sentences(model, tokenizer, [long]).shape == (1, 384)
    ids, _ = bert_inputs(tokenizer, [long], max_length=10)
    assert ids.shape == (1, 10) and ids[0, -1] == tokenizer.eos_id


def test_embed_sentences_rejects_a_single_string(minilm):
    with pytest.raises(TypeError, match="wrap it in a list"):
        embed_sentences(*minilm, "one sentence")
