"""Transformer → MarianMTModel: the paper's model (interleaved sinusoids, √d_model scale, ReLU,
post-norm) loads in transformers with qkv's logits on a padded batch — its model dimension
reordered so that the sinusoids take Marian's [sin | cos] layout — shared or separate
vocabularies, tied or untied output; a Marian folder loaded by qkv and exported again gives the
original's logits and tokenizer; what Marian cannot express is refused."""

import json

import pytest
import torch

import qkv
from qkv.export import to_huggingface
from qkv.export.marian import sinusoid_order

from .conftest import SIZES, TEXTS, padded, randomize

transformers = pytest.importorskip("transformers")

PAPER = dict(positions="sinusoidal", activation="relu", norm_first=False, scale_embeddings=True)


def _logits_agree(model, folder, source, target):
    """qkv's teacher-forced logits and transformers' agree at the real target positions."""
    src, src_valid = padded([source.encode(t) + [source.eos_id] for t in TEXTS[:3]],
                            source.pad_id)
    tgt, tgt_valid = padded([target.encode(t[::-1]) for t in TEXTS[:3]], target.pad_id,
                            first=target.bos_id)
    reference = transformers.AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    with torch.no_grad():
        expected = reference(input_ids=src, attention_mask=src_valid.long(), decoder_input_ids=tgt,
                             decoder_attention_mask=tgt_valid.long()).logits   # (B, T, V)
        actual = model(src, tgt)
    torch.testing.assert_close(actual[tgt_valid], expected[tgt_valid], atol=1e-4, rtol=1e-4)
    return reference


@pytest.mark.parametrize("shared, tied", [(False, True), (True, True), (False, False),
                                          (True, False)])
def test_the_paper_model_gives_the_same_logits_in_marian(shared, tied, tokenizers, tmp_path):
    source, target = (tokenizers["word"], tokenizers["word"]) if shared else (
        tokenizers["word"], tokenizers["char"])
    config = qkv.TransformerConfig(vocab_size=source.vocab_size,
                                   tgt_vocab_size=None if shared else target.vocab_size,
                                   share_embeddings=shared, tie_output=tied, **SIZES, **PAPER)
    model = randomize(qkv.Transformer(config))
    folder = to_huggingface(model, tmp_path / "out", tokenizer=source, target_tokenizer=target)
    reference = _logits_agree(model, folder, source, target)
    assert type(reference).__name__ == "MarianMTModel"
    assert reference.config.decoder_start_token_id == target.bos_id
    # Marian's embedding columns are qkv's in the [sin | cos] order of the positions.
    order = sinusoid_order(config.d_model)
    torch.testing.assert_close(reference.get_encoder().embed_tokens.weight,
                               model.src_embedding.token.weight[:, order])
    if not shared:                      # the target tokenizer beside the source one
        hf_target = transformers.AutoTokenizer.from_pretrained(folder / "target_tokenizer")
        assert hf_target(TEXTS[3])["input_ids"] == target.encode(TEXTS[3]) + [target.eos_id]


@pytest.fixture(scope="module")
def marian_folder(tmp_path_factory):
    """A random Marian saved by transformers, with a SentencePiece tokenizer."""
    sentencepiece = pytest.importorskip("sentencepiece")
    path = tmp_path_factory.mktemp("marian")
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXTS), model_prefix=str(path / "spm"), vocab_size=50,
        model_type="unigram", character_coverage=1.0, minloglevel=2)
    for name in ("source.spm", "target.spm"):
        (path / name).write_bytes((path / "spm.model").read_bytes())
    processor = sentencepiece.SentencePieceProcessor(model_file=str(path / "spm.model"))
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())
              if not processor.is_control(i) and not processor.is_unknown(i)]
    vocab = {"</s>": 0, "<unk>": 1, **{p: 2 + i for i, p in enumerate(pieces)}}
    vocab["<pad>"] = len(vocab)
    (path / "vocab.json").write_text(json.dumps(vocab))
    config = transformers.MarianConfig(
        vocab_size=len(vocab), d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_position_embeddings=64, activation_function="swish",
        scale_embedding=True, pad_token_id=vocab["<pad>"], eos_token_id=0,
        decoder_start_token_id=vocab["<pad>"], init_std=0.3)
    model = transformers.MarianMTModel(config).eval()
    with torch.no_grad():
        model.final_logits_bias.normal_(std=0.5)
    model.save_pretrained(path)
    return path


@pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")   # transformers' own
@torch.no_grad()
def test_a_marian_folder_loaded_by_qkv_exports_to_the_same_logits(marian_folder, tmp_path):
    original = transformers.MarianMTModel.from_pretrained(marian_folder).eval()
    model, tokenizer = qkv.load_pretrained(marian_folder)
    folder = to_huggingface(model, tmp_path / "again", tokenizer=tokenizer)
    assert {"source.spm", "target.spm", "vocab.json"} <= {p.name for p in folder.iterdir()}
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    assert type(hf_tokenizer).__name__ == "MarianTokenizer"
    batch = hf_tokenizer(TEXTS[:3], padding=True, return_tensors="pt")
    first = batch["input_ids"][0][batch["attention_mask"][0].bool()]
    assert first.tolist() == tokenizer.encode(TEXTS[0]) + [tokenizer.eos_id]
    tgt = batch["input_ids"][:, :5].clone()
    tgt[:, 0] = tokenizer.bos_id                                        # Marian starts with <pad>
    exported = transformers.MarianMTModel.from_pretrained(folder).eval()
    expected = original(**batch, decoder_input_ids=tgt).logits
    torch.testing.assert_close(exported(**batch, decoder_input_ids=tgt).logits, expected,
                               atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(model.decode(tgt, model.encode(batch["input_ids"],
                               batch["attention_mask"].bool()[:, None, None, :]),
                               batch["attention_mask"].bool()[:, None, None, :]), expected,
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("change, field", [
    (dict(norm_first=True), "norm_first=True"),
    (dict(norm_eps=1e-6), "norm_eps=1e-06"),
    (dict(positions="rotary"), "positions='rotary'"),
    (dict(positions="learned"), "positions='learned'"),                 # trained, not sinusoids
])
def test_what_marian_cannot_express_is_refused_with_nothing_written(change, field, tokenizers,
                                                                    tmp_path):
    config = qkv.TransformerConfig(vocab_size=tokenizers["word"].vocab_size, **SIZES,
                                   **{**PAPER, **change})
    with pytest.raises(ValueError, match=f"cannot export to Marian: {field}; "):
        to_huggingface(qkv.Transformer(config), tmp_path / "out", tokenizer=tokenizers["word"])
    assert list(tmp_path.iterdir()) == []


def test_marian_needs_the_decoder_start_token(tmp_path):
    config = qkv.TransformerConfig(vocab_size=20, **SIZES)
    with pytest.raises(ValueError, match="decoder_start_token_id"):
        to_huggingface(qkv.Transformer(config), tmp_path / "out")
