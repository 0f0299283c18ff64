"""Faithfulness: comprehensiveness, sufficiency and AOPC against scores computed by hand from
the variants' definitions; the true leave-one-out effects beat the random baseline; the random
baseline is seeded; bad fractions and subjects without removable tokens are refused by name."""

import json
import statistics

import pytest
import torch

from qkv.explain import (Attribution, FaithfulnessTable, faithfulness, faithfulness_table,
                         subject)


def _without(s, positions):
    """The subject's input by side without the tokens at ``positions`` (in N)."""
    keep = torch.ones(s.num_tokens, dtype=torch.bool)
    keep[list(positions)] = False
    return {side: ids[mask] for (side, ids), mask in zip(s.ids.items(), s.split(keep).values())}


def _leave_one_out(s):
    """``s(x) − s(x without token i)`` for every token (0 at special tokens)."""
    full = float(s.score()[0])
    effects = torch.zeros(s.num_tokens)
    for i in range(s.num_tokens):
        if not bool(s.special[i]):
            effects[i] = full - float(s.score([_without(s, [i])])[0])
    return effects


def test_numbers_follow_their_definitions(subjects):
    s = subjects["classifier"]                            # <bos> I love my dog <eos>
    removable = [i for i in range(s.num_tokens) if not bool(s.special[i])]
    assert len(removable) == 4
    scores = torch.tensor([9.0, 1.0, 4.0, 3.0, 2.0, 8.0])  # ranking: 2, 3, 4, 1
    order = [2, 3, 4, 1]
    result = faithfulness(s, {"hand": scores}, fractions=(0.25, 0.5, 1.0), random_orders=3)
    assert result.tokens_at == (1, 2, 4)
    assert result.rankings["hand"] == tuple(order)
    full = float(s.score()[0])
    mine = result.methods["hand"]
    for k, got in zip((1, 2, 4), mine.comprehensiveness_at):
        assert got == pytest.approx(full - float(s.score([_without(s, order[:k])])[0]), abs=1e-6)
    for k, got in zip((1, 2, 4), mine.sufficiency_at):
        others = [i for i in removable if i not in order[:k]]
        assert got == pytest.approx(full - float(s.score([_without(s, others)])[0]), abs=1e-6)
    assert mine.comprehensiveness == pytest.approx(statistics.fmean(mine.comprehensiveness_at))
    assert mine.sufficiency == pytest.approx(statistics.fmean(mine.sufficiency_at))
    curve = [full] + [float(s.score([_without(s, order[:k])])[0]) for k in range(1, 5)]
    assert mine.curve == pytest.approx(curve, abs=1e-6)
    assert mine.aopc == pytest.approx(statistics.fmean(full - c for c in curve), abs=1e-6)
    assert mine.sufficiency_at[-1] == pytest.approx(0.0, abs=1e-6)   # keeping all = x itself


def test_fraction_steps_curve(subjects):
    s = subjects["classifier"]
    result = faithfulness(s, {"hand": torch.arange(6.0)}, fractions=(0.5,), curve="fractions")
    assert result.curve_tokens == (0, 2)
    mine = result.methods["hand"]
    assert mine.aopc == pytest.approx((0 + mine.comprehensiveness_at[0]) / 2)


@pytest.mark.parametrize("family", ["classifier", "language_model", "translation", "minilm"])
def test_true_leave_one_out_effects_beat_the_random_baseline(subjects, family):
    s = subjects[family]
    effects = _leave_one_out(s)
    result = faithfulness(s, Attribution("leave-one-out", s, effects), fractions=(0.2,),
                          random_orders=8, seed=1)
    mine = result.methods["leave-one-out"]
    assert result.tokens_at == (1,)                      # one token: the largest effect
    assert mine.comprehensiveness == pytest.approx(float(effects.max()), abs=1e-6)
    random = result.random
    assert mine.comprehensiveness > random.mean["comprehensiveness"]
    every = [r.comprehensiveness for r in random.runs]
    assert mine.comprehensiveness >= max(every) - 1e-6


def test_random_baseline_is_seeded_and_reproducible(subjects):
    s = subjects["translation"]
    scores = {"zeros": torch.zeros(s.num_tokens)}
    a = faithfulness(s, scores, random_orders=4, seed=7)
    b = faithfulness(s, scores, random_orders=4, seed=7)
    c = faithfulness(s, scores, random_orders=4, seed=8)
    assert a.random.orders == b.random.orders and a.random.mean == b.random.mean
    assert a.random.std == b.random.std
    assert a.random.orders != c.random.orders
    removable = sorted(i for i in range(s.num_tokens) if not bool(s.special[i]))
    for order in a.random.orders:                      # permutations of the removable tokens
        assert sorted(order) == removable
    std = statistics.stdev(r.aopc for r in a.random.runs)
    assert a.random.std["aopc"] == pytest.approx(std)


