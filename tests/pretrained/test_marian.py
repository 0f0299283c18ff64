"""Marian family: a small random Marian saved by transformers gives the same logits (padded
source batch) and the same greedy translations in qkv, starting from the pad token as Marian
does; the SentencePiece tokenizer gives the ids of transformers' MarianTokenizer."""

import json

import pytest
import torch

import qkv
from qkv.pretrained import MarianTokenizer, load_pretrained
from qkv.pretrained.marian import marian_positions_table

transformers = pytest.importorskip("transformers")
sentencepiece = pytest.importorskip("sentencepiece")

TEXT = ["the cat sat on the mat", "the dog sat on the log", "a bird sang in the tree",
        "we love our little dog", "the fox jumps over the lazy dog",
        "attention is all you need", "translation models read and write"] * 4


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny Marian: SentencePiece source/target models, vocab.json, random weights."""
    path = tmp_path_factory.mktemp("marian")
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXT), model_prefix=str(path / "spm"), vocab_size=40,
        model_type="unigram", character_coverage=1.0, minloglevel=2)
    spm = (path / "spm.model").read_bytes()
    (path / "source.spm").write_bytes(spm)
    (path / "target.spm").write_bytes(spm)
    processor = sentencepiece.SentencePieceProcessor(model_file=str(path / "spm.model"))
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())
              if not processor.is_control(i) and not processor.is_unknown(i)]
    vocab = {"</s>": 0, "<unk>": 1, ">>fr<<": 2, **{p: 3 + i for i, p in enumerate(pieces)}}
    vocab["<pad>"] = len(vocab)
    (path / "vocab.json").write_text(json.dumps(vocab))
    pad = vocab["<pad>"]
    torch.manual_seed(0)
    config = transformers.MarianConfig(
        vocab_size=len(vocab), d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_position_embeddings=64, activation_function="swish",
        scale_embedding=True, pad_token_id=pad, decoder_start_token_id=pad, eos_token_id=0,
        forced_eos_token_id=None, init_std=0.5)
    model = transformers.MarianMTModel(config).eval()
    with torch.no_grad():
        model.final_logits_bias.normal_(std=0.5)                        # make the bias matter
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def reference(folder):
    return transformers.MarianMTModel.from_pretrained(folder).eval()


@pytest.fixture(scope="module")
def loaded(folder):
    return load_pretrained(folder)


@pytest.fixture(scope="module")
def batch(loaded):
    """A padded source batch (ids ending with </s>) and its mask (True = real token)."""
    _, tokenizer = loaded
    rows = [tokenizer.encode(t) + [tokenizer.eos_id]
            for t in ["the cat sat on the log", "we love attention"]]
    longest = max(map(len, rows))
    src = torch.tensor([row + [tokenizer.pad_id] * (longest - len(row)) for row in rows])
    return src, src != tokenizer.pad_id


def test_marian_loads_as_transformer(loaded):
    model, tokenizer = loaded
    assert isinstance(model, qkv.Transformer) and not model.training
    config = model.config
    assert config.pad_id is None                                        # see qkv.pretrained.marian
    assert (config.positions, config.activation, config.scale_embeddings,
            config.share_embeddings) == ("learned", "silu", True, True)
    assert model.output_layer.weight is model.src_embedding.token.weight
    assert tokenizer.bos_id == tokenizer.pad_id == tokenizer.vocab["<pad>"]
    assert (tokenizer.eos_id, tokenizer.unk_id) == (0, 1)


def test_positions_are_marian_sin_cos_halves(loaded, reference):
    model, _ = loaded
    expected = reference.model.encoder.embed_positions.weight
    table = model.src_embedding.positions.embedding.weight
    assert torch.allclose(table, expected, atol=1e-6)
    assert torch.allclose(marian_positions_table(64, 32), expected, atol=1e-6)
    assert not table.requires_grad


@torch.no_grad()
def test_logits_equal_transformers_on_a_padded_batch(loaded, reference, batch):
    model, tokenizer = loaded
    src, valid = batch
    assert not valid.all()
    tgt = torch.tensor([[tokenizer.bos_id, 5, 9, 12, 7], [tokenizer.bos_id, 6, 6, 20, 0]])
    expected = reference(input_ids=src, attention_mask=valid.long(), decoder_input_ids=tgt).logits
    src_mask = qkv.padding_mask(src, tokenizer.pad_id)                  # (B, 1, 1, S)
    memory = model.encode(src, src_mask)
    logits = model.decode(tgt, memory, src_mask)
    assert (logits - expected).abs().max() < 1e-4
    # The start token is the pad token; qkv must not mask it: the first step is exact too.
    first = model.decode(tgt[:, :1], memory, src_mask)
    assert (first - expected[:, :1]).abs().max() < 1e-4
    # Step by step with a KV cache: the same logits.
    cache = qkv.KVCache()
    steps = [model.decode(tgt[:, t:t + 1], memory, src_mask, cache=cache) for t in range(5)]
    assert (torch.cat(steps, dim=1) - expected).abs().max() < 1e-4


@torch.no_grad()
def test_greedy_translation_with_kv_cache_equals_transformers(loaded, reference, batch):
    model, tokenizer = loaded
    src, valid = batch
    new_tokens = 15
    expected = reference.generate(input_ids=src, attention_mask=valid.long(), num_beams=1,
                                  do_sample=False, max_new_tokens=new_tokens)
    src_mask = qkv.padding_mask(src, tokenizer.pad_id)
    memory = model.encode(src, src_mask)
    cache = qkv.KVCache()
    tgt = torch.full((src.shape[0], 1), tokenizer.bos_id)
    step_input, finished = tgt, torch.zeros(src.shape[0], dtype=torch.bool)
    for _ in range(new_tokens):
        next_id = model.decode(step_input, memory, src_mask, cache=cache)[:, -1].argmax(dim=-1)
        next_id = torch.where(finished, tokenizer.pad_id, next_id)     # (B,)
        tgt, step_input = torch.cat([tgt, next_id[:, None]], dim=1), next_id[:, None]
        finished |= next_id == tokenizer.eos_id
        if finished.all():
            break
    assert tgt.tolist() == expected.tolist()


@pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")
def test_sentencepiece_ids_equal_transformers_marian_tokenizer(folder, loaded):
    _, tokenizer = loaded
    reference = transformers.MarianTokenizer(str(folder / "source.spm"),
                                             str(folder / "target.spm"),
                                             str(folder / "vocab.json"))
    for text in ["the cat sat on the mat", ">>fr<< we love our dog", "unseen words: xyz!"]:
        ids = tokenizer.encode(text)
        assert ids + [tokenizer.eos_id] == reference(text)["input_ids"]
    ids = tokenizer.encode("the dog sat on the log")
    assert tokenizer.decode([tokenizer.bos_id, *ids, tokenizer.eos_id]) == "the dog sat on the log"
    assert tokenizer.decode(ids) == reference.decode(ids, skip_special_tokens=True)


def test_marian_tokenizer_round_trips_through_json(loaded):
    from qkv.tokenizers.base import tokenizer_from_dict

    _, tokenizer = loaded
    rebuilt = tokenizer_from_dict(json.loads(json.dumps(tokenizer.to_dict())))
    assert isinstance(rebuilt, MarianTokenizer)
    assert rebuilt.encode("the fox") == tokenizer.encode("the fox")
    assert (rebuilt.bos_id, rebuilt.eos_id, rebuilt.pad_id) == (
        tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id)


@torch.no_grad()
def test_translate_texts_and_qkv_translate_equal_transformers_greedy(folder, loaded, reference,
                                                                    capsys):
    """Text in, text out, on a padded batch: the source mask comes from the tokenizer's pad id."""
    from qkv.cli.main import main
    from qkv.decoding.text import translate_texts

    model, tokenizer = loaded
    texts = ["the cat sat on the log", "we love attention", "a bird"]
    rows = [tokenizer.encode(t) + [tokenizer.eos_id] for t in texts]
    longest = max(map(len, rows))
    src = torch.tensor([row + [tokenizer.pad_id] * (longest - len(row)) for row in rows])
    generated = reference.generate(input_ids=src, attention_mask=(src != tokenizer.pad_id).long(),
                                   num_beams=1, do_sample=False, max_new_tokens=12)
    expected = [tokenizer.decode(ids) for ids in generated.tolist()]
    assert translate_texts(model, tokenizer, tokenizer, texts, max_len=12) == expected
    assert main(["translate", str(folder), *texts, "--max-len", "12"]) == 0
    assert capsys.readouterr().out.splitlines() == expected
