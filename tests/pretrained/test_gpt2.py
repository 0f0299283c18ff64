"""GPT-2 family: a small random GPT-2 saved by transformers gives the same logits and the same
greedy generation in qkv; its byte-level BPE tokenizer gives the same ids."""

import pytest
import torch

import qkv
from qkv.pretrained import load_pretrained

transformers = pytest.importorskip("transformers")

TEXT = ["The quick brown fox jumps over the lazy dog.", "Attention is all you need!",
        "I love my dog, and my dog loves me.", "Transformers read text as tokens."] * 5


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny GPT-2 (random weights) and a tiny byte-level BPE tokenizer, saved as HF does."""
    from tokenizers import ByteLevelBPETokenizer

    path = tmp_path_factory.mktemp("gpt2")
    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(TEXT, vocab_size=300, min_frequency=1,
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    tokenizer.save(str(path / "tokenizer.json"))
    end = tokenizer.token_to_id("<|endoftext|>")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=tokenizer.get_vocab_size(), n_positions=64,
                                     n_embd=32, n_layer=2, n_head=4, bos_token_id=end,
                                     eos_token_id=end,
                                     initializer_range=0.3)  # varied (not repetitive) greedy text
    transformers.GPT2LMHeadModel(config).eval().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def reference(folder):
    return transformers.GPT2LMHeadModel.from_pretrained(folder).eval()


def test_gpt2_loads_as_language_model(folder):
    model, tokenizer = load_pretrained(folder)
    assert isinstance(model, qkv.LanguageModel) and not model.training
    config = model.config
    assert (config.pad_id, config.positions, config.activation, config.norm_first,
            config.scale_embeddings, config.tie_output) == (
        None, "learned", "gelu_tanh", True, False, True)
    assert model.output_layer.weight is model.embedding.token.weight
    assert tokenizer.bos_id == tokenizer.eos_id == tokenizer.token_to_id("<|endoftext|>")
    assert tokenizer.pad_id is None


def test_byte_level_bpe_ids_equal_the_reference_tokenizer(folder):
    _, tokenizer = load_pretrained(folder)
    reference = transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    for text in ["The lazy fox loves attention.", "naïve café — ünïcödé", " two  spaces"]:
        ids = tokenizer.encode(text)
        assert ids == reference(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text


@torch.no_grad()
def test_logits_equal_transformers(folder, reference):
    model, _ = load_pretrained(folder)
    ids = torch.randint(0, model.config.vocab_size, (3, 20))
    assert (model(ids) - reference(ids).logits).abs().max() < 1e-4


@torch.no_grad()
def test_greedy_generation_with_kv_cache_equals_transformers(folder, reference):
    model, tokenizer = load_pretrained(folder)
    prompt = torch.tensor([tokenizer.encode("The quick brown fox")])
    new_tokens = 30
    expected = reference.generate(prompt, max_new_tokens=new_tokens, do_sample=False,
                                  num_beams=1, eos_token_id=None,
                                  pad_token_id=tokenizer.eos_id)
    cache = qkv.KVCache()
    ids, step_input = prompt, prompt
    for _ in range(new_tokens):
        next_id = model(step_input, cache=cache)[:, -1].argmax(dim=-1, keepdim=True)  # (B, 1)
        ids, step_input = torch.cat([ids, next_id], dim=1), next_id
    assert ids.tolist() == expected.tolist()
    assert len(set(ids[0, prompt.shape[1]:].tolist())) > 5              # a non-trivial sequence
    assert cache.length == prompt.shape[1] + new_tokens - 1


@torch.no_grad()
def test_qkv_generate_on_the_folder_equals_transformers_greedy(folder, reference, capsys):
    """``qkv generate FOLDER PROMPT…``: prompts of different lengths, one output line each."""
    from qkv.cli.main import main

    _, tokenizer = load_pretrained(folder)
    prompts = ["The quick brown fox", "Attention is"]
    expected = []
    for prompt in prompts:
        ids = torch.tensor([tokenizer.encode(prompt)])
        out = reference.generate(ids, max_new_tokens=12, do_sample=False, num_beams=1,
                                 pad_token_id=tokenizer.eos_id)
        expected.append(prompt + tokenizer.decode(out[0, ids.shape[1]:].tolist()))
    assert main(["generate", str(folder), *prompts, "--max-new-tokens", "12"]) == 0
    assert capsys.readouterr().out.splitlines() == expected


def test_qkv_generate_quantize_int8_runs_on_the_folder(folder, capsys):
    """``qkv generate FOLDER PROMPT --quantize int8``: int8 weights, one line per prompt."""
    from qkv.cli.main import main

    assert main(["generate", str(folder), "The quick brown fox", "--max-new-tokens", "8",
                 "--quantize", "int8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("The quick brown fox")
    with pytest.raises(SystemExit):
        main(["generate", str(folder), "x", "--quantize", "int4"])
