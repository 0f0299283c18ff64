"""Decoding controls: no repeated n-gram, repetition penalty, minimum length, K hypotheses per
input. The pieces against brute-force references; the searches on tiny random models (their
parity with ``transformers`` is in tests/pretrained/test_*_controls.py)."""

import dataclasses
import math
import random

import pytest
import torch

import qkv
from qkv.decoding import BeamSearch, Greedy, Sampling, generate, translate
from qkv.decoding.controls import ngram_bans, penalize_repetition, process_scores

BOS, EOS, V = 1, 2, 20
SOURCE = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, 0, 0], [11, 12, 13, 2, 0]])
PROMPTS = [[1, 5, 6], [1, 7], [1, 8, 9, 10]]


@pytest.fixture(scope="module")
def transformer():
    torch.manual_seed(0)
    return qkv.Transformer(qkv.TransformerConfig(vocab_size=V, d_model=32, num_heads=4,
                                                 num_layers=2, d_ff=64, max_len=40)).eval()


@pytest.fixture(scope="module")
def language_model():
    torch.manual_seed(1)
    return qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=V, d_model=32, num_heads=4,
                                                     num_layers=2, d_ff=64, max_len=40)).eval()


def repeated_ngrams(ids, n):
    """The n-grams that occur more than once in ``ids`` (a brute-force count)."""
    grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
    return {g for g in grams if grams.count(g) > 1}


# -- the pieces against brute force ----------------------------------------------------------------

def test_ngram_bans_equal_a_brute_force_reference():
    """c is banned iff the n-gram it would complete already occurs among the row's real tokens."""
    rng = random.Random(0)
    for _ in range(300):
        n, t = rng.randint(1, 4), rng.randint(1, 12)
        rows = [[rng.randrange(4) for _ in range(t)] for _ in range(3)]     # few ids: repeats
        start = [rng.randrange(t) for _ in rows]
        got = ngram_bans(torch.tensor(rows), n, 4, torch.tensor(start)).tolist()
        for row, first, bans in zip(rows, start, got):
            for c in range(4):
                ids = row[first:] + [c]
                again = len(ids) >= n and any(ids[i:i + n] == ids[-n:]
                                              for i in range(len(ids) - n))
                assert bans[c] == again, (row, first, n, c)


