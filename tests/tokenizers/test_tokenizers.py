"""Tokenizers round-trip text, keep the special ids fixed, and survive saving."""

import json

import pytest

from qkv.tokenizers import (
    SPECIAL_TOKENS,
    BPETokenizer,
    CharTokenizer,
    WordTokenizer,
    tokenizer_from_dict,
    train_tokenizer,
)

ENGLISH = ["I love my dog.", "My mother bought two books at the store yesterday.",
           "Does Tom's cat like fish?", "There are three birds in the garden."] * 10
CHINESE = ["我爱我的狗。", "我妈妈昨天在商店买了两本书。", "汤姆的猫喜欢鱼吗？", "花园里有三只鸟。"] * 10


@pytest.mark.parametrize("kind,texts", [("char", CHINESE), ("char", ENGLISH), ("word", ENGLISH),
                                        ("bpe", ENGLISH), ("bpe", CHINESE)])
def test_round_trip_and_saved_form(kind, texts):
    tokenizer = train_tokenizer(kind, texts, vocab_size=200 if kind == "bpe" else None)
    for text in texts[:4]:
        ids = tokenizer.encode(text)
        assert all(0 <= i < tokenizer.vocab_size for i in ids)
        assert tokenizer.special_ids.isdisjoint(ids)
        assert tokenizer.decode(ids) == text
    restored = tokenizer_from_dict(json.loads(json.dumps(tokenizer.to_dict())))
    assert type(restored) is type(tokenizer)
    assert [restored.encode(t) for t in texts] == [tokenizer.encode(t) for t in texts]
    assert [tokenizer.id_to_token(i) for i in range(4)] == list(SPECIAL_TOKENS)
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id) == (0, 1, 2, 3)


def test_decode_drops_special_tokens():
    tokenizer = CharTokenizer.train(CHINESE)
    ids = tokenizer.encode("我爱我的狗")
    assert tokenizer.decode([tokenizer.bos_id, *ids, tokenizer.eos_id, tokenizer.pad_id]) == "我爱我的狗"


def test_unknown_tokens_map_to_unk():
    tokenizer = WordTokenizer.train(ENGLISH)
    assert tokenizer.tokens(tokenizer.encode("I love my zebra")) == ["I", "love", "my", "<unk>"]


def test_word_tokenizer_splits_clitics_and_punctuation():
    tokenizer = WordTokenizer.train(["Tom's dog, my cat."])
    assert tokenizer.tokens(tokenizer.encode("Tom's dog, my cat.")) == \
        ["Tom", "'s", "dog", ",", "my", "cat", "."]


def test_vocabulary_cap_keeps_the_most_frequent():
    tokenizer = CharTokenizer.train(["aaab", "ac"], max_size=5)
    assert tokenizer.vocab_size == 5 and tokenizer.id_to_token(4) == "a"


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="unknown tokenizer kind 'sentencepiece'"):
        tokenizer_from_dict({"kind": "sentencepiece"})
    with pytest.raises(ValueError, match="tokenizer must be one of"):
        train_tokenizer("letters", ["a"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        CharTokenizer.train(["ab"]).id_to_token(99)
    with pytest.raises(ValueError, match="must start with"):
        CharTokenizer(["a", "b"])


def test_bpe_merges_frequent_words():
    tokenizer = BPETokenizer.train(ENGLISH, vocab_size=120)
    assert len(tokenizer.encode("the garden")) < len("the garden")


def test_special_token_names_in_text_are_text():
    """Typing "<eos>" must not end a sentence, nor "<pad>" hide a word from attention."""
    from qkv.tokenizers import BPETokenizer, CharTokenizer, WordTokenizer

    texts = ["my dog <eos> is here", "my cat <pad> sat"] * 10
    for tokenizer in (BPETokenizer.train(texts, vocab_size=80), WordTokenizer.train(texts),
                      CharTokenizer.train(texts)):
        for text in ("my <eos> dog", "my <pad> cat <bos>"):
            ids = tokenizer.encode(text)
            assert not {tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id} & set(ids), (
                tokenizer, ids)


def test_word_tokenizer_splits_chinese_into_characters_and_joins_them_back():
    from qkv.tokenizers import WordTokenizer

    tokenizer = WordTokenizer.train(["我爱我的狗。", "你好吗？"])
    assert tokenizer.tokens(tokenizer.encode("我爱猫。")) == ["我", "爱", "<unk>", "。"]
    assert tokenizer.decode(tokenizer.encode("我的狗好吗？")) == "我的狗好吗？"
