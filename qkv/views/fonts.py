"""Fonts for tokens: a CJK font for matplotlib when the tokens need one.

Matplotlib's default font (DejaVu Sans) has no Chinese, Japanese or Korean glyphs; it draws empty
boxes. Debian's ``fonts-noto-cjk`` package installs "Noto Sans CJK SC/JP/…", which do.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

__all__ = ["CJK_FONTS", "CJK_GLYPH_WARNING", "font_family_for", "has_cjk", "save_figure"]

# In order of preference; the SC and JP faces cover Chinese and Japanese (and Korean hangul).
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK TC", "Noto Sans CJK KR",
             "Noto Serif CJK SC", "Noto Serif CJK JP")

_CJK_RANGES = (
    (0x1100, 0x11FF),    # Hangul Jamo
    (0x2E80, 0x9FFF),    # CJK radicals, punctuation, kana, unified ideographs
    (0xAC00, 0xD7AF),    # Hangul syllables
    (0xF900, 0xFAFF),    # CJK compatibility ideographs
    (0xFF00, 0xFFEF),    # half- and full-width forms
    (0x20000, 0x2FA1F),  # CJK extensions B–F
)


def has_cjk(text: str) -> bool:
    """Whether ``text`` contains a CJK character.

    Example:
        >>> has_cjk("I love my dog"), has_cjk("我爱我的狗"), has_cjk("▁犬")
        (False, True, True)
    """
    return any(lo <= ord(char) <= hi for char in text for lo, hi in _CJK_RANGES)


def font_family_for(tokens: Iterable[str]) -> list[str] | None:
    """The matplotlib ``font.family`` list that draws ``tokens``; ``None`` keeps the default.

    With CJK characters in the tokens, the first installed font of :data:`CJK_FONTS` goes first
    (DejaVu Sans after it, for Latin and symbols). If none is installed, a warning says how to
    install one and ``None`` is returned: the plot is drawn, with boxes for the missing glyphs.

    Example:
        >>> font_family_for(["I", "love"]) is None
        True
    """
    if not any(has_cjk(token) for token in tokens):
        return None
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    for name in CJK_FONTS:
        if name in installed:
            return [name, "DejaVu Sans"]
    warnings.warn(
        "the tokens contain CJK characters but no CJK font was found (looked for "
        f"{', '.join(CJK_FONTS)}); they will show as boxes. Install one, e.g. "
        "`apt-get install fonts-noto-cjk`, then delete matplotlib's font cache "
        "(~/.cache/matplotlib).",
        RuntimeWarning,
        stacklevel=3,
    )
    return None


# Matplotlib's warning for each glyph its font lacks; font_family_for has already said it once.
CJK_GLYPH_WARNING = r"Glyph \d+ .*(CJK|HIRAGANA|KATAKANA|HANGUL)"


def save_figure(figure, path: str | Path, *, dpi: float, format: str | None = None) -> Path:
    """Write a matplotlib ``figure`` to ``path`` (its folder made if missing) without a warning
    per CJK glyph the font lacks; ``format`` defaults to the suffix. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=CJK_GLYPH_WARNING, category=UserWarning)
        figure.savefig(path, format=format, dpi=dpi)
    return path
