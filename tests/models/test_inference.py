"""Inference fast paths (qkv.models.inference) equal the modules: decoding gives the same logits
and tokens as the module path with a KV cache, the unpadded encoder the same hidden states at the
real tokens; where they do not apply (training, autograd, a recorder, a hook) the callers fall
back to the modules. And the preallocated AttentionCache writes in place without changing what
it handed out before."""

import pytest
import torch

import qkv
from qkv.attention.cache import AttentionCache
from qkv.decoding import search
from qkv.models import inference
from qkv.models.inference import (IncrementalDecoder, decoding_support, encoding_support,
                                  unpadded_hidden_states)

V = 40
TINY = dict(d_model=16, num_heads=4, num_layers=2, d_ff=32, max_len=64, dropout=0.0)


def language_model(**changes):
    torch.manual_seed(0)
    return qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=V, **{**TINY, **changes})).eval()


def old_path(model, prompts, strategy=qkv.Greedy(), max_new_tokens=12, eos_id=None):
    """``qkv.generate`` on the modules with a KV cache (the fast path switched off)."""
    original = search._LanguageModelSteps.__init__

    def modules_only(self, model, use_cache, capacity=0, fast=True):
        original(self, model, use_cache, capacity, fast=False)

    search._LanguageModelSteps.__init__ = modules_only
    try:
        return qkv.generate(model, prompts, strategy, eos_id=eos_id,
                            max_new_tokens=max_new_tokens)
    finally:
        search._LanguageModelSteps.__init__ = original


@pytest.mark.parametrize("positions", ["sinusoidal", "learned", "rotary"])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("pad_id", [None, 0])
def test_incremental_decoder_logits_equal_the_modules_with_a_cache(positions, norm_first, pad_id):
    model = language_model(positions=positions, norm_first=norm_first, pad_id=pad_id,
                           activation="gelu_tanh" if norm_first else "relu")
    tokens = torch.randint(1, V, (3, 9))
    if pad_id is not None:
        tokens[1, :3] = pad_id                                          # a left-padded row
    decoder, cache = IncrementalDecoder(model, capacity=4), qkv.KVCache()   # grows past 4
    with torch.no_grad():
        for start, end in ((0, 5), (5, 6), (6, 7), (7, 9)):             # prompt, steps, 2 more
            positions_ = torch.arange(start, end)
            fast = decoder(tokens[:, start:end], positions_)            # (B, V)
            modules = model(tokens[:, start:end], positions=positions_, cache=cache)[:, -1]
            torch.testing.assert_close(fast, modules, atol=1e-5, rtol=1e-5)


def test_grouped_query_attention_decodes_like_the_modules():
    model = language_model(positions="rotary", norm_first=True)
    for layer in model.layers:                                          # 4 query heads, 2 kv
        old = layer.self_attention
        new = qkv.MultiHeadAttention(16, 4, num_kv_heads=2, rotary=old.rotary)
        layer.self_attention = new.eval()
    prompts = [[3, 4, 5, 6], [7, 8, 9, 10]]
    assert decoding_support(model) is not None                          # outside no_grad
    assert qkv.generate(model, prompts, max_new_tokens=10, eos_id=None) == old_path(
        model, prompts, max_new_tokens=10)


@pytest.mark.parametrize("strategy", [
    qkv.Greedy(),
    qkv.Greedy(no_repeat_ngram_size=2, repetition_penalty=1.3, min_length=3),
    qkv.BeamSearch(size=3, num_return=2),
    qkv.Sampling(seed=3, top_k=5, num_return=2),
], ids=["greedy", "greedy-controls", "beam", "sampling"])
@pytest.mark.parametrize("pad_id", [None, 0])
def test_generate_gives_the_tokens_of_the_module_path(strategy, pad_id):
    model = language_model(pad_id=pad_id, norm_first=True)
    prompts = [[5, 6, 7], [8, 9, 10]] if pad_id is None else [[5, 6, 7], [8]]
    fast = qkv.generate(model, prompts, strategy, eos_id=2, max_new_tokens=12)
    assert fast == old_path(model, prompts, strategy, eos_id=2)


def test_generate_takes_the_fast_path_only_where_it_applies():
    model = language_model()
    with torch.no_grad():
        assert decoding_support(model) is None
        steps = search._LanguageModelSteps(model, use_cache=True)
        assert steps.decoder is not None
        assert search._LanguageModelSteps(model, use_cache=False).decoder is None
        assert "training" in decoding_support(model.train())
        model.eval()
        handle = model.layers[0].feed_forward.register_forward_hook(lambda *_: None)
        assert "hook" in decoding_support(model)
        handle.remove()
    assert "autograd" in decoding_support(model)
    with torch.no_grad(), qkv.trace(model):
        assert "recorded" in decoding_support(model)
    assert "not a qkv.LanguageModel" in decoding_support(torch.nn.Linear(2, 2))


def test_a_traced_generation_still_records_every_step():
    model = language_model()
    with qkv.trace(model) as recorded:
        out = qkv.generate(model, [[3, 4, 5]], eos_id=None, max_new_tokens=4)
    assert out == old_path(model, [[3, 4, 5]], max_new_tokens=4)
    records = recorded.records("layers.0.self_attention")
    assert [r.query_positions.tolist() for r in records] == [[0, 1, 2], [3], [4], [5]]


