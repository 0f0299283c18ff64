"""Decoding: beam 1 is greedy, the KV cache changes nothing, padding changes nothing."""

import pytest
import torch

import qkv
from qkv.decoding import BeamSearch, Greedy, Sampling, generate, translate

BOS, EOS = 1, 2


@pytest.fixture(scope="module")
def transformer():
    torch.manual_seed(0)
    return qkv.Transformer(qkv.TransformerConfig(vocab_size=20, d_model=32, num_heads=4,
                                                 num_layers=2, d_ff=64, max_len=40)).eval()


@pytest.fixture(scope="module")
def language_model():
    torch.manual_seed(1)
    return qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=32, num_heads=4,
                                                     num_layers=2, d_ff=64, max_len=40)).eval()


SOURCE = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, 0, 0], [11, 12, 13, 2, 0]])


def test_beam_of_one_is_greedy(transformer):
    greedy = translate(transformer, SOURCE, Greedy(), bos_id=BOS, eos_id=EOS, max_len=12)
    assert translate(transformer, SOURCE, BeamSearch(size=1), bos_id=BOS, eos_id=EOS,
                     max_len=12) == greedy


@pytest.mark.parametrize("strategy", [Greedy(), BeamSearch(size=3), Sampling(top_k=5, seed=0),
                                      Sampling(top_p=0.9, temperature=0.7, seed=3)])
def test_cached_and_uncached_decoding_give_the_same_tokens(transformer, language_model, strategy):
    kwargs = dict(bos_id=BOS, eos_id=EOS, max_len=12)
    assert translate(transformer, SOURCE, strategy, use_cache=True, **kwargs) == \
        translate(transformer, SOURCE, strategy, use_cache=False, **kwargs)
    prompts = [[1, 5, 6], [1, 7], [1, 8, 9, 10]]
    assert generate(language_model, prompts, strategy, eos_id=EOS, max_new_tokens=10) == \
        generate(language_model, prompts, strategy, eos_id=EOS, max_new_tokens=10, use_cache=False)


def test_batching_with_padding_changes_nothing(transformer, language_model):
    batched = translate(transformer, SOURCE, bos_id=BOS, eos_id=EOS, max_len=12)
    one_by_one = [translate(transformer, row[row != 0][None], bos_id=BOS, eos_id=EOS, max_len=12)[0]
                  for row in SOURCE]
    assert batched == one_by_one
    prompts = [[1, 5, 6], [1, 7], [1, 8, 9, 10]]                    # left-padded in a batch
    assert generate(language_model, prompts, eos_id=EOS, max_new_tokens=8) == \
        [generate(language_model, [p], eos_id=EOS, max_new_tokens=8)[0] for p in prompts]


def test_greedy_is_the_argmax_of_the_full_forward(transformer):
    out = translate(transformer, SOURCE[:1], bos_id=BOS, eos_id=EOS, max_len=6)[0]
    tokens = torch.tensor([[BOS] + out])
    logits = transformer(SOURCE[:1], tokens[:, :-1])
    expected = logits[0].masked_fill(torch.arange(20) < 2, -float("inf")).argmax(-1)
    assert out[:len(expected)] == expected.tolist()[:len(out)]


def test_beam_search_finds_a_sequence_at_least_as_likely_as_greedy(transformer):
    def log_prob(ids):
        tokens = torch.tensor([[BOS] + ids + [EOS]])
        logits = transformer(SOURCE[:1], tokens[:, :-1]).log_softmax(-1)
        return logits[0].gather(-1, tokens[0, 1:, None]).sum().item()
    greedy = translate(transformer, SOURCE[:1], bos_id=BOS, eos_id=EOS, max_len=8)[0]
    beam = translate(transformer, SOURCE[:1], BeamSearch(size=4, length_penalty=0.0),
                     bos_id=BOS, eos_id=EOS, max_len=8)[0]
    if len(greedy) < 8 and len(beam) < 8:                            # both finished
        assert log_prob(beam) >= log_prob(greedy) - 1e-4


def test_sampling_is_reproducible_and_top_k_one_is_greedy(transformer):
    kwargs = dict(bos_id=BOS, eos_id=EOS, max_len=10)
    assert translate(transformer, SOURCE, Sampling(seed=7), **kwargs) == \
        translate(transformer, SOURCE, Sampling(seed=7), **kwargs)
    assert translate(transformer, SOURCE, Sampling(top_k=1, seed=1), **kwargs) == \
        translate(transformer, SOURCE, Greedy(), **kwargs)


def test_bad_strategies_are_named(transformer, language_model):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        Sampling(temperature=0)
    with pytest.raises(ValueError, match="top_p must be in"):
        Sampling(top_p=1.5)
    with pytest.raises(TypeError, match="translate needs a qkv.Transformer"):
        translate(language_model, SOURCE, bos_id=BOS, eos_id=EOS)
    with pytest.raises(ValueError, match="at least one token"):
        generate(language_model, [[]], eos_id=EOS)


