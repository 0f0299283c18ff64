"""KV cache: one token at a time gives the logits of a full forward; encoder K/V computed once."""

import pytest
import torch

import qkv
from qkv import KVCache, LanguageModel, LanguageModelConfig, Transformer, TransformerConfig

TINY = dict(d_model=16, num_heads=2, num_layers=2, d_ff=32, max_len=64, dropout=0.0)
V = 30


def step_by_step(run, tokens, cache, first=1):
    """Feed ``tokens[:, :first]`` then one token per call; concatenate the logits."""
    outputs = [run(tokens[:, :first], cache)]
    outputs += [run(tokens[:, t:t + 1], cache) for t in range(first, tokens.shape[1])]
    return torch.cat(outputs, dim=1)


@pytest.mark.parametrize("positions", ["sinusoidal", "learned", "rotary"])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("first", [1, 4])
def test_language_model_cached_steps_equal_full_forward(positions, norm_first, first):
    model = LanguageModel(LanguageModelConfig(vocab_size=V, positions=positions,
                                              norm_first=norm_first, **TINY)).eval()
    tokens = torch.randint(1, V, (3, 9))
    tokens[2, 6:] = 0                                                   # a right-padded row
    cache = KVCache()
    cached = step_by_step(lambda x, c: model(x, cache=c), tokens, cache, first)
    torch.testing.assert_close(cached, model(tokens), atol=1e-5, rtol=1e-5)
    assert cache.length == 9 and cache.mask.shape == (3, 9)
    assert cache.layers[0][0].key.shape == (3, 2, 9, 8)                 # (B, H, S, D)
    assert cache.layers[0][1].key is None                               # no cross-attention


@pytest.mark.parametrize("positions", ["sinusoidal", "rotary"])
def test_transformer_cached_decoding_equals_full_decode(positions):
    model = Transformer(TransformerConfig(vocab_size=V, positions=positions, **TINY)).eval()
    src = torch.randint(1, V, (2, 7))
    src[1, 4:] = 0                                                      # source padding
    tgt = torch.randint(1, V, (2, 6))
    src_mask = model.source_mask(src)
    memory = model.encode(src, src_mask)
    cache = KVCache()
    cached = step_by_step(lambda x, c: model.decode(x, memory, src_mask, cache=c), tgt, cache)
    torch.testing.assert_close(cached, model(src, tgt), atol=1e-5, rtol=1e-5)


def test_cross_attention_projects_the_encoder_output_once_per_sequence():
    model = Transformer(TransformerConfig(vocab_size=V, **TINY)).eval()
    calls = []
    for layer in model.decoder.layers:
        for projection in (layer.cross_attention.key_proj, layer.cross_attention.value_proj):
            projection.register_forward_hook(lambda *_: calls.append(1))
    src, tgt = torch.randint(1, V, (2, 7)), torch.randint(1, V, (2, 5))
    src_mask = model.source_mask(src)
    memory = model.encode(src, src_mask)
    step_by_step(lambda x, c: model.decode(x, memory, src_mask, cache=c), tgt, KVCache())
    assert len(calls) == 2 * len(model.decoder.layers)                 # K and V, once per layer


def test_reorder_keeps_the_chosen_rows_as_beam_search_needs():
    model = LanguageModel(LanguageModelConfig(vocab_size=V, **TINY)).eval()
    tokens = torch.randint(1, V, (3, 6))
    tokens[2, 1] = 0                                                    # padding to carry along
    cache = KVCache()
    model(tokens[:, :4], cache=cache)
    order = torch.tensor([2, 2, 0])
    cache.reorder(order)
    last = model(tokens[order, 4:], cache=cache)
    torch.testing.assert_close(last, model(tokens[order])[:, 4:], atol=1e-5, rtol=1e-5)


def test_grouped_query_attention_caches_the_shared_heads_only():
    attention = qkv.MultiHeadAttention(16, num_heads=4, num_kv_heads=2).eval()
    x = torch.randn(2, 5, 16)
    cache = qkv.attention.cache.AttentionCache()
    steps = [attention(x[:, t:t + 1], causal=True, cache=cache)[0] for t in range(5)]
    torch.testing.assert_close(torch.cat(steps, 1), attention(x, causal=True)[0], atol=1e-5,
                               rtol=1e-5)
    assert cache.key.shape == (2, 2, 5, 4)                              # (B, Hkv, S, D)


def test_cached_language_model_stops_at_max_len():
    model = LanguageModel(LanguageModelConfig(vocab_size=V, **{**TINY, "max_len": 4}))
    cache = KVCache()
    model(torch.ones(1, 4, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.ones(1, 1, dtype=torch.long), cache=cache)
    assert cache.length == 4 and cache.mask.shape == (1, 4)           # the cache is unharmed


def test_a_failed_step_leaves_the_cache_as_it_was():
    model = Transformer(TransformerConfig(vocab_size=V, **TINY)).eval()
    src, tgt = torch.randint(1, V, (2, 7)), torch.randint(1, V, (2, 4))
    src_mask = model.source_mask(src)
    memory = model.encode(src, src_mask)
    cache = KVCache()
    model.decode(tgt[:, :2], memory, src_mask, cache=cache)
    with pytest.raises(ValueError, match="batch size"):
        model.decode(tgt[:, 2:3], memory[:1], src_mask, cache=cache)    # fails inside a layer
    assert cache.length == 2 and cache.mask.shape == (2, 2)
    assert all(self_cache.length == 2 for self_cache, _ in cache.layers)
    rest = [model.decode(tgt[:, t:t + 1], memory, src_mask, cache=cache) for t in (2, 3)]
    torch.testing.assert_close(torch.cat(rest, 1), model(src, tgt)[:, 2:], atol=1e-5, rtol=1e-5)


def test_a_cache_refuses_another_batch_size_by_name():
    model = LanguageModel(LanguageModelConfig(vocab_size=V, **TINY))
    cache = KVCache()
    model(torch.ones(2, 3, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="holds 2 sequences but this call has batch size 3"):
        model(torch.ones(3, 1, dtype=torch.long), cache=cache)
    assert cache.length == 3


def test_attention_refuses_the_wrong_kind_of_cache():
    attention = qkv.MultiHeadAttention(16, 2)
    x = torch.randn(1, 2, 16)
    with pytest.raises(ValueError, match=r"self-attention needs a growing cache"):
        attention(x, cache=qkv.attention.cache.AttentionCache(static=True))
    with pytest.raises(ValueError, match=r"static=False for cross-attention"):
        attention(x, torch.randn(1, 4, 16), cache=qkv.attention.cache.AttentionCache())


def test_left_padded_prompts_decode_like_unpadded_ones_given_positions():
    model = LanguageModel(LanguageModelConfig(vocab_size=V, **TINY)).eval()
    prompt = torch.tensor([[0, 0, 5, 6, 7]])                          # left-padded
    cache = KVCache()
    first = model(prompt, positions=torch.tensor([[0, 0, 0, 1, 2]]), cache=cache)
    step = model(torch.tensor([[8]]), positions=torch.tensor([[3]]), cache=cache)
    expected = model(torch.tensor([[5, 6, 7, 8]]))
    torch.testing.assert_close(first[:, 2:], expected[:, :3], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(step, expected[:, 3:], atol=1e-5, rtol=1e-5)
