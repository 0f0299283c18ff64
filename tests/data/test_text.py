"""Reading parallel and plain text files, with errors that name the file and line."""

import pytest

from qkv.data.text import read_lines, read_parallel


def test_tsv_round_trip(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_text("I love my dog\t我爱我的狗\nhello\t你好\n", encoding="utf-8")
    assert read_parallel(path) == [("I love my dog", "我爱我的狗"), ("hello", "你好")]


def test_tsv_line_without_a_tab_is_named(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_text("one\tuno\ntwo dos\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"a.tsv:2: expected 'source<TAB>target', found 1"):
        read_parallel(path)


def test_aligned_files(tmp_path):
    (tmp_path / "src").write_text("a\nb\n", encoding="utf-8")
    (tmp_path / "tgt").write_text("x\ny\n", encoding="utf-8")
    assert read_parallel(tmp_path / "src", tmp_path / "tgt") == [("a", "x"), ("b", "y")]
    (tmp_path / "tgt").write_text("x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="has 2 lines but .* has 1"):
        read_parallel(tmp_path / "src", tmp_path / "tgt")


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_lines(tmp_path / "missing.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        read_lines(tmp_path / "latin1.txt")
