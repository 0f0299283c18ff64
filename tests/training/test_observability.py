"""Training you can watch and bound: TensorBoard event files that hold exactly metrics.jsonl's
numbers (resumed runs too, with no step twice), curves.png, and a time budget that stops early
with a checkpoint that loads and resumes."""

import itertools
import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import qkv
from qkv.data.toy import toy_pairs
from qkv.training.trainer import TrainConfig, train
from tests.training.test_training import reverse_setup

PAIRS = toy_pairs("reverse", 200, seed=3, min_len=3, max_len=6)
CONFIG = TrainConfig(steps=10, max_tokens=200, warmup_steps=5, log_every=2, eval_every=3,
                     save_every=4)


def fresh():
    _, task, model = reverse_setup(d_model=16, dropout=0.1)
    return task, model, task.encode(PAIRS), task.encode(PAIRS[:10])


def jsonl(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def scalars(run) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the run's TensorBoard event files, as TensorBoard itself reads them
    (all event files of the folder, purges after a restart applied)."""
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]}


def expected_scalars(records) -> dict[str, list[tuple[int, float]]]:
    expected: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        for name, value in record.items():
            if name not in ("step", "split"):
                expected.setdefault(f"{record['split']}/{name}", []).append((record["step"], value))
    return expected


def assert_same(actual, expected):
    assert actual.keys() == expected.keys()
    for tag in expected:
        assert [step for step, _ in actual[tag]] == [step for step, _ in expected[tag]], tag
        # event files hold float32
        assert [v for _, v in actual[tag]] == pytest.approx([v for _, v in expected[tag]],
                                                            rel=1e-6), tag


def test_event_files_hold_the_numbers_of_metrics_jsonl(tmp_path):
    task, model, train_examples, valid = fresh()
    train(model, task, train_examples, valid, CONFIG, output=tmp_path, progress=False,
          extra_validation=lambda model: {"bleu": 12.5})
    records = jsonl(tmp_path)
    assert [r["step"] for r in records if r["split"] == "train"] == [2, 4, 6, 8, 10]
    assert [r["step"] for r in records if r["split"] == "valid"] == [3, 6, 9, 10]
    actual = scalars(tmp_path)
    assert {"train/loss", "train/ppl", "train/lr", "train/tokens_per_s", "valid/loss",
            "valid/ppl", "valid/bleu"} == actual.keys()
    assert_same(actual, expected_scalars(records))
    assert actual["valid/bleu"] == [(3, 12.5), (6, 12.5), (9, 12.5), (10, 12.5)]
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_a_run_killed_after_its_checkpoint_resumes_with_no_step_logged_twice(tmp_path):
    calls = itertools.count()

    def dies_at_the_second_validation(model):
        if next(calls) == 1:                        # step 6: after the step-4 checkpoint
            raise KeyboardInterrupt
        return {}

    task, model, train_examples, valid = fresh()
    with pytest.raises(KeyboardInterrupt):
        train(model, task, train_examples, valid, CONFIG, output=tmp_path, progress=False,
              extra_validation=dies_at_the_second_validation)
    assert qkv.load_checkpoint(tmp_path).step == 4
    assert [r["step"] for r in jsonl(tmp_path)] == [2, 3, 4, 6]     # train 6 is past the checkpoint

    task, model, train_examples, valid = fresh()
    train(model, task, train_examples, valid, CONFIG, output=tmp_path, progress=False,
          resume=True)
    records = jsonl(tmp_path)
    assert [(r["step"], r["split"]) for r in records] == [
        (2, "train"), (3, "valid"), (4, "train"), (6, "train"), (6, "valid"), (8, "train"),
        (9, "valid"), (10, "train"), (10, "valid")]
    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 2
    assert_same(scalars(tmp_path), expected_scalars(records))


def test_the_time_budget_stops_early_with_a_checkpoint_that_resumes(tmp_path):
    task, model, train_examples, valid = fresh()
    clock = itertools.count()                       # one second per reading: once at the start,
    config = TrainConfig(**{**CONFIG.to_dict(), "steps": 100, "max_time": 5.0})   # once a step
    result = train(model, task, train_examples, valid, config, output=tmp_path, progress=False,
                   clock=lambda: float(next(clock)))
    assert (result.step, result.stopped) == (5, "max_time")
    assert "time budget" in result.message and "step 5 of 100" in result.message
    checkpoint = qkv.load_checkpoint(tmp_path)
    assert checkpoint.step == 5 and checkpoint.metadata["training"]["max_time"] == 5.0
    assert checkpoint.metadata["metrics"] == result.metrics
    records = jsonl(tmp_path)
    assert [(r["step"], r["split"]) for r in records[-2:]] == [(5, "train"), (5, "valid")]
    assert records[-1] == {"step": 5, "split": "valid", **result.metrics}

    task, model, train_examples, valid = fresh()
    more = TrainConfig(**{**config.to_dict(), "steps": 8, "max_time": None})
    result = train(model, task, train_examples, valid, more, output=tmp_path, progress=False,
                   resume=True)
    assert (result.step, result.stopped) == (8, "steps")
    assert qkv.load_checkpoint(tmp_path).step == 8


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), "30m"])
def test_max_time_must_be_positive_seconds(bad):
    with pytest.raises(ValueError, match=f"max_time must be a positive number of seconds or "
                                         f"None, got {bad!r}"):
        TrainConfig(max_time=bad)
