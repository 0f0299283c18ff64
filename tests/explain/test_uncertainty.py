"""Uncertainty: entropy against closed forms, MC dropout's spread (none without dropout, some
with it, modes and random state restored), the expected calibration error against calibrated,
over-confident and hand-computed sets, and the "uncertainty" analysis on every family."""

import copy
import dataclasses
import json
import math

import pytest
import torch

from qkv.explain import (ANALYSES, analyse, calibration, classifier_probabilities, mc_dropout,
                         predictive_entropy, save_reliability_diagram)
from qkv.explain.uncertainty import dropout_mode
from tests.explain.conftest import FAMILIES


def _without_dropout(model):
    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if hasattr(module, "num_heads") and hasattr(module, "dropout"):
            module.dropout = 0.0
    return model


# -- entropy -----------------------------------------------------------------------------------


def test_entropy_of_a_model_with_a_zero_output_layer_is_log_of_the_vocabulary(subjects):
    lm = copy.deepcopy(subjects["language_model"].model)
    with torch.no_grad():
        lm.output_layer.weight.zero_()                                  # equal logits
    ids = subjects["language_model"].ids["text"]
    entropy = predictive_entropy(lm, ids)
    assert entropy.shape == ids.shape
    torch.testing.assert_close(entropy, torch.full_like(entropy, math.log(lm.config.vocab_size)))
    classifier = copy.deepcopy(subjects["classifier"].model)
    with torch.no_grad():
        classifier.classifier.weight.zero_()
        classifier.classifier.bias.copy_(torch.tensor([math.log(3.0), 0.0]))   # p = (¾, ¼)
    entropy = predictive_entropy(classifier, subjects["classifier"].ids["text"])
    assert entropy.shape == ()
    assert float(entropy) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))


def test_entropy_of_a_translation_is_per_target_position_and_not_for_a_similarity(subjects):
    s = subjects["marian"]
    entropy = predictive_entropy(s)
    assert entropy.shape == s.ids["target"].shape
    assert bool((entropy >= 0).all()) and bool((entropy <= math.log(
        s.model.config.target_vocab_size) + 1e-5).all())
    with pytest.raises(ValueError, match="similarity has none"):
        predictive_entropy(subjects["encoder"])


# -- MC dropout --------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["classifier", "translation"])
def test_mc_dropout_without_dropout_has_no_spread(subjects, family):
    s = dataclasses.replace(subjects[family], model=_without_dropout(subjects[family].model))
    result = mc_dropout(s, n=6, batch_size=4)
    assert result.dropout_modules == 0
    assert float(result.std.max()) < 1e-6 and result.target_std < 1e-6
    assert result.target_mean == pytest.approx(float(s.score()[0]), abs=1e-5)
    assert float(result.mutual_information.max()) < 1e-6


@pytest.mark.parametrize("family", ["classifier", "language_model", "marian", "minilm"])
def test_mc_dropout_with_dropout_spreads_and_restores_every_mode_and_the_random_state(
        subjects, family):
    s = subjects[family]
    model = s.model
    model.train()
    model.get_submodule(next(name for name, _ in model.named_children())).eval()   # mixed
    modes = [module.training for module in model.modules()]
    state = torch.get_rng_state()
    try:
        result = mc_dropout(s, n=8, seed=1)
        again = mc_dropout(s, n=8, seed=1)
        assert [module.training for module in model.modules()] == modes
    finally:
        model.eval()
    assert torch.equal(torch.get_rng_state(), state)
    assert result.dropout_modules > 0 and result.target_std > 0
    assert torch.equal(result.target, again.target)                     # seeded
    if family == "minilm":                                              # a similarity: cosines
        assert result.mean is None
        return
    assert float(result.std.max()) > 0
    torch.testing.assert_close(result.mean.sum(-1), torch.ones(result.mean.shape[:-1]))
    if family in ("language_model", "marian"):
        T = s.ids["text" if "text" in s.ids else "target"].shape[0]
        assert result.mean.shape[0] == T and result.token_mean.shape == (T,)
        assert result.token_mean[-1] == pytest.approx(result.target_mean, abs=1e-6)


def test_dropout_mode_turns_on_only_dropout(subjects):
    model = subjects["translation"].model
    with dropout_mode(model) as active:
        on = {name for name, module in model.named_modules() if module.training}
    assert active > 0
    assert on and all(name.endswith("dropout") for name in on)
    assert not any(module.training for module in model.modules())


def test_classifier_probabilities_do_not_depend_on_padding(subjects):
    s = subjects["classifier"]
    texts = [s.ids["text"].tolist(), s.ids["text"][:3].tolist() + s.ids["text"][-1:].tolist()]
    batch = classifier_probabilities(s.model, texts)
    for row, text in enumerate(texts):
        with torch.no_grad():
            single = torch.softmax(s.model(torch.tensor([text])), -1)[0]
        torch.testing.assert_close(batch[row], single, atol=1e-6, rtol=1e-5)
    sampled = classifier_probabilities(s.model, texts, samples=4)
    assert not torch.allclose(sampled, batch) and torch.allclose(sampled.sum(-1), torch.ones(2))


# -- calibration -------------------------------------------------------------------------------


