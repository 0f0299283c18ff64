"""Gradient methods: integrated gradients adds up to f(x) − f(baseline), every gradient method
finds the one token a constructed classifier reads, Chefer et al.'s rules against a transcription
of the authors' code, and every method runs on every family."""

import math

import pytest
import torch
from torch import nn

import qkv
from qkv.explain import Label, attribute, capture, faithfulness, subject
from qkv.explain.grad_attention import attention_gradients
from tests.explain.conftest import FAMILIES

GRADIENT_METHODS = ("grad-input", "ig", "grad-attention")
TRIGGER = 5                                     # the one token id the constructed model reads
QUERY_BIAS = 5.0


# -- integrated gradients: completeness ------------------------------------------------------

def _baseline_change(s, baseline: str) -> float:
    """f(x) − f(baseline) in logits, computed apart from Captum."""
    x = s.token_embeddings()
    if baseline == "zeros":
        reference = [torch.zeros_like(e) for e in x]
    else:
        from qkv.explain.subject import token_embedding_module
        pad = torch.tensor([s.model.config.pad_id])
        reference = [token_embedding_module(s.model, side)(pad)[None].expand_as(e)
                     for side, e in zip(s.sides, x)]
    with torch.no_grad():
        return float(s.score(output="logit")[0] - s.score_from_embeddings(*reference)[0])


@pytest.mark.parametrize("family, baseline", [("classifier", "zeros"), ("classifier", "pad"),
                                              ("language_model", "pad")])
def test_integrated_gradients_add_up_to_the_score_change(subjects, family, baseline):
    s = subjects[family]
    result = attribute(s, "ig", steps=64, baseline=baseline)
    change = _baseline_change(s, baseline)
    assert abs(change) > 1e-3                           # something to add up
    assert result.details["completeness_error"] < 0.01
    assert float(result.scores.sum()) == pytest.approx(change, rel=0.01)
    assert result.details["score"] - result.details["baseline_score"] == pytest.approx(change,
                                                                                       abs=1e-5)
    assert result.details["delta"] == pytest.approx(float(result.scores.sum()) - change, abs=1e-4)


def test_completeness_error_reports_the_jump_a_zero_baseline_misses_before_a_layer_norm(
        subjects):
    """The tiny language model is pre-norm with rotary positions: its first LayerNorm sees the
    token embedding alone, and LayerNorm(αx) jumps at α ≈ 0 — the zeros path misses it."""
    s = subjects["language_model"]
    result = attribute(s, "ig", steps=64)
    change = _baseline_change(s, "zeros")
    missed = abs(float(result.scores.sum()) - change) / abs(change)
    assert result.details["completeness_error"] == pytest.approx(missed, rel=1e-3)
    assert missed > 0.05


def test_gradient_options_are_refused_by_name(subjects, models):
    s = subjects["classifier"]
    with pytest.raises(ValueError, match="steps"):
        attribute(s, "ig", steps=0)
    with pytest.raises(ValueError, match="baseline"):
        attribute(s, "ig", baseline="mean")
    with pytest.raises(ValueError, match="reduce"):
        attribute(s, "grad-input", reduce="max")
    with pytest.raises(ValueError, match="output"):
        attribute(s, "grad-attention", output="softmax")
    gpt2 = subjects["gpt2"]
    if gpt2.model.config.pad_id is None:
        with pytest.raises(ValueError, match="pad id"):
            attribute(gpt2, "ig", baseline="pad")


# -- a classifier that reads one token -------------------------------------------------------

