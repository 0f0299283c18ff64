"""Where training data comes from: a built-in corpus by name, or your own files.

``load_corpus("en-zh")`` (the generated English→Chinese corpus), ``"copy"``, ``"reverse"``,
``"sort"`` (toy tasks), ``"poems"`` (Tang poems, a language-model corpus), ``"languages"``
(language identification on the system's gettext catalogues, a classification corpus), or a
path: a ``.tsv`` file (or a file plus ``target=`` its aligned translations) is parallel text —
or, with ``task="classification"``, ``text<TAB>label`` lines; any other text file is
language-model text, one example per line. Files without a validation set get one held out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qkv.data.en_zh import en_zh_splits
from qkv.data.poems import read_poems
from qkv.data.text import read_labelled, read_lines, read_parallel
from qkv.data.toy import TOY_TASKS, toy_pairs

__all__ = ["Corpus", "load_corpus", "corpus_from_description", "BUILTIN_CORPORA"]

BUILTIN_CORPORA = ("en-zh", *TOY_TASKS, "poems", "languages")
TASKS = ("translation", "language_model", "classification")


@dataclass
class Corpus:
    """Train / valid / test examples: (source, target) pairs for ``task == "translation"``,
    texts for ``task == "language_model"``, (text, label) pairs for ``"classification"``;
    ``description`` says how to load it again."""

    task: str
    train: list
    valid: list
    test: list
    description: dict[str, Any] = field(default_factory=dict)


def _hold_out(examples: list, seed: int, fraction: float = 0.02) -> tuple[list, list]:
    """Split off a seeded random validation set: 2% of the examples, 1 to 1,000 of them."""
    if len(examples) < 2:
        raise ValueError(f"need at least 2 examples to hold out a validation set, got {len(examples)}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    count = min(1000, max(1, int(len(examples) * fraction)))
    held = set(order[:count])
    return ([e for i, e in enumerate(examples) if i not in held],
            [e for i, e in enumerate(examples) if i in held])


def load_corpus(source: str, *, target: str | None = None, valid: str | None = None,
                test: str | None = None, size: int | None = None, seed: int = 0,
                task: str | None = None) -> Corpus:
    """Load a built-in corpus by name, or files.

    Args:
        source: a name from :data:`BUILTIN_CORPORA`, or a path.
        target: aligned target file for ``source`` (parallel text in two files).
        valid, test: held-out files of the same kind; without ``valid``, 2% is held out.
        size: training examples of a generated corpus (en-zh 20,000, toy tasks 10,000), or the
            most training examples of ``"languages"`` (spread evenly over the languages).
        seed: for the generated corpora and the held-out split.
        task: what a file holds, one of :data:`TASKS`; default: ``"translation"`` for a
            ``.tsv`` file or two aligned files, else ``"language_model"``. A built-in corpus has
            its own.

    Example:
        >>> corpus = load_corpus("reverse", size=100)
        >>> corpus.task, len(corpus.train), corpus.description["name"]
        ('translation', 100, 'reverse')
    """
    if size is not None and size < 1:
        raise ValueError(f"size must be a positive number of examples, got {size}")
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if source in BUILTIN_CORPORA:
        corpus = _builtin(source, size, seed)
        if task is not None and task != corpus.task:
            raise ValueError(f"the built-in corpus {source!r} is a {corpus.task} corpus, not "
                             f"{task}")
        return corpus
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{source!r} is neither a file nor a built-in corpus "
                                f"({', '.join(BUILTIN_CORPORA)})")
    if task is None:
        task = "translation" if target is not None or path.suffix.lower() == ".tsv" \
            else "language_model"
    if target is not None and task != "translation":
        raise ValueError(f"an aligned target file is parallel text, for translation, not {task}")
    examples = (read_parallel(path, target) if task == "translation" else
                read_labelled(path) if task == "classification" else read_lines(path))
    known = {label for _, label in examples} if task == "classification" else None

    def read(file: Path) -> list:
        """A held-out file; a classifier's may only use the labels of the training data."""
        return (read_parallel(file) if task == "translation" else
                read_labelled(file, known) if task == "classification" else read_lines(file))

    if valid is not None:
        valid_examples = read(Path(valid))
    else:
        examples, valid_examples = _hold_out(examples, seed)
    return Corpus(task, examples, valid_examples, read(Path(test)) if test is not None else [],
                  {"path": _resolved(source), "target": _resolved(target),
                   "valid": _resolved(valid), "test": _resolved(test), "seed": seed,
                   "task": task})


def _builtin(source: str, size: int | None, seed: int) -> Corpus:
    if source == "en-zh":
        splits = en_zh_splits(train=size or 20000, seed=seed)
        return Corpus("translation", splits["train"], splits["valid"], splits["test"],
                      {"name": "en-zh", "size": size or 20000, "seed": seed})
    if source in TOY_TASKS:
        return Corpus("translation", toy_pairs(source, size or 10000, seed=seed),
                      toy_pairs(source, 200, seed=seed + 1), toy_pairs(source, 500, seed=seed + 2),
                      {"name": source, "size": size or 10000, "seed": seed})
    if source == "poems":
        poems = read_poems()
        order = list(range(len(poems)))
        random.Random(seed).shuffle(order)
        shuffled = [poems[i] for i in order]
        return Corpus("language_model", shuffled[20:], shuffled[:10], shuffled[10:20],
                      {"name": "poems", "seed": seed})
    from qkv.data.languages import LANGUAGES, language_splits
    per_language = None if size is None else -(-size // len(LANGUAGES))      # ceil
    splits = language_splits(seed=seed, **({} if per_language is None
                                           else {"max_per_language": per_language}))
    return Corpus("classification", splits.train, splits.valid, splits.test,
                  {"name": "languages", "size": size, "seed": seed,
                   "test_packages": splits.packages["test"]})


def _resolved(file: str | None) -> str | None:
    """An absolute path, so that a saved description works from any working directory."""
    return None if file is None else str(Path(file).resolve())


def corpus_from_description(description: dict[str, Any]) -> Corpus:
    """The corpus again, from the ``description`` of a :class:`Corpus` (saved with every
    checkpoint): same examples, same held-out split."""
    if "name" in description:
        return load_corpus(description["name"], size=description.get("size"),
                           seed=description.get("seed", 0))
    if "path" not in description:
        raise ValueError(f"not a corpus description: {description!r}")
    return load_corpus(description["path"], target=description.get("target"),
                       valid=description.get("valid"), test=description.get("test"),
                       seed=description.get("seed", 0), task=description.get("task"))