def test_penalize_repetition_divides_positive_and_multiplies_negative_scores():
    scores = torch.tensor([[3.0, -3.0, 3.0, -3.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    tokens = torch.tensor([[0, 1, 1, 4], [2, 2, 2, 3]])
    got = penalize_repetition(scores, tokens, 2.0, start=torch.tensor([0, 2]))   # row 1: 2 3
    assert got.tolist() == [[1.5, -6.0, 3.0, -3.0, 0.0], [1.0, 1.0, 0.5, 0.5, 1.0]]
    assert penalize_repetition(scores, tokens, 1.0).equal(scores)


def test_process_scores_bans_eos_until_min_length_and_leaves_its_input_alone():
    scores = torch.zeros(2, 6)
    tokens = torch.tensor([[1, 3], [1, 4]])
    strategy = Greedy(min_length=2)
    for new_tokens, eos_allowed in ((0, False), (1, False), (2, True)):
        out = process_scores(scores, tokens, strategy, new_tokens=new_tokens, eos_id=EOS,
                             banned=[0, BOS])
        assert (out[:, EOS] == 0).all().item() is eos_allowed
        assert (out[:, [0, BOS]] == -math.inf).all() and (out[:, 3:] == 0).all()
    assert (scores == 0).all()


# -- the searches ----------------------------------------------------------------------------------

CONTROLLED = [Greedy(no_repeat_ngram_size=2, repetition_penalty=1.3, min_length=3),
              BeamSearch(3, num_return=2, no_repeat_ngram_size=2, min_length=2),
              BeamSearch(3, repetition_penalty=0.8),
              Sampling(seed=0, num_return=3, no_repeat_ngram_size=2, repetition_penalty=1.2),
              Sampling(top_k=5, seed=3, min_length=4)]


@pytest.mark.parametrize("strategy", CONTROLLED)
def test_cached_and_uncached_decoding_agree_with_the_controls_on(transformer, language_model,
                                                                 strategy):
    kwargs = dict(bos_id=BOS, eos_id=EOS, max_len=12)
    assert translate(transformer, SOURCE, strategy, use_cache=True, **kwargs) == \
        translate(transformer, SOURCE, strategy, use_cache=False, **kwargs)
    assert generate(language_model, PROMPTS, strategy, eos_id=EOS, max_new_tokens=10) == \
        generate(language_model, PROMPTS, strategy, eos_id=EOS, max_new_tokens=10,
                 use_cache=False)


@pytest.mark.parametrize("strategy", CONTROLLED[:3])
def test_padding_changes_nothing_with_the_controls_on(language_model, strategy):
    """Left padding is not part of a prompt: n-grams and penalties ignore it."""
    assert generate(language_model, PROMPTS, strategy, eos_id=EOS, max_new_tokens=8) == \
        [generate(language_model, [p], strategy, eos_id=EOS, max_new_tokens=8)[0]
         for p in PROMPTS]


@pytest.mark.parametrize("strategy", [Greedy(no_repeat_ngram_size=2),
                                      BeamSearch(4, num_return=4, no_repeat_ngram_size=2),
                                      Sampling(temperature=2.0, num_return=5, seed=0,
                                               no_repeat_ngram_size=2)])
def test_no_ngram_occurs_twice(transformer, language_model, strategy):
    """In the prompt and its continuation (as transformers counts), and in a translation; the
    same search without the control does repeat one, so the test cannot pass vacuously."""
    def hypotheses(result):
        return [h for per_input in result for h in
                (per_input if strategy.num_return > 1 else [per_input])]

    plain = dataclasses.replace(strategy, no_repeat_ngram_size=None)
    lm = dict(eos_id=None, max_new_tokens=30)
    generated = hypotheses(generate(language_model, PROMPTS, strategy, **lm))
    prompts = [p for p in PROMPTS for _ in range(strategy.num_return)]
    assert all(len(ids) == 30 for ids in generated)
    assert not any(repeated_ngrams(p + ids, 2) for p, ids in zip(prompts, generated))
    assert any(repeated_ngrams(p + ids, 2) for p, ids in
               zip(prompts, hypotheses(generate(language_model, PROMPTS, plain, **lm))))
    mt = dict(bos_id=BOS, eos_id=EOS, max_len=20)
    assert not any(repeated_ngrams(ids, 2)
                   for ids in hypotheses(translate(transformer, SOURCE, strategy, **mt)))
    assert any(repeated_ngrams(ids, 2)
               for ids in hypotheses(translate(transformer, SOURCE, plain, **mt)))


@pytest.mark.parametrize("strategy", [Greedy(), BeamSearch(3, length_penalty=0.0),
                                      Sampling(seed=1)])
def test_min_length_holds_eos_back(language_model, strategy):
    """The end token is the one the search picks first, so without min_length it ends at once."""
    first = generate(language_model, PROMPTS, Greedy(), eos_id=None, max_new_tokens=1)
    for prompt, [eos] in zip(PROMPTS, first):
        plain = generate(language_model, [prompt], Greedy(), eos_id=eos, max_new_tokens=10)[0]
        assert plain == []
        held = dataclasses.replace(strategy, min_length=5)
        out = generate(language_model, [prompt], held, eos_id=eos, max_new_tokens=10)[0]
        assert len(out) >= 5 and eos not in out[:5]


def test_a_row_with_every_token_banned_ends_there(language_model):
    """1-grams over 20 ids: after the 18 that may be generated (not pad, not bos) nothing is left;
    the row ends instead of sampling from nothing."""
    for strategy in (Greedy(no_repeat_ngram_size=1), Sampling(seed=0, no_repeat_ngram_size=1),
                     BeamSearch(2, no_repeat_ngram_size=1)):
        out = generate(language_model, [[1]], strategy, eos_id=None, max_new_tokens=30)[0]
        assert len(out) == len(set(out)) == V - 2 and {0, 1}.isdisjoint(out)


# -- K hypotheses per input ------------------------------------------------------------------------

def test_beam_search_returns_its_k_best_finished_hypotheses_best_first(transformer):
    def log_prob(row, ids):                 # a hypothesis at the length limit has no <eos>
        tokens = torch.tensor([[BOS] + ids + ([EOS] if len(ids) < 30 else [])])
        logits = transformer(SOURCE[row:row + 1], tokens[:, :-1]).log_softmax(-1)
        return logits[0].gather(-1, tokens[0, 1:, None]).sum().item()

    kwargs = dict(bos_id=BOS, eos_id=EOS, max_len=30)
    best = translate(transformer, SOURCE, BeamSearch(4, length_penalty=0.0), **kwargs)
    four = translate(transformer, SOURCE, BeamSearch(4, length_penalty=0.0, num_return=4),
                     **kwargs)
    assert [len(h) for h in four] == [4, 4, 4] and [h[0] for h in four] == best
    for row, hypotheses in enumerate(four):
        assert len({tuple(h) for h in hypotheses}) == 4
        scores = [log_prob(row, h) for h in hypotheses]
        assert all(a >= b - 1e-5 for a, b in zip(scores, scores[1:])), scores


def test_k_samples_are_reproducible_and_differ_from_each_other(transformer, language_model):
    hot = Sampling(temperature=3.0, seed=5, num_return=4)
    samples = generate(language_model, PROMPTS, hot, eos_id=EOS, max_new_tokens=8)
    assert [len(s) for s in samples] == [4, 4, 4]
    assert all(len({tuple(ids) for ids in per_prompt}) == 4 for per_prompt in samples)
    assert samples == generate(language_model, PROMPTS, hot, eos_id=EOS, max_new_tokens=8)
    translations = translate(transformer, SOURCE, hot, bos_id=BOS, eos_id=EOS, max_len=8)
    assert all(len({tuple(ids) for ids in per_source}) == 4 for per_source in translations)


def test_texts_come_back_as_k_strings_per_input(transformer, language_model):
    from qkv.decoding.text import generate_texts, translate_texts
    from qkv.tokenizers import CharTokenizer

    tokenizer = CharTokenizer.train(["abcdefghijklmnop"])
    assert tokenizer.vocab_size == V
    texts = ["abc", "de", "fghij"]
    out = generate_texts(language_model, tokenizer, texts, BeamSearch(3, num_return=2),
                         max_new_tokens=5, batch_size=2)
    assert [len(o) for o in out] == [2, 2, 2] and all(isinstance(s, str) for o in out for s in o)
    assert [o[0] for o in out] == generate_texts(language_model, tokenizer, texts,
                                                 BeamSearch(3), max_new_tokens=5)
    out = translate_texts(transformer, tokenizer, tokenizer, texts,
                          Sampling(seed=0, num_return=3), max_len=6)
    assert [len(o) for o in out] == [3, 3, 3]


# -- options ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, error, message", [
    (lambda: Greedy(no_repeat_ngram_size=0), ValueError,
     "no_repeat_ngram_size must be >= 1, got 0"),
    (lambda: Greedy(no_repeat_ngram_size=2.0), TypeError,
     "no_repeat_ngram_size must be an integer, got float 2.0"),
    (lambda: Greedy(repetition_penalty=0.0), ValueError,
     r"repetition_penalty must be a finite number > 0, got 0.0"),
    (lambda: BeamSearch(repetition_penalty=math.nan), ValueError, "repetition_penalty must be"),
    (lambda: Sampling(repetition_penalty="1.2"), TypeError,
     "repetition_penalty must be a number > 0, got str '1.2'"),
    (lambda: Greedy(min_length=-1), ValueError, "min_length must be >= 0, got -1"),
    (lambda: BeamSearch(3, num_return=4), ValueError,
     r"num_return must be <= size \(the beams that return\), got num_return=4 with size=3"),
    (lambda: Sampling(num_return=0), ValueError, "num_return must be >= 1, got 0"),
    (lambda: Greedy(num_return=2), TypeError, "num_return"),
])
def test_bad_controls_name_the_field_the_expected_and_the_actual(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_strategies_keep_their_positional_arguments():
    assert BeamSearch(2, 0.0) == BeamSearch(size=2, length_penalty=0.0)
    assert Sampling(0.7, 5, 0.9, 1).top_p == 0.9
    assert Greedy().num_return == BeamSearch().num_return == Sampling().num_return == 1


@pytest.mark.parametrize("flags, message", [
    (["--no-repeat-ngram", "0"], "--no-repeat-ngram must be at least 1, got 0"),
    (["--repetition-penalty", "-1"], r"--repetition-penalty must be a number > 0 \(1: none\), "
                                     r"got -1.0"),
    (["--min-length", "-2"], "--min-length must be at least 0, got -2"),
    (["--num-return", "0"], "--num-return must be at least 1, got 0"),
    (["--num-return", "2"], "--num-return 2 needs --beam 2 or more, or --sample; got greedy"),
    (["--num-return", "5", "--beam", "4"], "--num-return 5 needs --beam 5 or more, or --sample; "
                                           "got --beam 4"),
])
@pytest.mark.parametrize("command", ["generate", "translate"])
def test_bad_decoding_flags_are_one_line_errors(command, flags, message, tmp_path):
    """Checked before the model is loaded (here there is none)."""
    from qkv.cli.main import main

    with pytest.raises(SystemExit, match=message) as error:
        main([command, str(tmp_path / "no-model"), "some text", *flags])
    assert "\n" not in str(error.value.code)


def test_evaluate_takes_the_controls_but_not_num_return():
    from qkv.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["evaluate", "RUN", "--no-repeat-ngram", "3", "--min-length", "2"])
    assert (args.no_repeat_ngram, args.min_length) == (3, 2)
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "RUN", "--num-return", "2"])


def test_print_outputs_one_line_each_or_ranked_groups(capsys):
    from qkv.cli._decoding import print_outputs

    print_outputs(["a b", ""])
    assert capsys.readouterr().out == "a b\n\n"
    print_outputs([["a b", "a"], ["c", ""]])
    assert capsys.readouterr().out == "1\ta b\n2\ta\n\n1\tc\n2\t\n"
