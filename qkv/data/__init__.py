"""Data, all of it offline: your parallel text (TSV or two aligned files) and plain text, the
built-in English→Chinese grammar corpus, the toy tasks (copy, reverse, sort), Tang poems from
Debian's fortunes-zh, and token-count batching."""

from qkv.data.batching import token_batches
from qkv.data.en_zh import en_zh_pairs, en_zh_splits, running_example
from qkv.data.poems import read_poems
from qkv.data.sources import BUILTIN_CORPORA, Corpus, load_corpus
from qkv.data.text import read_lines, read_parallel
from qkv.data.toy import TOY_TASKS, toy_pairs

__all__ = ["BUILTIN_CORPORA", "Corpus", "TOY_TASKS", "en_zh_pairs", "en_zh_splits", "load_corpus",
           "read_lines", "read_parallel", "read_poems", "running_example", "token_batches",
           "toy_pairs"]
