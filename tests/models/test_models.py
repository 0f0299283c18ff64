"""The three model families: shapes, masks, causality, padding, tying, and every option trains."""

import itertools
import math

import pytest
import torch

import qkv
from qkv import (
    EncoderModel,
    EncoderModelConfig,
    LanguageModel,
    LanguageModelConfig,
    Transformer,
    TransformerConfig,
)

TINY = dict(d_model=16, num_heads=2, num_layers=2, d_ff=32, max_len=64)
V, PAD = 30, 0


def tiny(config_type, **changes):
    return config_type(vocab_size=V, **{**TINY, "dropout": 0.0, **changes})


def ids(B, T, generator_seed=1):
    generator = torch.Generator().manual_seed(generator_seed)
    return torch.randint(1, V, (B, T), generator=generator)               # never the pad id


# --- shapes and structure ---------------------------------------------------------------------

def test_transformer_shapes_and_paper_structure():
    model = Transformer(tiny(TransformerConfig, tgt_vocab_size=25))
    src, tgt = ids(2, 7), ids(2, 5) % 25
    assert model(src, tgt).shape == (2, 5, 25)
    memory = model.encode(src)
    assert memory.shape == (2, 7, 16)
    assert model.decode(tgt, memory, model.source_mask(src)).shape == (2, 5, 25)
    names = {name for name, module in model.named_modules()
             if isinstance(module, qkv.MultiHeadAttention)}
    assert {"encoder.layers.0.self_attention", "decoder.layers.1.self_attention",
            "decoder.layers.1.cross_attention"} <= names and len(names) == 6


def test_language_model_and_encoder_model_shapes_and_names():
    lm = LanguageModel(tiny(LanguageModelConfig))
    assert lm(ids(3, 6)).shape == (3, 6, V)
    assert all(layer.cross_attention is None for layer in lm.layers)
    encoder = EncoderModel(tiny(EncoderModelConfig))
    assert encoder(ids(3, 6)).shape == (3, 6, 16)
    for model in (lm, encoder):
        names = [n for n, m in model.named_modules() if isinstance(m, qkv.MultiHeadAttention)]
        assert names == ["layers.0.self_attention", "layers.1.self_attention"]


def test_embeddings_are_scaled_by_sqrt_d_model_and_tied():
    model = Transformer(tiny(TransformerConfig, share_embeddings=True, positions="rotary"))
    assert model.src_embedding.token is model.tgt_embedding.token
    assert model.output_layer.weight is model.tgt_embedding.token.weight
    tokens = ids(1, 4)
    expected = model.src_embedding.token.weight[tokens] * math.sqrt(16)
    torch.testing.assert_close(model.src_embedding(tokens, torch.arange(4)), expected)
    untied = Transformer(tiny(TransformerConfig, tie_output=False))
    assert untied.src_embedding.token is not untied.tgt_embedding.token
    assert untied.output_layer.weight is not untied.tgt_embedding.token.weight


def test_pre_norm_models_end_each_stack_with_a_layer_norm():
    post, pre = (Transformer(tiny(TransformerConfig, norm_first=flag)) for flag in (False, True))
    assert post.encoder.norm is None and post.decoder.norm is None
    assert isinstance(pre.encoder.norm, torch.nn.LayerNorm)
    assert isinstance(pre.decoder.norm, torch.nn.LayerNorm)
    assert isinstance(pre.decoder.layers[0].feed_forward_residual, qkv.PreNorm)


# --- masks: the future and padding cannot leak -------------------------------------------------

@pytest.mark.parametrize("positions", ["sinusoidal", "learned", "rotary"])
def test_language_model_position_cannot_influence_earlier_positions(positions):
    model = LanguageModel(tiny(LanguageModelConfig, positions=positions)).eval()
    tokens = ids(2, 8)
    changed = tokens.clone()
    changed[:, 5] = tokens[:, 5] % (V - 1) + 1                         # another non-pad id
    before, after = model(tokens), model(changed)
    torch.testing.assert_close(before[:, :5], after[:, :5], atol=1e-6, rtol=0)
    assert not torch.allclose(before[:, 5:], after[:, 5:])


