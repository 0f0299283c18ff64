"""Reading your own text: parallel text as TSV or two aligned files, labelled text as
``text<TAB>label`` TSV, plain text one example a line."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

__all__ = ["read_parallel", "read_labelled", "read_lines", "read_text_lines"]


def read_text_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file (a leading BOM dropped); errors name the file, and a
    binary file (one with NUL bytes, even if valid UTF-8) is refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")                # a leading BOM is dropped
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error})") from None
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise ValueError(f"{path}:{line}: a NUL byte: binary data, not UTF-8 text")
    return text.splitlines()


def read_parallel(path: str | Path, target_path: str | Path | None = None) -> list[tuple[str, str]]:
    """Sentence pairs from a TSV file (``source<TAB>target`` per line), or from two files whose
    lines are aligned (``path`` the sources, ``target_path`` the targets). Empty lines are skipped.

    Raises:
        ValueError: naming the file and line of a line without exactly one tab, or the two line
            counts when the files are not aligned.

    Example:
        >>> import tempfile, pathlib
        >>> tsv = pathlib.Path(tempfile.mkdtemp()) / "pairs.tsv"
        >>> _ = tsv.write_text("I love my dog\\t我爱我的狗\\n\\nhello\\t你好\\n", encoding="utf-8")
        >>> read_parallel(tsv)
        [('I love my dog', '我爱我的狗'), ('hello', '你好')]
    """
    if target_path is not None:
        sources, targets = read_text_lines(path), read_text_lines(target_path)
        if len(sources) != len(targets):
            raise ValueError(f"{path} has {len(sources)} lines but {target_path} has "
                             f"{len(targets)}; aligned files need one target line per source line")
        pairs = []
        for number, (source, target) in enumerate(zip(sources, targets), start=1):
            if source.strip() or target.strip():
                _check_sides(f"{path} / {target_path}", number, source, target)
                pairs.append((source.strip(), target.strip()))
        if not pairs:
            raise ValueError(f"{path} and {target_path} hold no sentence pairs")
        return pairs
    pairs = []
    for number, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise ValueError(f"{path}:{number}: expected 'source<TAB>target', found "
                             f"{len(fields)} tab-separated field(s): {line[:60]!r}")
        _check_sides(path, number, *fields)
        pairs.append((fields[0].strip(), fields[1].strip()))
    if not pairs:
        raise ValueError(f"{path} holds no sentence pairs")
    return pairs


def _check_sides(where: str | Path, number: int, source: str, target: str) -> None:
    for side, text in (("source", source), ("target", target)):
        if not text.strip():
            raise ValueError(f"{where}:{number}: the {side} side is empty")


def read_lines(path: str | Path) -> list[str]:
    """The non-empty lines of a text file, one example each (language-model data)."""
    lines = [line.strip() for line in read_text_lines(path) if line.strip()]
    if not lines:
        raise ValueError(f"{path} holds no text")
    return lines


def read_labelled(path: str | Path, labels: Collection[str] | None = None) -> list[tuple[str, str]]:
    """(text, label) pairs from a TSV file, ``text<TAB>label`` per line; label names are free
    strings. Empty lines are skipped.

    Args:
        path: the file.
        labels: the labels a model knows; a line with another label is an error.

    Raises:
        ValueError: naming the file and line of a line without exactly one tab, an empty text,
            an empty label or (with ``labels``) an unknown label.

    Example:
        >>> import tempfile, pathlib
        >>> tsv = pathlib.Path(tempfile.mkdtemp()) / "labelled.tsv"
        >>> _ = tsv.write_text("Bonjour le monde\\tfr\\nHello world\\ten\\n", encoding="utf-8")
        >>> read_labelled(tsv)
        [('Bonjour le monde', 'fr'), ('Hello world', 'en')]
    """
    examples = []
    for number, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise ValueError(f"{path}:{number}: expected 'text<TAB>label', found "
                             f"{len(fields)} tab-separated field(s): {line[:60]!r}")
        text, label = fields[0].strip(), fields[1].strip()
        if not text:
            raise ValueError(f"{path}:{number}: the text is empty")
        if not label:
            raise ValueError(f"{path}:{number}: the label is empty")
        if labels is not None and label not in labels:
            known = sorted(labels)
            raise ValueError(f"{path}:{number}: label {label!r} was never seen in training; the "
                             f"model knows {len(known)} labels: {', '.join(known[:20])}"
                             f"{' …' if len(known) > 20 else ''}")
        examples.append((text, label))
    if not examples:
        raise ValueError(f"{path} holds no labelled texts")
    return examples