def _synthetic(confidence, correct_probability, seed=0):
    """Top-label confidences and labels right with ``correct_probability`` (binary problem)."""
    generator = torch.Generator().manual_seed(seed)
    right = torch.rand(confidence.shape, generator=generator) < correct_probability
    probabilities = torch.stack([confidence, 1 - confidence], dim=1)    # predicts class 0
    return probabilities, (~right).long()


def test_a_calibrated_set_has_an_ece_near_zero_and_an_overconfident_one_the_gap():
    generator = torch.Generator().manual_seed(0)
    confidence = 0.5 + 0.5 * torch.rand(200_000, generator=generator, dtype=torch.float64)
    calibrated = calibration(*_synthetic(confidence, confidence), bins=15)
    assert calibrated.ece < 0.005
    overconfident = calibration(*_synthetic(confidence, confidence - 0.2), bins=15)
    assert overconfident.ece == pytest.approx(0.2, abs=0.005)
    assert int(overconfident.bin_count.sum()) == 200_000
    assert overconfident.bin_count[:7].sum() == 0                       # confidences above ½


def test_ece_equals_the_hand_computed_value_on_a_tiny_set():
    probabilities = torch.tensor([[0.95, 0.05, 0.0],                    # bin (0.9, 1.0], right
                                  [0.1, 0.85, 0.05],                    # bin (0.8, 0.9], wrong
                                  [0.05, 0.85, 0.1],                    # bin (0.8, 0.9], right
                                  [0.3, 0.3, 0.4]], dtype=torch.float64)  # bin (0.3, 0.4], wrong
    labels = torch.tensor([0, 0, 1, 0])
    result = calibration(probabilities, labels, bins=10)
    expected = (abs(1 - 0.95) * 1 + abs(0.5 - 0.85) * 2 + abs(0 - 0.4) * 1) / 4
    assert result.ece == pytest.approx(expected, abs=1e-12)             # 0.2875
    assert result.bin_count.tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 2, 1]
    assert result.bin_accuracy[8] == pytest.approx(0.5)
    assert math.isnan(float(result.bin_confidence[0]))
    binary = calibration(torch.tensor([0.93, 0.25]), torch.tensor([1, 1]), bins=10)
    assert binary.ece == pytest.approx((0.07 + 0.75) / 2, abs=1e-6)    # (N,) = p(class 1)
    assert json.loads(json.dumps(result.to_dict()))["bin_confidence"][0] is None


def test_calibration_refuses_what_is_not_probabilities_of_the_labels():
    with pytest.raises(ValueError, match="sum to 1"):
        calibration(torch.tensor([[0.5, 0.6]]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"labels must be classes in \[0, 2\)"):
        calibration(torch.tensor([[0.5, 0.5]]), torch.tensor([2]))
    with pytest.raises(ValueError, match=r"labels must be \(N,\)"):
        calibration(torch.tensor([[0.5, 0.5]]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="bins"):
        calibration(torch.tensor([[0.5, 0.5]]), torch.tensor([0]), bins=0)


def test_the_reliability_diagram_is_a_png(tmp_path):
    result = calibration(torch.tensor([[0.9, 0.1], [0.3, 0.7]]), torch.tensor([0, 0]))
    path = save_reliability_diagram(result, tmp_path / "reliability.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


# -- the registered analysis -------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_uncertainty_runs_on_every_family_as_json(subjects, family):
    s = subjects[family]
    report = analyse(s, "uncertainty", samples=4)
    assert report["kind"] == "uncertainty" and report["target"] == s.target_name
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    assert (report["entropy"] is None) == (family in ("encoder", "minilm"))
    if report["task"] in ("language_model", "translation"):
        assert len(report["entropy"]) == len(report["tokens"]) == len(report["next_tokens"])
    assert len(report["mc_dropout"]["target"]) == 4
    assert "<html" not in ANALYSES["uncertainty"].html(report)


@pytest.mark.parametrize("family", ["classifier", "language_model"])
def test_the_uncertainty_html_escapes_tokens_and_the_png_is_drawn(subjects, family, tmp_path):
    s = subjects[family]
    evil = dataclasses.replace(s, target_name="'<script>alert(1)</script>'",
                               tokens={"text": ["<script>"] * s.ids["text"].shape[0]})
    report = analyse(evil, "uncertainty", samples=3)
    page = ANALYSES["uncertainty"].html(report)
    assert "<script" not in page and "&lt;script&gt;" in page
    ANALYSES["uncertainty"].png(report, tmp_path / "uncertainty.png")
    assert (tmp_path / "uncertainty.png").read_bytes()[:4] == b"\x89PNG"


def test_a_translation_given_as_a_model_and_ids_is_scored_at_every_output_token(subjects):
    s = subjects["translation"]
    model = s.model
    target = [int(i) for i in s.ids["target"].tolist()] + [5, 6]
    entropy = predictive_entropy(model, {"source": s.ids["source"], "target": target})
    assert entropy.shape == (len(target),)
    with torch.no_grad():
        logits = model(s.ids["source"][None], torch.tensor([target]))[0]   # (T, V)
    expected = -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1)
    torch.testing.assert_close(entropy, expected, atol=1e-5, rtol=1e-5)