def _one_token_classifier() -> nn.Module:
    """A 1-layer mean-pooled classifier whose output depends on the token id TRIGGER alone.

    Every other id embeds to 0, positions are 0, the norms are identities and the feed-forward
    network outputs 0, so ``h_i = x_i + A_i,TRIGGER · e``; attention is pulled onto TRIGGER by a
    query bias. Mean-pooled: ``pooled = (1 + Σ_i A_i,TRIGGER) / T · e``, and the "trigger" logit
    is ``w · pooled = 4 · (1 + Σ_i A_i,TRIGGER) / T``, the "other" one 1 (the head's bias)."""
    config = qkv.SequenceClassifierConfig(
        vocab_size=8, d_model=4, num_heads=2, num_layers=1, d_ff=4, dropout=0.0, pad_id=None,
        positions="learned", scale_embeddings=False, labels=["other", "trigger"],
        pooling="mean")
    model = qkv.SequenceClassifier(config).eval()
    encoder, layer = model.encoder, model.encoder.layers[0]
    attention = layer.self_attention
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        encoder.embedding.token.weight[TRIGGER] = torch.tensor([1.0, 1.0, 0.0, 0.0])   # e
        attention.query_proj.bias.fill_(QUERY_BIAS)                    # the same query q
        attention.key_proj.weight[:] = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0],
                                                     [1, 0, 0, 0], [0, 1, 0, 0]])  # k = ‖e‖
        attention.value_proj.weight[:] = torch.eye(4)
        attention.output_proj.weight[:] = torch.eye(4)
        model.classifier.weight[1] = torch.tensor([2.0, 2.0, 0.0, 0.0])               # w
        model.classifier.bias[0] = 1.0
    layer.self_attention_residual.norm = nn.Identity()
    layer.feed_forward_residual.norm = nn.Identity()
    return model


def _expected_probability(T: int) -> float:
    """The constructed model's P("trigger") for T tokens, one of them TRIGGER."""
    s = 2 * QUERY_BIAS / math.sqrt(2)                  # q · k / √D, per head
    A = math.exp(s) / (math.exp(s) + T - 1)            # every row's weight on TRIGGER
    logit = 4 * (1 + T * A) / T
    return 1 / (1 + math.exp(1.0 - logit))


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_every_gradient_method_ranks_first_the_one_token_the_model_reads(method):
    model = _one_token_classifier()
    ids = [1, 2, 3, TRIGGER, 4, 6]
    position = ids.index(TRIGGER)
    s = subject(model, ids, Label("trigger"))
    assert float(s.score()[0]) == pytest.approx(_expected_probability(len(ids)), abs=1e-5)
    result = attribute(s, method)
    assert int(result.scores.argmax()) == position
    others = torch.cat([result.scores[:position], result.scores[position + 1:]])
    assert float(result.scores[position]) > float(others.max()) + 1e-3
    if method != "grad-attention":                     # zero embeddings: exactly no credit
        assert torch.equal(others, torch.zeros_like(others))

    R = len(ids)                                       # no special tokens: all removable
    measured = faithfulness(s, result, fractions=(1 / R,), random_orders=2)
    drop = _expected_probability(len(ids)) - 1 / (1 + math.e)   # without TRIGGER: logits = bias
    assert measured.tokens_at == (1,)
    assert measured.methods[method].comprehensiveness_at[0] == pytest.approx(drop, abs=1e-5)
    assert measured.methods[method].comprehensiveness == pytest.approx(drop, abs=1e-5)


# -- Chefer et al.'s rules, against a transcription of the authors' code ----------------------

def test_attention_gradients_equal_autograd_on_the_weights():
    """Without a mask the captured weights are the very tensor the output is computed from, so
    autograd reaches them: ∂score/∂A from the output's gradient (∂score/∂O · Vᵀ) must match."""
    torch.manual_seed(5)
    config = qkv.SequenceClassifierConfig(vocab_size=12, d_model=8, num_heads=2, num_layers=2,
                                          d_ff=16, pad_id=None, labels=["a", "b"],
                                          pooling="mean")
    s = subject(qkv.SequenceClassifier(config).eval(), [3, 4, 5, 6, 7])
    captured = capture(s, output="logit", grad=True)
    direct = torch.autograd.grad(captured.score.sum(), [st.weights for st in captured.steps],
                                 retain_graph=True)
    for got, expected in zip(attention_gradients(captured), direct):
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    assert float(direct[0].abs().sum()) > 0


