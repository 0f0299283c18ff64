"""The attention-based attributions: raw attention, rollout, flow, norm-based, ALTI.

Known answers: rollout of identity attention is the identity and multiplies the layers last on
the left; flow equals rollout on one layer and differs on a bottleneck; norm-based equals the
weights when every transformed value has the same norm; ALTI's decomposition sums to the real
residual output (post-norm and pre-norm, self- and cross-attention), and a model whose attention
writes nothing gives all of ALTI's credit to the target token. Then every method on every family.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

import qkv
from qkv.explain import Label, attribute, capture, subject
from qkv.explain.alti import contributions, decompose
from qkv.explain.attention_layers import readout
from qkv.explain.flow import encoder_decoder_flow, flow
from qkv.explain.norm import norms, transformed_values
from qkv.explain.rollout import encoder_decoder_rollout, residual_adjusted, rollout
from tests.explain.conftest import FAMILIES

METHODS = ("attention", "rollout", "flow", "norm", "alti")


def _random_attention(*shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64).mul(2).softmax(-1)


# -- rollout ----------------------------------------------------------------------------------

def test_rollout_of_identity_attention_is_the_identity():
    identity = torch.eye(5, dtype=torch.float64).expand(3, 5, 5)
    rolled = rollout(identity)
    assert rolled.shape == (3, 5, 5)
    torch.testing.assert_close(rolled, identity)


def test_rollout_multiplies_the_layers_last_on_the_left_with_half_residual():
    first, second = _random_attention(2, 4, 4)
    eye = torch.eye(4, dtype=torch.float64)
    expected = (0.5 * second + 0.5 * eye) @ (0.5 * first + 0.5 * eye)
    rolled = rollout(torch.stack([first, second]))
    torch.testing.assert_close(rolled[0], 0.5 * first + 0.5 * eye)
    torch.testing.assert_close(rolled[1], expected)
    assert not torch.allclose(expected, (0.5 * first + 0.5 * eye) @ (0.5 * second + 0.5 * eye))
    torch.testing.assert_close(rolled.sum(-1), torch.ones(2, 4, dtype=torch.float64))


def test_residual_adjusted_renormalises_rows_that_do_not_sum_to_one():
    adjusted = residual_adjusted(torch.tensor([[0.0, 0.0], [1.0, 1.0]]), residual=0.5)
    torch.testing.assert_close(adjusted, torch.tensor([[1.0, 0.0], [1 / 3, 2 / 3]]))


def test_encoder_decoder_rollout_follows_the_documented_rule():
    S, T = 3, 2
    encoder = _random_attention(S, S, seed=1)
    decoder = _random_attention(2, T, T, seed=2)
    cross = _random_attention(2, T, S, seed=3)
    residual = torch.tensor([[0.3, 0.6], [0.5, 0.9]], dtype=torch.float64)
    got = encoder_decoder_rollout(encoder, decoder, (1 - residual)[..., None] * cross, residual)
    current = torch.cat([torch.zeros(T, S, dtype=torch.float64), torch.eye(T).double()], 1)
    for l in range(2):                                  # the rule, spelled out row by row
        current = decoder[l] @ current
        mixed = torch.zeros_like(current)
        for i in range(T):
            mixed[i] = residual[l, i] * current[i]
            mixed[i, :S] += (1 - residual[l, i]) * cross[l, i] @ encoder
        current = mixed
        torch.testing.assert_close(got[l], current)
    torch.testing.assert_close(got.sum(-1), torch.ones(2, T, dtype=torch.float64))


def test_rollout_method_equals_the_product_of_captured_layers(subjects):
    s = subjects["language_model"]
    steps = capture(s).steps
    current = torch.eye(s.num_tokens, dtype=torch.float64)
    for step in steps:
        mean = step.weights[0].double().mean(0)
        current = (0.5 * mean + 0.5 * torch.eye(s.num_tokens)) @ current
    result = attribute(s, "rollout")
    torch.testing.assert_close(result.scores, current[-1].float())     # the last row
    assert result.layers.shape == (len(steps), s.num_tokens)


# -- flow -------------------------------------------------------------------------------------

def test_flow_on_one_layer_equals_rollout():
    attention = _random_attention(1, 6, 6, seed=4)
    rolled = rollout(attention)[0]
    for target in range(6):
        weights = torch.zeros(6, dtype=torch.float64)
        weights[target] = 1.0
        torch.testing.assert_close(flow(attention, weights), rolled[target])


def test_flow_of_a_one_layer_model_equals_its_rollout(word_tokenizer):
    torch.manual_seed(5)
    model = qkv.LanguageModel(qkv.LanguageModelConfig(
        vocab_size=word_tokenizer.vocab_size, d_model=16, num_heads=2, num_layers=1,
        d_ff=32)).eval()
    s = subject(model, word_tokenizer.encode("the cat sat on the mat"))
    torch.testing.assert_close(attribute(s, "flow").scores, attribute(s, "rollout").scores)


def test_flow_is_bounded_by_the_narrowest_edge_not_the_product():
    # both tokens attend half-half in both layers: rollout spreads 0.5 to each input token, but
    # two disjoint paths of capacity 0.5 each carry a flow of 1 to each
    half = torch.full((2, 2, 2), 0.5, dtype=torch.float64)
    target = torch.tensor([1.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(rollout(half, 0.0)[-1, 0], torch.tensor([0.5, 0.5]).double())
    torch.testing.assert_close(flow(half, target, 0.0), torch.tensor([1.0, 1.0]).double())


def test_encoder_decoder_flow_splits_at_the_cross_attention_residual():
    one = torch.ones(1, 1, 1, dtype=torch.float64)
    got = encoder_decoder_flow(one, one, 0.3 * one, torch.tensor([[0.7]]).double(),
                               torch.ones(1).double())
    torch.testing.assert_close(got, torch.tensor([0.3, 0.7]).double())   # [source | target]


def test_flow_refuses_long_inputs_unless_told(subjects):
    s = subjects["classifier"]
    with pytest.raises(ValueError, match="max_tokens=2"):
        attribute(s, "flow", max_tokens=2)
    with pytest.raises(ValueError, match="flow_func"):
        attribute(s, "flow", flow_func="magic")
    result = attribute(s, "flow", max_tokens=None, per_layer=True)
    torch.testing.assert_close(result.layers[-1], result.scores)


# -- norm-based -------------------------------------------------------------------------------

def test_norms_equal_head_mean_weights_when_transformed_values_have_equal_norms():
    H, S, E = 3, 5, 4
    weights = _random_attention(H, S, seed=6)                           # (H, S), rows sum to 1
    directions = torch.randn(S, E, generator=torch.Generator().manual_seed(7),
                             dtype=torch.float64)
    same_norm = 2.5 * directions / directions.norm(dim=-1, keepdim=True)   # ‖f(x_j)‖ = 2.5
    got = norms(weights, same_norm.expand(H, S, E))
    torch.testing.assert_close(got / got.sum(), weights.mean(0) / weights.mean(0).sum())


def test_norm_method_equals_one_heads_weights_when_values_are_constant(models):
    model = copy.deepcopy(models["classifier"][0])
    for module in model.modules():
        if isinstance(module, qkv.MultiHeadAttention):                  # value = b_V for all x
            torch.nn.init.zeros_(module.value_proj.weight)
            torch.nn.init.normal_(module.value_proj.bias)
    s = subject(model, [3, 5, 6, 7, 8], Label(0))
    for head in (0, 1):
        normed = attribute(s, "norm", head=head).layers
        weights = attribute(s, "attention", head=head).layers
        torch.testing.assert_close(normed / normed.sum(-1, keepdim=True), weights)
    assert not torch.allclose(attribute(s, "norm", head=0).layers,
                              attribute(s, "norm", head=1).layers)


def test_transformed_values_rebuild_the_attention_output(subjects):
    for step in capture(subjects["translation"]).steps:                # self and cross
        f = transformed_values(step)                                    # (H, S, E)
        rebuilt = torch.einsum("hts,hse->te", step.weights[0].double(), f)
        rebuilt = rebuilt + step.call.module.output_proj.bias.double()
        torch.testing.assert_close(rebuilt, step.call.output[0].double(), atol=1e-5, rtol=1e-5)


# -- ALTI -------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["classifier", "translation", "marian", "language_model",
                                    "gpt2", "minilm"])
def test_alti_decomposition_sums_to_the_residual_output(subjects, family):
    steps = capture(subjects[family]).steps
    assert {step.pre_norm for step in steps} == {family in ("language_model", "gpt2")}
    for step in steps:
        parts = decompose(step)
        total = parts.attention.sum(1) + parts.residual + parts.bias     # (T, E)
        torch.testing.assert_close(total, step.residual_output[0].double(), atol=1e-5,
                                   rtol=1e-5)
    cross = [step for step in steps if step.cross]
    assert (family in ("translation", "marian")) == bool(cross)
    for step in cross:
        assert contributions(step).shape == (step.weights.shape[2], 1 + step.weights.shape[3])


@pytest.mark.parametrize("family", ["minilm", "gpt2"])
def test_alti_contributions_follow_the_paper_formula(subjects, family, monkeypatch):
    monkeypatch.setattr("qkv.explain.alti._ROWS", 2)                   # decomposed in chunks
    step = capture(subjects[family]).steps[1]
    module, residual = step.call.module, step.residual
    x = step.residual_input[0].detach().double()                        # (T, E)
    T, E, H = x.shape[0], x.shape[1], module.num_heads
    norm = residual.norm
    gamma, beta = norm.weight.detach().double(), norm.bias.detach().double()
    inputs = (F.layer_norm(x, (E,), gamma, beta, norm.eps) if step.pre_norm
              else x)                                                   # what f_h reads
    value = F.linear(inputs, module.value_proj.weight.double(),
                     module.value_proj.bias.double()).view(T, H, E // H)   # (S, H, D)
    W_O = module.output_proj.weight.double().view(E, H, E // H)         # (E, H, D)
    alpha = step.weights[0].detach().double()                           # (H, T, S)
    expected = torch.zeros(T, T, dtype=torch.float64)
    for i in range(T):
        z = torch.stack([sum(alpha[h, i, j] * W_O[:, h] @ value[j, h] for h in range(H))
                         + (x[i] if i == j else 0) for j in range(T)])  # (S, E)
        y = step.residual_output[0, i].double()
        if not step.pre_norm:                                           # through the LN
            total = z.sum(0) + module.output_proj.bias.double()
            sigma = (total.var(unbiased=False) + norm.eps).sqrt()
            z = gamma * (z - z.mean(-1, keepdim=True)) / sigma
        closer = (y.abs().sum() - (y - z).abs().sum(-1)).clamp(min=0)
        expected[i] = closer / closer.sum()
    torch.testing.assert_close(contributions(step), expected)


@pytest.mark.parametrize("family", ["classifier", "language_model"])
def test_alti_gives_all_credit_to_the_target_when_attention_writes_nothing(models, subjects,
                                                                           family):
    model = copy.deepcopy(models[family][0])
    for module in model.modules():
        if isinstance(module, qkv.MultiHeadAttention):
            torch.nn.init.zeros_(module.output_proj.weight)
            torch.nn.init.zeros_(module.output_proj.bias)
    original = subjects[family]
    s = subject(model, original.ids["text"], original.target)
    expected = readout(s).float()                                       # one-hot
    torch.testing.assert_close(attribute(s, "alti").scores, expected)
    assert not torch.allclose(attribute(s, "rollout").scores, expected)


# -- the target's row, and every family --------------------------------------------------------

def test_attention_reads_the_target_row_of_each_family(subjects):
    rows = {"classifier": "first", "encoder": "mean", "minilm": "mean", "language_model": "last",
            "gpt2": "last", "translation": "last", "marian": "last"}
    for family, row in rows.items():
        s = subjects[family]
        steps = capture(s).steps
        cross = [step for step in steps if step.cross]
        own = [step for step in steps if not step.cross and (step.stack == "decoder" or not cross)]
        result = attribute(s, "attention", layer=0)
        for l, step in enumerate(own):
            def read(weights):
                mean = weights[0].mean(0)                               # (T, S)
                return {"first": mean[0], "last": mean[-1], "mean": mean.mean(0)}[row]
            expected = read(step.weights)
            if cross:
                expected = torch.cat([read(cross[l].weights), expected])
            torch.testing.assert_close(result.layers[l], expected, msg=family)
        torch.testing.assert_close(result.scores, result.layers[0])


def test_mean_pooling_reads_the_mean_of_the_non_padding_rows(word_tokenizer):
    torch.manual_seed(8)
    pad = word_tokenizer.pad_id
    model = qkv.SequenceClassifier(qkv.SequenceClassifierConfig(
        vocab_size=word_tokenizer.vocab_size, d_model=16, num_heads=2, num_layers=1, d_ff=32,
        labels=["a", "b"], pooling="mean", pad_id=pad)).eval()
    s = subject(model, [3, 5, 6, pad])
    torch.testing.assert_close(readout(s), torch.tensor([1 / 3, 1 / 3, 1 / 3, 0]).double())


@pytest.mark.parametrize("method, options, message", [
    ("attention", {"layer": 2}, "layer must be an int in \\[-2, 2\\)"),
    ("attention", {"head": 2}, "head must be None .* \\[-2, 2\\)"),
    ("norm", {"layer": -3}, "layer must be"),
    ("norm", {"head": True}, "head must be"),
    ("rollout", {"residual": 1.5}, "residual must be a number in \\[0, 1\\]"),
])
def test_bad_options_are_refused_by_name(subjects, method, options, message):
    with pytest.raises(ValueError, match=message):
        attribute(subjects["classifier"], method, **options)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_method_runs_on_every_family(subjects, family):
    s = subjects[family]
    steps = capture(s).steps
    L = sum(1 for step in steps if not step.cross and (step.stack == "decoder" or not (
        "target" in s.ids)))                                            # decoder layers
    for method in METHODS:
        result = attribute(s, method)
        assert result.method == method
        assert result.scores.shape == (s.num_tokens,), method
        assert torch.isfinite(result.scores).all() and (result.scores >= 0).all(), method
        if method != "flow":
            assert result.layers.shape == (L, s.num_tokens), method
            assert torch.isfinite(result.layers).all() and (result.layers >= 0).all(), method
        if method in ("rollout", "alti"):
            assert float(result.scores.sum()) == pytest.approx(1.0, abs=1e-5), method
        result.to_dict()                                                # JSON-able
