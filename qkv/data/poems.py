"""Classical Chinese poems from Debian's ``fortunes-zh``, one poem per example.

``apt-get install fortunes-zh`` puts 300 Tang poems in ``/usr/share/games/fortunes/tang300`` (and
100 Song poems in ``song100``) as fortune files: entries separated by ``%`` lines, each a title
line 《…》, an author line 作者：…, and the verses, with ANSI colour codes.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["FORTUNES_DIR", "read_poems", "clean_poem"]

FORTUNES_DIR = Path("/usr/share/games/fortunes")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def clean_poem(entry: str) -> str:
    """One fortune entry → its verses, one line each (title, author and colour codes removed).

    Example:
        >>> clean_poem("\\x1b[32m《送别》\\x1b[m\\n\\x1b[33m作者：王维\\x1b[m\\n下马饮君酒，问君何所之。\\n")
        '下马饮君酒，问君何所之。'
    """
    lines = [_ANSI.sub("", line).strip() for line in entry.splitlines()]
    verses = [line for line in lines
              if line and not line.startswith(("《", "作者")) and not line.endswith("》")]
    return "\n".join(verses)


def read_poems(path: str | Path | None = None) -> list[str]:
    """The poems of a fortune file (default: the Tang poems of ``fortunes-zh``)."""
    path = Path(path) if path is not None else FORTUNES_DIR / "tang300"
    if not path.is_file():
        raise FileNotFoundError(
            f"no poem file at {path}; install Debian's fortunes-zh "
            "(sudo apt-get install fortunes-zh) or pass the path of a fortune file")
    entries = re.split(r"^%\s*$", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    poems = [poem for poem in map(clean_poem, entries) if poem]
    if not poems:
        raise ValueError(f"{path} holds no poems")
    return poems