def test_the_fallback_linear_gives_the_same_logits(monkeypatch):
    model = language_model(norm_first=True, activation="gelu")
    tokens = torch.randint(1, V, (2, 6))
    with torch.no_grad():
        fast = IncrementalDecoder(model)(tokens, torch.arange(6))
        monkeypatch.setattr(inference, "onednn_linear_available", lambda post_op="none": False)
        plain = IncrementalDecoder(model)(tokens, torch.arange(6))
    assert not IncrementalDecoder(model).head.onednn
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plain, model(tokens)[:, -1], atol=1e-5, rtol=1e-5)


# -- the unpadded encoder ---------------------------------------------------------------------------

@pytest.mark.parametrize("positions", ["learned", "rotary"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_unpadded_hidden_states_equal_the_modules_at_real_tokens(positions, norm_first):
    torch.manual_seed(0)
    model = qkv.EncoderModel(qkv.EncoderModelConfig(
        vocab_size=V, positions=positions, norm_first=norm_first, pad_id=0,
        type_vocab_size=2, embedding_norm=True, activation="gelu", **TINY)).eval()
    ids = torch.randint(1, V, (4, 10))
    valid = torch.ones(4, 10, dtype=torch.bool)
    valid[0, 7:] = valid[1, 2:] = False                                 # right padding
    valid[2, :3] = False                                                # padding anywhere
    valid[3] = False                                                    # no token at all
    ids[~valid] = 0
    types = torch.randint(0, 2, (4, 10))
    with torch.no_grad():
        assert encoding_support(model) is None
        fast = unpadded_hidden_states(model, ids, valid, types)
        modules = model(ids, mask=valid[:, None, None, :], token_types=types)
    torch.testing.assert_close(fast[valid], modules[valid], atol=1e-5, rtol=1e-5)
    assert not fast[~valid].any()                                       # zeros at padding


def test_unpadded_hidden_states_fall_back_to_the_modules():
    model = qkv.EncoderModel(qkv.EncoderModelConfig(vocab_size=V, pad_id=0, **TINY)).eval()
    ids = torch.tensor([[5, 6, 7, 0]])
    valid = ids != 0
    expected = model(ids)[valid]
    assert "autograd" in encoding_support(model)                        # grad enabled here
    model.train()                                                       # dropout 0: same output
    assert "training" in encoding_support(model)
    outside = unpadded_hidden_states(model, ids, valid)                 # on the modules
    torch.testing.assert_close(outside[valid], expected)
    assert not outside[0, 3].any()
    with pytest.raises(ValueError, match="valid must be a boolean tensor"):
        unpadded_hidden_states(model, ids, valid.long())


def test_embed_sentences_skips_padding_and_still_equals_the_modules():
    from qkv.pretrained.sentence_embeddings import mean_pool

    torch.manual_seed(0)
    model = qkv.EncoderModel(qkv.EncoderModelConfig(vocab_size=V, pad_id=0, **TINY)).eval()
    ids = torch.tensor([[1, 5, 6, 7, 2], [1, 8, 2, 0, 0]])
    valid = ids != 0
    with torch.no_grad():
        fast = mean_pool(unpadded_hidden_states(model, ids, valid), valid)
        modules = mean_pool(model(ids), valid)
    torch.testing.assert_close(fast, modules, atol=1e-5, rtol=1e-5)


# -- the preallocated attention cache --------------------------------------------------------------

def test_attention_cache_writes_in_place_and_keeps_earlier_views():
    cache = AttentionCache(capacity=8)
    first = torch.randn(2, 3, 4, 5)
    key, value = cache.update(first, first + 1)
    storage = key.data_ptr()
    later = torch.randn(2, 3, 1, 5)
    key2, _ = cache.update(later, later)
    assert key2.data_ptr() == storage                                   # no copy of the cache
    torch.testing.assert_close(key, first)                              # untouched
    torch.testing.assert_close(key2, torch.cat([first, later], dim=2))
    for _ in range(5):                                                  # past the capacity
        cache.update(later, later)
    assert cache.length == 10 and cache.capacity >= 10
    torch.testing.assert_close(cache.key[:, :, :4], first)


def test_attention_cache_concatenates_while_autograd_records():
    attention = qkv.MultiHeadAttention(16, 4)
    cache = AttentionCache()
    x = torch.randn(1, 3, 16, requires_grad=True)
    outputs = [attention(x[:, t:t + 1], causal=True, cache=cache)[0] for t in range(3)]
    torch.cat(outputs, dim=1).sum().backward()                          # no in-place error
    full = attention(x, causal=True)[0]
    torch.testing.assert_close(torch.cat(outputs, dim=1), full, atol=1e-5, rtol=1e-5)
    assert x.grad is not None


def test_a_failed_step_leaves_the_cache_as_it_was():
    model = language_model()
    cache = qkv.KVCache()
    with torch.no_grad():
        model(torch.tensor([[1, 2, 3]]), cache=cache)
        before = cache.layers[0][0].key.clone()
        with pytest.raises(ValueError):
            model(torch.tensor([[V + 5]]), cache=cache)                 # an id out of range
        assert cache.length == 3 and torch.equal(cache.layers[0][0].key, before)
        steps = model(torch.tensor([[4]]), cache=cache)[:, -1]
    torch.testing.assert_close(steps, model(torch.tensor([[1, 2, 3, 4]]))[:, -1],
                               atol=1e-5, rtol=1e-5)