@pytest.mark.parametrize("fractions, message", [
    ((0.0, 0.5), r"\(0, 1\]"), ((0.1, 1.5), r"\(0, 1\]"), ((-0.2,), r"\(0, 1\]"),
    ((), "at least one"),
    (0.5, "sequence"), (("half",), r"\(0, 1\]"), ((True,), r"\(0, 1\]")])
def test_bad_fractions_are_refused_by_name(subjects, fractions, message):
    s = subjects["classifier"]
    with pytest.raises(ValueError, match=message):
        faithfulness(s, {"x": torch.zeros(s.num_tokens)}, fractions=fractions)


def test_bad_arguments_are_refused_by_name(subjects):
    s = subjects["classifier"]
    zeros = {"x": torch.zeros(s.num_tokens)}
    with pytest.raises(ValueError, match="random_orders"):
        faithfulness(s, zeros, random_orders=0)
    with pytest.raises(ValueError, match="curve"):
        faithfulness(s, zeros, curve="pixels")
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        faithfulness(s, {"x": torch.zeros(3)})
    with pytest.raises(ValueError, match="unknown attribution method"):
        faithfulness(s, "oracle")
    other = subject(s.model, s.ids["text"][:3], tokenizer=None)
    with pytest.raises(ValueError, match="another input"):
        faithfulness(s, Attribution("x", other, torch.zeros(3)))


def test_a_subject_without_removable_tokens_is_refused(models):
    model, tokenizer = models["classifier"]
    s = subject(model, [tokenizer.bos_id, tokenizer.eos_id], tokenizer=tokenizer)
    assert bool(s.special.all())
    with pytest.raises(ValueError, match="no removable tokens"):
        faithfulness(s, {"x": torch.zeros(2)})


def test_no_side_is_ever_emptied(models):
    """Without a tokenizer no token is special: removing all of them keeps the lowest-ranked."""
    model, _ = models["language_model"]
    s = subject(model, [5, 6, 7, 8])
    result = faithfulness(s, {"hand": torch.tensor([4.0, 3.0, 2.0, 1.0])}, fractions=(1.0,))
    last = float(s.score([{"text": s.ids["text"][3:]}])[0])
    full = float(s.score()[0])
    assert result.methods["hand"].comprehensiveness_at == pytest.approx((full - last,))
    assert result.methods["hand"].curve[-1] == pytest.approx(last)


def test_methods_by_name_run_and_are_timed(subjects):
    s = subjects["classifier"]
    result = faithfulness(s, ["grad-input", "grad-attention"], random_orders=2)
    assert set(result.methods) == {"grad-input", "grad-attention"}
    assert all(seconds > 0 for seconds in result.seconds.values())
    table = result.table()
    assert "grad-input" in table and "random" in table
    json.dumps(result.to_dict())


def test_table_averages_over_subjects(subjects, models):
    from tests.explain.conftest import make_subject
    many = [subjects["classifier"], make_subject("classifier", *models["classifier"],
                                                 text="the cat sat on the mat")]
    table = faithfulness_table(many, ["grad-input", "grad-attention"], random_orders=3)
    assert isinstance(table, FaithfulnessTable) and len(table.results) == 2
    for method in ("grad-input", "grad-attention"):
        row = table.rows[method]
        assert row["subjects"] == 2
        for metric in ("comprehensiveness", "sufficiency", "aopc"):
            expected = statistics.fmean(getattr(r.methods[method], metric) for r in table.results)
            assert row[metric] == pytest.approx(expected)
    assert table.random["aopc"] == pytest.approx(
        statistics.fmean(r.random.mean["aopc"] for r in table.results))
    assert table.results[1].random.seed == 1            # seed + the subject's index
    text = table.format()
    assert "grad-attention" in text and "random" in text and "±" in text
    data = json.loads(json.dumps(table.to_dict(subjects=True)))
    assert set(data["rows"]) == {"grad-input", "grad-attention"} and len(data["results"]) == 2
    with pytest.raises(ValueError, match="at least one subject"):
        faithfulness_table([], ["grad-input"])
    skipped = faithfulness_table(many[:1], {"grad-input": {}, "ig": {"steps": 0}},
                                 on_error="skip")
    assert "ig" not in skipped.rows and "steps" in skipped.errors["ig"][0]
