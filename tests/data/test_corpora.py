"""The built-in corpora are deterministic, split cleanly, and have what the model must learn."""

import re

import pytest

from qkv.data.en_zh import en_zh_pairs, en_zh_splits, running_example
from qkv.data.poems import clean_poem, read_poems
from qkv.data.sources import load_corpus
from qkv.data.toy import toy_pairs

LATIN = re.compile(r"[A-Za-z]")


def test_en_zh_is_a_pure_function_of_the_seed():
    assert en_zh_pairs(200, seed=3) == en_zh_pairs(200, seed=3)
    assert en_zh_pairs(200, seed=3) != en_zh_pairs(200, seed=4)


def test_en_zh_splits_are_disjoint_and_sized():
    splits = en_zh_splits(train=2000, valid=100, test=100, seed=0)
    assert [len(splits[k]) for k in ("train", "valid", "test")] == [2000, 100, 100]
    english = [{en for en, _ in splits[k]} for k in ("train", "valid", "test")]
    assert not english[0] & english[1] and not english[0] & english[2] and not english[1] & english[2]


def test_en_zh_translation_is_a_function_of_the_english():
    pairs = en_zh_pairs(3000, seed=0)
    assert len({en for en, _ in pairs}) == len(pairs)                 # one translation each
    assert all(not LATIN.search(zh) for _, zh in pairs)               # fully translated


def test_the_running_example_is_in_the_language():
    assert running_example() == ("I love my dog", "我爱我的狗")


def test_en_zh_reorders_time_and_place_before_the_verb():
    pairs = dict(en_zh_pairs(5000, seed=0))
    # English puts time and place after the object; Chinese puts them before the verb
    moved = [(en, zh) for en, zh in pairs.items()
             if en.rstrip(".").endswith(" at the store yesterday") and " not " not in en]
    assert moved, "the grammar should produce place + time sentences"
    for en, zh in moved:
        assert zh.index("昨天") < zh.index("在商店") < zh.index("了")
    measures = "个只条匹碗杯本份张辆件把台双封"
    counted = [zh for en, zh in pairs.items() if " two " in f" {en.lower()} "]
    assert counted and all(re.search(f"两[{measures}]", zh) for zh in counted)


@pytest.mark.parametrize("task,check", [
    ("copy", lambda s, t: s == t),
    ("reverse", lambda s, t: s.split()[::-1] == t.split()),
    ("sort", lambda s, t: sorted(s.split()) == t.split()),
])
def test_toy_tasks_pair_each_source_with_its_answer(task, check):
    pairs = toy_pairs(task, 50, seed=1)
    assert all(check(s, t) for s, t in pairs)
    assert pairs == toy_pairs(task, 50, seed=1)


def test_toy_tasks_reject_unknown_names():
    with pytest.raises(ValueError, match="copy, reverse, sort"):
        toy_pairs("rotate", 3)


def test_clean_poem_keeps_only_the_verses():
    entry = "\x1b[32m《静夜思》\x1b[m\n\x1b[33m作者：李白\x1b[m\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n"
    assert clean_poem(entry) == "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"


def test_read_poems_names_the_missing_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="fortunes-zh"):
        read_poems(tmp_path / "tang300")


def test_read_poems_from_a_fortune_file(tmp_path):
    path = tmp_path / "poems"
    path.write_text("《甲》\n作者：某\n一二三。\n%\n《乙》\n作者：某\n四五六。\n%\n", encoding="utf-8")
    assert read_poems(path) == ["一二三。", "四五六。"]


def test_the_real_tang_poems_when_installed():
    try:
        poems = read_poems()
    except FileNotFoundError:
        pytest.skip("Debian's fortunes-zh is not installed")
    assert len(poems) > 300 and all("\x1b" not in p and "作者" not in p for p in poems)


def test_load_corpus_holds_out_validation_from_files(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"s{i}\tt{i}\n" for i in range(100)), encoding="utf-8")
    corpus = load_corpus(str(path))
    assert corpus.task == "translation"
    assert len(corpus.train) == 98 and len(corpus.valid) == 2
    assert not set(corpus.train) & set(corpus.valid)


def test_load_corpus_names_what_it_could_not_find():
    with pytest.raises(FileNotFoundError, match="neither a file nor a built-in corpus"):
        load_corpus("no-such-corpus")