def test_decoder_gradient_of_an_output_reaches_no_later_input():
    model = Transformer(tiny(TransformerConfig)).eval()
    src, tgt = ids(1, 6), ids(1, 5)
    memory = model.encode(src)
    embedded = model.tgt_embedding(tgt, torch.arange(5)).detach().requires_grad_()
    hidden = model.decoder(embedded, memory)                            # (1, T, E)
    (hidden[0, 2] * torch.randn(16)).sum().backward()                  # (LayerNorm rows sum to 0)
    grad = embedded.grad[0].abs().sum(-1)                               # (T,)
    assert torch.all(grad[3:] == 0) and torch.all(grad[:3] > 0)


def test_source_padding_cannot_influence_the_translation():
    model = Transformer(tiny(TransformerConfig)).eval()
    src, tgt = ids(1, 5), ids(1, 4)
    padded = torch.cat([src, torch.full((1, 3), PAD)], dim=1)
    torch.testing.assert_close(model(padded, tgt), model(src, tgt), atol=1e-5, rtol=1e-5)
    memory = model.encode(padded)
    torch.testing.assert_close(memory[:, :5], model.encode(src), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["lm", "encoder"])
def test_padding_positions_cannot_influence_real_tokens(family):
    if family == "lm":
        model, config = LanguageModel, LanguageModelConfig
    else:
        model, config = EncoderModel, EncoderModelConfig
    model = model(tiny(config, norm_first=True)).eval()
    tokens = ids(2, 5)
    padded = torch.cat([tokens, torch.full((2, 4), PAD)], dim=1)
    torch.testing.assert_close(model(padded)[:, :5], model(tokens), atol=1e-5, rtol=1e-5)


def test_target_padding_is_masked_in_decoder_self_attention():
    """A pad id *before* real tokens: whatever its embedding, later positions do not change."""
    model = Transformer(tiny(TransformerConfig, tie_output=False)).eval()
    src, tgt = ids(1, 5), torch.tensor([[3, PAD, 4, 5]])
    before = model(src, tgt)
    with torch.no_grad():
        model.tgt_embedding.token.weight[PAD] += 5.0
    after = model(src, tgt)
    torch.testing.assert_close(after[:, [0, 2, 3]], before[:, [0, 2, 3]], atol=1e-5, rtol=1e-5)
    unmasked = Transformer(tiny(TransformerConfig, tie_output=False, pad_id=None)).eval()
    unmasked.load_state_dict(model.state_dict())
    assert not torch.allclose(unmasked(src, tgt)[:, 2:], after[:, 2:], atol=1e-3)


@pytest.mark.parametrize("positions", ["sinusoidal", "rotary"])
def test_language_model_padding_in_the_middle_is_invisible(positions):
    """[4, PAD, 6, 7] at positions 0..3 computes, at 4, 6 and 7, what [4, 6, 7] computes at
    positions 0, 2, 3: the pad is not attended."""
    model = LanguageModel(tiny(LanguageModelConfig, positions=positions)).eval()
    padded = model(torch.tensor([[4, PAD, 6, 7]]))
    without = model(torch.tensor([[4, 6, 7]]), positions=torch.tensor([0, 2, 3]))
    torch.testing.assert_close(padded[:, [0, 2, 3]], without, atol=1e-5, rtol=1e-5)


def test_decode_requires_the_source_padding_mask():
    model = Transformer(tiny(TransformerConfig))
    src = ids(1, 5)
    with pytest.raises(ValueError, match=r"memory_mask=model.source_mask\(src\)"):
        model.decode(ids(1, 2), model.encode(src))


def test_encoder_model_takes_an_explicit_mask():
    model = EncoderModel(tiny(EncoderModelConfig)).eval()
    tokens = ids(1, 6)
    mask = torch.tensor([True, True, True, False, False, False])        # attend to 3 only
    torch.testing.assert_close(model(tokens, mask)[:, :3], model(tokens[:, :3]), atol=1e-5,
                               rtol=1e-5)