def _authors_rules(steps, grads):
    """Transformer-MM-Explainability's DETR generator (Chefer et al.), transcribed: avg_heads,
    handle_residual and apply_mm_attention_rules."""
    def avg_heads(cam, grad):
        return (grad * cam).clamp(min=0).mean(dim=0)

    def handle_residual(orig):
        self_attention = orig.clone() - torch.eye(orig.shape[-1])
        self_attention = self_attention / self_attention.sum(dim=-1, keepdim=True)
        return self_attention + torch.eye(orig.shape[-1])

    encoder = [(s, g) for s, g in zip(steps, grads) if s.stack == "encoder"]
    decoder = [(s, g) for s, g in zip(steps, grads) if s.stack == "decoder"]
    S, T = encoder[0][0].weights.shape[-1], decoder[0][0].weights.shape[-1]
    R_i_i, R_q_q, R_q_i = torch.eye(S), torch.eye(T), torch.zeros(T, S)
    for step, grad in encoder:
        R_i_i = R_i_i + avg_heads(step.weights[0].detach(), grad[0]) @ R_i_i
    for index in range(0, len(decoder), 2):
        (self_step, self_grad), (cross_step, cross_grad) = decoder[index], decoder[index + 1]
        cam = avg_heads(self_step.weights[0].detach(), self_grad[0])
        R_q_q = R_q_q + cam @ R_q_q
        R_q_i = R_q_i + cam @ R_q_i
        cam = avg_heads(cross_step.weights[0].detach(), cross_grad[0])
        addition = handle_residual(R_q_q).t() @ (cam @ handle_residual(R_i_i))
        addition[torch.isnan(addition)] = 0
        R_q_i = R_q_i + addition
    return torch.cat([R_q_i[-1], R_q_q[-1]])


@pytest.mark.parametrize("family", ["translation", "marian"])
def test_translation_relevance_follows_the_authors_rules(subjects, family):
    s = subjects[family]
    result = attribute(s, "grad-attention")
    captured = capture(s, output="logit", grad=True)
    expected = _authors_rules(captured.steps, attention_gradients(captured))
    torch.testing.assert_close(result.scores, expected, atol=1e-5, rtol=1e-4)
    decoder_layers = s.model.config.num_layers
    assert result.layers.shape == (decoder_layers, s.num_tokens)
    torch.testing.assert_close(result.layers[-1], result.scores)


def test_language_model_relevance_is_the_last_row_of_the_rolled_out_maps(subjects):
    s = subjects["language_model"]
    result = attribute(s, "grad-attention")
    captured = capture(s, output="logit", grad=True)
    grads = attention_gradients(captured)
    R = torch.eye(s.num_tokens)
    rows = []
    for step, grad in zip(captured.steps, grads):
        R = R + (grad[0] * step.weights[0].detach()).clamp(min=0).mean(0) @ R
        rows.append(R[-1])
    torch.testing.assert_close(result.layers, torch.stack(rows), atol=1e-6, rtol=1e-5)
    assert float(result.scores[-1]) >= 1.0              # the identity: its own token


# -- every family ----------------------------------------------------------------------------

@pytest.mark.parametrize("method", GRADIENT_METHODS)
@pytest.mark.parametrize("family", FAMILIES)
def test_every_gradient_method_runs_on_every_family(subjects, family, method):
    s = subjects[family]
    options = {"steps": 8} if method == "ig" else {}
    result = attribute(s, method, **options)
    assert result.method == method
    assert result.scores.shape == (s.num_tokens,)
    assert bool(torch.isfinite(result.scores).all())
    assert int((result.scores != 0).sum()) > 1          # credit beyond one token (identity)
