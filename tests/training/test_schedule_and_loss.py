"""The warm-up schedule is the paper's formula; label smoothing matches a hand computation."""

import math

import pytest
import torch
import torch.nn.functional as F

from qkv.training.loss import label_smoothed_cross_entropy
from qkv.training.schedule import Schedule


@pytest.mark.parametrize("step", [1, 10, 3999, 4000, 4001, 10000, 100000])
def test_warmup_schedule_is_the_papers_formula(step):
    expected = 512 ** -0.5 * min(step ** -0.5, step * 4000 ** -1.5)
    assert Schedule("warmup", warmup_steps=4000, d_model=512)(step) == pytest.approx(expected, rel=1e-12)


def test_warmup_schedule_peaks_at_the_end_of_warmup():
    schedule = Schedule("warmup", warmup_steps=100, d_model=64, scale=2.0)
    rates = [schedule(s) for s in range(1, 1000)]
    assert max(range(len(rates)), key=rates.__getitem__) + 1 == 100
    assert schedule(100) == pytest.approx(2.0 * 64 ** -0.5 * 100 ** -0.5)


def test_constant_and_cosine_schedules():
    constant = Schedule("constant", warmup_steps=10, scale=1e-3)
    assert constant(5) == pytest.approx(5e-4) and constant(10) == constant(5000) == pytest.approx(1e-3)
    cosine = Schedule("cosine", warmup_steps=10, scale=1e-3, total_steps=110)
    assert cosine(10) == pytest.approx(1e-3)
    assert cosine(60) == pytest.approx(5e-4)
    assert cosine(110) == pytest.approx(0.0, abs=1e-12)


def test_schedule_rejects_bad_settings():
    with pytest.raises(ValueError, match="schedule must be one of"):
        Schedule("linear")
    with pytest.raises(ValueError, match="steps count from 1"):
        Schedule()(0)


def test_label_smoothing_by_hand():
    # V = 3, ε = 0.1: target distribution (0.9 + 0.1/3, 0.1/3, 0.1/3) on the right token 0
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    log_p = [1.0 - math.log(math.exp(1) + math.exp(2) + math.exp(3)) + d for d in (0.0, 1.0, 2.0)]
    by_hand = -(0.9 + 0.1 / 3) * log_p[0] - (0.1 / 3) * (log_p[1] + log_p[2])
    loss, nll, tokens = label_smoothed_cross_entropy(logits, torch.tensor([0]), smoothing=0.1)
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)
    assert nll.item() == pytest.approx(-log_p[0], rel=1e-6)
    assert tokens.item() == 1


def test_label_smoothing_agrees_with_pytorch_and_ignores_padding():
    logits = torch.randn(4, 7, 11)
    target = torch.randint(1, 11, (4, 7))
    target[0, 5:] = 0
    loss, nll, tokens = label_smoothed_cross_entropy(logits, target, smoothing=0.1, ignore_index=0)
    reference = F.cross_entropy(logits.reshape(-1, 11), target.reshape(-1), ignore_index=0,
                                label_smoothing=0.1, reduction="sum")
    torch.testing.assert_close(loss, reference)
    assert tokens.item() == 4 * 7 - 2


def test_loss_shapes_are_checked():
    with pytest.raises(ValueError, match=r"logits \(2, 5\) must be target \(3\)"):
        label_smoothed_cross_entropy(torch.randn(2, 5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"target ids must be in \[0, 5\).*-100 to 1"):
        label_smoothed_cross_entropy(torch.randn(2, 5), torch.tensor([1, -100]))
    loss = label_smoothed_cross_entropy(torch.randn(2, 5), torch.tensor([1, -100]),
                                        ignore_index=-100)
    assert loss.tokens.item() == 1