# --- bad input -----------------------------------------------------------------------------------

def test_bad_token_ids_raise_clear_errors():
    model = LanguageModel(tiny(LanguageModelConfig))
    with pytest.raises(ValueError, match=r"ids must lie in \[0, vocab_size\) = \[0, 30\), got ids "
                                         r"from 1 to 30"):
        model(torch.tensor([[1, 30]]))
    with pytest.raises(TypeError, match="integer tensor of token ids, got dtype torch.float32"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"shape \(B, T\), got \(3\)"):
        model(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="longer than the model's max_len"):
        model(torch.ones(1, 65, dtype=torch.long))


def test_decoder_layers_need_memory_exactly_when_they_cross_attend():
    model = Transformer(tiny(TransformerConfig))
    with pytest.raises(ValueError, match="pass memory"):
        model.decoder.layers[0](torch.randn(1, 3, 16))
    lm = LanguageModel(tiny(LanguageModelConfig))
    with pytest.raises(ValueError, match="no cross-attention"):
        lm.layers[0](torch.randn(1, 3, 16), torch.randn(1, 3, 16))


# --- every option: forward and backward --------------------------------------------------------

OPTIONS = list(itertools.product(["sinusoidal", "learned", "rotary"], ["relu", "gelu", "gelu_tanh"],
                                 [False, True]))


@pytest.mark.parametrize("positions, activation, norm_first", OPTIONS)
def test_every_option_runs_forward_and_backward(positions, activation, norm_first):
    options = dict(positions=positions, activation=activation, norm_first=norm_first,
                   dropout=0.1, attention_dropout=0.1)
    models = [
        (Transformer(tiny(TransformerConfig, share_embeddings=True, **options)),
         lambda m: m(ids(2, 7), ids(2, 5))),
        (Transformer(tiny(TransformerConfig, tgt_vocab_size=20, tie_output=False, bias=False,
                          **options)),
         lambda m: m(ids(2, 7), ids(2, 5) % 20)),
        (LanguageModel(tiny(LanguageModelConfig, **options)), lambda m: m(ids(2, 6))),
        (EncoderModel(tiny(EncoderModelConfig, scale_embeddings=False, **options)),
         lambda m: m(ids(2, 6))),
    ]
    for model, run in models:
        out = run(model.train())
        assert torch.isfinite(out).all()
        out.square().mean().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert not missing, missing


# --- dropout where the paper puts it ------------------------------------------------------------

@pytest.mark.parametrize("placement", [qkv.PostNorm, qkv.PreNorm])
def test_residual_dropout_drops_the_sublayer_output_before_the_addition(placement):
    residual = placement(8, dropout=0.5).train()
    x = torch.randn(4, 5, 8)
    sublayer = torch.nn.Linear(8, 8)
    torch.manual_seed(3)
    out = residual(x, sublayer)
    torch.manual_seed(3)
    if placement is qkv.PostNorm:
        expected = residual.norm(x + torch.nn.functional.dropout(sublayer(x), 0.5))
    else:
        expected = x + torch.nn.functional.dropout(sublayer(residual.norm(x)), 0.5)
    torch.testing.assert_close(out, expected)


def test_config_dropouts_reach_embeddings_residuals_and_attention():
    model = Transformer(tiny(TransformerConfig, dropout=0.3, attention_dropout=0.2))
    assert model.src_embedding.dropout.p == model.tgt_embedding.dropout.p == 0.3
    layer = model.decoder.layers[0]
    for residual in (layer.self_attention_residual, layer.cross_attention_residual,
                     layer.feed_forward_residual):
        assert residual.dropout.p == 0.3
    assert layer.self_attention.dropout == layer.cross_attention.dropout == 0.2
    assert layer.feed_forward.dropout.p == 0.0                          # not in the paper
    embedded = model.src_embedding.train()(ids(2, 50), torch.arange(50))
    assert 0.2 < (embedded == 0).float().mean() < 0.4                   # dropped after the sum