class ScriptedSteps:
    """A "model" whose next-token probabilities are a function of the tokens generated so far:
    P(<eos>) = 0.3 at first, else two equally likely branches, then only poor continuations."""

    V, A, B = 5, 3, 4

    def distribution(self, generated):
        if not generated:
            return {EOS: 0.30, self.A: 0.70}
        if len(generated) == 1:
            return {self.A: 0.5, self.B: 0.5}
        return {EOS: 0.05, self.A: 0.475, self.B: 0.475}

    def logits(self, tokens):
        out = torch.full((tokens.shape[0], self.V), -1e9)
        for row, ids in enumerate(tokens.tolist()):
            generated = ids[1:]
            if EOS in generated:
                generated = generated[:generated.index(EOS)]
            for token, p in self.distribution(generated).items():
                out[row, token] = torch.tensor(p).log()
        return out

    def select(self, rows):
        pass


@pytest.mark.parametrize("length_penalty", [0.0, 0.6])
def test_beam_search_keeps_a_hypothesis_that_ended_early(length_penalty):
    """Ending at once (p = 0.3) beats every longer sequence (p ≤ 0.7 · 0.5 · 0.05); a beam search
    that dropped ended hypotheses once live beams outscored them would return a long one."""
    from qkv.decoding.search import _search

    prefix = torch.tensor([[BOS]])
    out = _search(ScriptedSteps(), prefix, BeamSearch(2, length_penalty), bos_id=BOS,
                  eos_id=EOS, pad_id=0, limits=[6])
    assert out == [[]]
    greedy = _search(ScriptedSteps(), prefix, Greedy(), bos_id=BOS, eos_id=EOS, pad_id=0,
                     limits=[6])
    assert greedy == [[3, 3, 3, 3, 3, 3]]                               # greedy never ends


def test_length_limits_are_per_sentence_not_per_batch(transformer, language_model):
    """The default 2·S + 10 counts each source's own tokens; a long neighbour changes nothing."""
    long, short = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 2], [5, 2]
    batch = torch.tensor([long, short + [0] * 9])
    for strategy in (Greedy(), BeamSearch(size=3)):
        together = translate(transformer, batch, strategy, bos_id=BOS, eos_id=EOS)
        alone = [translate(transformer, torch.tensor([row]), strategy, bos_id=BOS, eos_id=EOS)[0]
                 for row in (long, short)]
        assert together == alone
    prompts = [[1] + [5] * 30, [1, 6]]
    together = generate(language_model, prompts, eos_id=None, max_new_tokens=20)
    assert [len(ids) for ids in together] == [9, 20]                    # 40 - 31 = 9 left


def test_generated_text_keeps_the_word_boundary_after_the_prompt():
    from qkv.decoding.text import generate_texts
    from qkv.tokenizers import BPETokenizer, WordTokenizer

    texts = ["the cat sat on the mat", "a big dog ran to the cat", "the dog sat"] * 20
    for tokenizer in (WordTokenizer.train(texts), BPETokenizer.train(texts, vocab_size=60)):
        torch.manual_seed(0)
        lm = qkv.LanguageModel(qkv.LanguageModelConfig(
            vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2, num_layers=1, d_ff=32)).eval()
        prompts = ["the cat", "a big"] * 4
        out = generate_texts(lm, tokenizer, prompts, Sampling(seed=3), max_new_tokens=4)
        assert any(out), out
        if isinstance(tokenizer, WordTokenizer):          # every new token is a new word
            assert all(c == "" or c.startswith(" ") for c in out), out
        else:                                             # BPE may also extend the last word
            assert any(c.startswith(" ") for c in out), out


def test_seeded_sampling_draws_differently_in_each_batch(language_model):
    from qkv.decoding.text import generate_texts
    from qkv.tokenizers import CharTokenizer

    tokenizer = CharTokenizer.train(["abcdefghijklmnop"])
    assert tokenizer.vocab_size == 20 == language_model.config.vocab_size
    prompts = ["a"] * 6
    out = generate_texts(language_model, tokenizer, prompts, Sampling(seed=7), batch_size=3,
                         max_new_tokens=8)
    assert out[:3] != out[3:]
    assert out == generate_texts(language_model, tokenizer, prompts, Sampling(seed=7),
                                 batch_size=3, max_new_tokens=8)


def test_top_k_keeps_exactly_k_tokens_even_with_ties():
    from qkv.decoding.search import _sample

    logits = torch.tensor([[2.0, 2.0, 2.0, 0.0]]).expand(200, 4)
    drawn = _sample(logits, Sampling(top_k=1, seed=0), torch.Generator().manual_seed(0))
    assert drawn.unique().numel() == 1
