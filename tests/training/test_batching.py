"""Token-count batches: every example once per epoch, within budget, reproducible by epoch."""

import random

from qkv.data.batching import token_batches

LENGTHS = [random.Random(0).randint(1, 40) for _ in range(500)]


def test_every_example_once_and_within_budget():
    batches = token_batches(LENGTHS, 200, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
    for batch in batches:
        assert len(batch) == 1 or max(LENGTHS[i] for i in batch) * len(batch) <= 200


def test_batches_group_similar_lengths():
    batches = token_batches(LENGTHS, 200, seed=1)
    padded = sum(max(LENGTHS[i] for i in b) * len(b) for b in batches)
    assert padded < 1.15 * sum(LENGTHS)


def test_order_is_a_function_of_seed_and_epoch():
    assert token_batches(LENGTHS, 200, seed=1, epoch=2) == token_batches(LENGTHS, 200, seed=1, epoch=2)
    assert token_batches(LENGTHS, 200, seed=1, epoch=2) != token_batches(LENGTHS, 200, seed=1, epoch=3)


def test_an_example_longer_than_the_budget_gets_its_own_batch():
    assert token_batches([5, 50, 5], 20, seed=None) == [[0, 2], [1]]
