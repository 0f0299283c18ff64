"""LanguageModel → GPT2LMHeadModel: transformers gives qkv's logits on a padded batch (sinusoidal
positions, a √d_model scale on untied embeddings and missing biases are expressed too); a GPT-2
folder loaded by qkv and exported again gives the original's logits and token ids; post-norm,
rotary positions and a scale on tied embeddings are refused."""

import pytest
import torch

import qkv
from qkv.export import to_huggingface

from .conftest import SIZES, TEXTS, padded, randomize

transformers = pytest.importorskip("transformers")

GPT2_SHAPED = dict(positions="learned", activation="gelu_tanh", norm_first=True,
                   scale_embeddings=False, tie_output=True)
OTHER = dict(positions="sinusoidal", activation="relu", norm_first=True, scale_embeddings=True,
             tie_output=False, bias=False, norm_eps=1e-6)


@pytest.mark.parametrize("shape", [GPT2_SHAPED, OTHER], ids=["gpt2-shaped", "scaled-untied"])
@torch.no_grad()
def test_language_model_logits_equal_gpt2(shape, tokenizers, tmp_path):
    tokenizer = tokenizers["char"]
    config = qkv.LanguageModelConfig(vocab_size=tokenizer.vocab_size, pad_id=tokenizer.pad_id,
                                     **SIZES, **shape)
    model = randomize(qkv.LanguageModel(config))
    folder = to_huggingface(model, tmp_path / "out", tokenizer=tokenizer)
    reference, info = transformers.AutoModelForCausalLM.from_pretrained(
        folder, output_loading_info=True)
    assert type(reference).__name__ == "GPT2LMHeadModel"
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert (reference.config.bos_token_id, reference.config.pad_token_id) == (
        tokenizer.bos_id, tokenizer.pad_id)
    ids, valid = padded([tokenizer.encode(text) for text in TEXTS[:3]], tokenizer.pad_id,
                        first=tokenizer.bos_id)
    logits = reference.eval()(ids, attention_mask=valid.long()).logits       # (B, T, V)
    torch.testing.assert_close(model(ids)[valid], logits[valid], atol=1e-4, rtol=1e-4)
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(folder)       # <bos> x, as qkv
    assert hf_tokenizer(TEXTS[0])["input_ids"] == tokenizer.prompt_ids(TEXTS[0])


@torch.no_grad()
def test_a_gpt2_folder_loaded_by_qkv_exports_to_the_same_logits(tmp_path):
    from tokenizers import ByteLevelBPETokenizer

    source = tmp_path / "gpt2"
    source.mkdir()
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TEXTS, vocab_size=300, min_frequency=1,
                            special_tokens=["<|endoftext|>"], show_progress=False)
    bpe.save(str(source / "tokenizer.json"))
    end = bpe.token_to_id("<|endoftext|>")
    original = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=bpe.get_vocab_size(), n_positions=64, n_embd=32, n_layer=2, n_head=4,
        bos_token_id=end, eos_token_id=end)).eval()
    original.save_pretrained(source)
    model, tokenizer = qkv.load_pretrained(source)

    folder = to_huggingface(model, tmp_path / "again", tokenizer=tokenizer)
    exported = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = transformers.AutoTokenizer.from_pretrained(folder)(
        TEXTS[1], return_tensors="pt")["input_ids"]
    assert ids[0].tolist() == bpe.encode(TEXTS[1]).ids
    torch.testing.assert_close(exported(ids).logits, original(ids).logits, atol=1e-4, rtol=1e-4)
    assert exported.config.eos_token_id == end


@pytest.mark.parametrize("change, field", [
    (dict(norm_first=False), "norm_first=False"),
    (dict(positions="rotary"), "positions='rotary'"),
    (dict(scale_embeddings=True), "scale_embeddings=True"),             # with tied output
])
def test_what_gpt2_cannot_express_is_refused_with_nothing_written(change, field, tmp_path):
    config = qkv.LanguageModelConfig(vocab_size=20, **SIZES, **{**GPT2_SHAPED, **change})
    with pytest.raises(ValueError, match=f"cannot export to GPT-2: {field}; "):
        to_huggingface(qkv.LanguageModel(config), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
