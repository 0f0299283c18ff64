"""qkv's tokenizers as tokenizer.json: transformers' AutoTokenizer gives the ids qkv gives (and
the special tokens the task adds); a pretrained tokenizer is written back as it came."""

import json

import pytest

from qkv.export.tokenizer import to_tokenizers, write_tokenizer
from qkv.pretrained import HuggingFaceTokenizer

from .conftest import TEXTS

transformers = pytest.importorskip("transformers")

SAMPLES = [*TEXTS[:5], "unseen words: zebra, 42 and ünïcödé", "x² ½ e\u0301 snake_case",
           "tab\there\nnew line \x1c sep", "  leading and  double  spaces ",
           "中文，日本語のテキスト"]


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_transformers_gives_qkvs_ids(kind, tokenizers, tmp_path):
    ours = tokenizers[kind]
    write_tokenizer(tmp_path, ours, template="classify", max_length=64)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    for text in SAMPLES:
        content = ours.encode(text)
        assert theirs(text, add_special_tokens=False)["input_ids"] == content, text
        assert theirs(text)["input_ids"] == [ours.bos_id, *content, ours.eos_id]
    assert (theirs.pad_token_id, theirs.unk_token_id) == (ours.pad_id, ours.unk_id)
    assert theirs.model_max_length == 64


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_decoding_gives_qkvs_text(kind, tokenizers):
    ours = tokenizers[kind]
    theirs = to_tokenizers(ours, "lm")
    for text in SAMPLES[:5]:
        ids = theirs.encode(text).ids                                  # <bos> x
        assert ids[0] == ours.bos_id
        assert theirs.decode(ids, skip_special_tokens=True) == ours.decode(ids)


def test_a_pretrained_tokenizer_is_written_back_as_it_came(tokenizers):
    from tokenizers import Tokenizer as Raw

    raw = to_tokenizers(tokenizers["bpe"], "classify")          # a tokenizer.json with [CLS]…
    ours = HuggingFaceTokenizer(Raw.from_str(raw.to_str()), bos_id=1, eos_id=2, pad_id=0)
    written = to_tokenizers(ours, "lm")                         # its own post-processor stays
    assert json.loads(written.to_str()) == json.loads(raw.to_str())
    assert written.encode(TEXTS[1]).ids == raw.encode(TEXTS[1]).ids
