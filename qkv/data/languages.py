"""A language-identification corpus read from the gettext catalogues that Debian packages install.

Every translated program ships ``/usr/share/locale/<locale>/LC_MESSAGES/<domain>.mo``: pairs of an
English message (the msgid) and its translation (the msgstr). :func:`language_splits` turns them
into labelled texts, ``(text, language code)``, whose valid and test messages come from packages
never seen in training:

1. **read** each catalogue (:func:`read_mo`): header skipped, context stripped, the first form
   of plural messages. English texts are the msgids of the other languages' catalogues; a
   translation equal to its msgid or to any msgid (untranslated) is left out, and so are
   catalogues that list names (``iso_*``, ``xkeyboard-config``) and credit or copyright lines;
2. **group** catalogues by the Debian *source* package that ships them, from dpkg's file lists
   and status file (``postgresql-15``, ``postgresql-client-15`` and ``libpq5`` are one group;
   ``wget`` and ``wget-gnulib`` one; GTK 2 and 3 one), or by text domain where dpkg knows
   nothing;
3. **split** whole groups into train / valid / test, seeded (:func:`_assign`): test, then valid,
   take small packages until every language has about 15% / 5% of its messages there;
4. **clean and sample** each language's messages of each split in a seeded order
   (:func:`clean_message`; then the script must fit the language, and a Latin-script
   translation must differ from its cleaned msgid and not be mostly its words) until the cap is
   reached. Valid and test texts that also occur in train (gnulib strings are shared by many
   packages) are dropped, and so is a text that two languages share.

Only what the caps need is cleaned, so the default build takes about 3 seconds (25 languages,
one CPU core); the result is cached in-process per arguments.

Labels merge locale variants: ``pt`` is ``pt`` + ``pt_BR`` + ``pt_PT``; ``zh`` is Simplified
Chinese (``zh_CN`` + ``zh_Hans``), Traditional (``zh_TW``, ``zh_HK``) is left out; ``@`` variants
(``sr@latin``, ``ca@valencia``) are never merged into their base language.

Example:
    >>> clean_message("_Open %s in a new window")
    'Open in a new window'
    >>> len(LANGUAGES), LANGUAGES["uk"]
    (25, 'Ukrainian')
"""

from __future__ import annotations

import functools
import html
import itertools
import math
import random
import re
import struct
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Container, Iterator, Sequence

__all__ = ["LANGUAGES", "KNOWN_LANGUAGES", "DEBIAN_PACKAGES", "LOCALE_DIR", "LanguageSplits",
           "language_splits", "clean_message", "read_mo"]

LOCALE_DIR = Path("/usr/share/locale")
_DPKG_DIR = Path("/var/lib/dpkg")

# The Debian packages whose catalogues carry most of the corpus (the Makefile installs them).
DEBIAN_PACKAGES = ("coreutils", "tar", "grep", "sed", "findutils", "diffutils", "bash", "dpkg",
                   "apt", "libc-l10n", "gettext", "binutils-common", "git", "gnupg-l10n", "wget",
                   "make", "procps", "psmisc", "login", "libglib2.0-data", "libgtk-3-common",
                   "shared-mime-info")

# code -> (English name, script, locale folders merged into the label). "en" reads the msgids.
KNOWN_LANGUAGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "en": ("English", "Latn", ()),
    "ca": ("Catalan", "Latn", ("ca",)),
    "cs": ("Czech", "Latn", ("cs",)),
    "da": ("Danish", "Latn", ("da",)),
    "de": ("German", "Latn", ("de", "de_CH")),
    "el": ("Greek", "Grek", ("el",)),
    "es": ("Spanish", "Latn", ("es",)),
    "fi": ("Finnish", "Latn", ("fi",)),
    "fr": ("French", "Latn", ("fr",)),
    "hu": ("Hungarian", "Latn", ("hu",)),
    "id": ("Indonesian", "Latn", ("id",)),
    "it": ("Italian", "Latn", ("it",)),
    "ja": ("Japanese", "Jpan", ("ja",)),
    "ka": ("Georgian", "Geor", ("ka",)),
    "ko": ("Korean", "Hang", ("ko",)),
    "nl": ("Dutch", "Latn", ("nl",)),
    "pl": ("Polish", "Latn", ("pl",)),
    "pt": ("Portuguese", "Latn", ("pt", "pt_BR", "pt_PT")),
    "ro": ("Romanian", "Latn", ("ro", "ro_MD")),
    "ru": ("Russian", "Cyrl", ("ru",)),
    "sv": ("Swedish", "Latn", ("sv",)),
    "tr": ("Turkish", "Latn", ("tr",)),
    "uk": ("Ukrainian", "Cyrl", ("uk",)),
    "vi": ("Vietnamese", "Latn", ("vi",)),
    "zh": ("Chinese (Simplified)", "Hans", ("zh_CN", "zh_Hans")),
    # known, not in the default set: close to a default language, or fewer catalogues
    "bg": ("Bulgarian", "Cyrl", ("bg",)),
    "eo": ("Esperanto", "Latn", ("eo",)),
    "et": ("Estonian", "Latn", ("et",)),
    "eu": ("Basque", "Latn", ("eu",)),
    "gl": ("Galician", "Latn", ("gl",)),
    "hr": ("Croatian", "Latn", ("hr",)),
    "lt": ("Lithuanian", "Latn", ("lt",)),
    "nb": ("Norwegian Bokmål", "Latn", ("nb", "nb_NO", "no")),
    "sk": ("Slovak", "Latn", ("sk",)),
    "sl": ("Slovenian", "Latn", ("sl",)),
    "sr": ("Serbian (Cyrillic)", "Cyrl", ("sr",)),
}
_DEFAULT = ("ca", "cs", "da", "de", "el", "en", "es", "fi", "fr", "hu", "id", "it", "ja", "ka",
            "ko", "nl", "pl", "pt", "ro", "ru", "sv", "tr", "uk", "vi", "zh")
LANGUAGES: dict[str, str] = {code: KNOWN_LANGUAGES[code][0] for code in _DEFAULT}

# Catalogues that are lists of names (languages, countries, currencies, keyboard layouts), not text.
_SKIPPED_DOMAINS = re.compile(r"iso_|xkeyboard-config")
# Source packages of one project whose translations share most messages: one group.
_SAME_PROJECT = {"gtk+2.0": "gtk", "gtk+3.0": "gtk"}
_FRACTIONS = {"train": 0.80, "valid": 0.05, "test": 0.15}


# -- reading ---------------------------------------------------------------------------------------

def _catalogue(path: Path) -> list[tuple[bytes, bytes]]:
    """(msgid, msgstr) of a ``.mo`` file as UTF-8 bytes: header and empty ones out, context
    stripped, plurals as their first form."""
    data = path.read_bytes()
    if len(data) < 20:
        raise ValueError(f"{path} is not a gettext .mo file: expected a header of 20 bytes or "
                         f"more, got {len(data)} bytes")
    magic = data[:4]
    if magic not in (b"\xde\x12\x04\x95", b"\x95\x04\x12\xde"):
        raise ValueError(f"{path} is not a gettext .mo file: expected magic 0x950412de, "
                         f"got 0x{magic[::-1].hex()}")
    order = "<" if magic == b"\xde\x12\x04\x95" else ">"
    _, count, originals, translations = struct.unpack(order + "4I", data[4:20])
    ids = struct.unpack_from(f"{order}{2 * count}I", data, originals)      # length, offset, ...
    strs = struct.unpack_from(f"{order}{2 * count}I", data, translations)
    msgids = [data[offset:offset + n] for n, offset in zip(ids[::2], ids[1::2])]
    msgstrs = [data[offset:offset + n] for n, offset in zip(strs[::2], strs[1::2])]
    header = msgstrs[msgids.index(b"")] if b"" in msgids else b""
    found = re.search(rb"charset=([-\w]+)", header)
    charset = found.group(1).decode("ascii").lower() if found else "utf-8"
    pairs = [(k.rpartition(b"\x04")[2].partition(b"\x00")[0], v.partition(b"\x00")[0])
             for k, v in zip(msgids, msgstrs) if k]
    pairs = [(k, v) for k, v in pairs if k and v]
    if charset not in ("utf-8", "utf8", "ascii", "us-ascii"):
        try:
            pairs = [(k.decode(charset, "replace").encode(), v.decode(charset, "replace").encode())
                     for k, v in pairs]
        except LookupError:                               # an unknown charset: take it as UTF-8
            pass
    return pairs


def read_mo(path: str | Path) -> dict[str, str]:
    """The messages of one compiled gettext catalogue (``.mo``), parsed with :mod:`struct`.

    Args:
        path: a ``.mo`` file (either byte order; in the charset its header names, else UTF-8).

    Returns:
        msgid → msgstr: the header entry (msgid ``""``) and empty translations left out, the
        context (``msgctxt``) stripped, plural messages as their first form.

    Example:
        >>> messages = read_mo("/usr/share/locale/fr/LC_MESSAGES/sed.mo")   # Debian's sed
        >>> messages["Memory exhausted"]
        'Mémoire épuisée'
    """
    pairs = _catalogue(Path(path))
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in pairs}


# -- cleaning --------------------------------------------------------------------------------------

# Deleted (→ a space) in one pass over many messages joined by "\x00", so none may match "\x00".
_REMOVE = re.compile("|".join([
    r"\\(?:[ntrvfab\\\"']|x[0-9a-fA-F]{2}|[0-7]{1,3})",            # backslash escapes: \n \t
    r"%%",                                                       # a literal percent sign
    r"%\([^()\s\x00]*\)[-+#0 ]*\d*(?:\.\d+)?[a-zA-Z]",           # Python: %(name)s
    r"%<PRI\w+>",                                                # gettext: %<PRId64>
    r"%(?:\d+\$)?[-+#0'_^]*(?:\d+|\*(?:\d+\$)?)?(?:\.(?:\d+|\*(?:\d+\$)?))?"
    r"(?:hh|ll|[hlLqjzZtI])?[A-Za-z]",                           # printf: %-10.3f %1$s; date: %_d
    r"%\d+",                                                     # Qt: %1
    r"\{\{|\}\}|\{[\w.\[\]]*(?:![rsa])?(?::[^{}\x00]*)?\}",      # str.format: {0} {name} {:>8}
    r"\$\(\w+\)|\$\{\w+\}",                                       # shell, polkit: $(unit) ${HOME}
    r"</?[A-Za-z][^<>\x00]*>",                                   # markup: <b> </span>
    r"\([_&][^\W_]\)",                                           # accelerator: 開く(_O)
    r"(?<![\w&])&(?=[^\W_])",                                    # accelerator: &Open
    r"[\x01-\x09\x0b-\x1f\x7f-\x9f\u00ad\u200b\ufeff]",          # control characters
]))
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")                   # colours, inside words too
_ENTITY = re.compile(r"&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);")
_EMPTY_PAIR = re.compile(r"\(\s*\)|\[\s*\]|\"\s*\"|'\s*'|`\s*'|«\s*»|»\s*«|“\s*”|„\s*“|‘\s*’|"
                         r"「\s*」|『\s*』|《\s*》|‚\s*‘|”\s*”")
_COMMA_RUN = re.compile(r",(?:[^\S\n]*,)+")
_CODE = r"[\[\]<>=/\\_{}|$@]|(?<!\S)-\S|::|\(\)"         # in a word: code, option, path
_CODE_WORD = re.compile(_CODE)
_CODE_HINT = re.compile(r"[\[\]<>=/\\_{}|$@]|::|\(\)")   # in a message: see _lines (with "-")
_MNEMONIC = re.compile(r"_(?=[^\W_])")                          # GTK: _File, Ou_vrir
# scripts counted by characters: no spaces between words (Chinese, Japanese, Thai, Lao, Burmese,
# Khmer) or a syllable per character (Korean)
_DENSE_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
                           r"\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f\u1780-\u17ff]")
_CJK = "\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK_GAP = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")   # left by a directive: 找不到 %s 软件包
_LOOSE_ENDS = " :;,–—-"      # punctuation left dangling by a removed directive: "Could not open :"
_MIN_LETTERS = 15            # a text in a space-separated script: at least 15 letters ...
_MIN_WORDS = 3               # ... in at least 3 words
_MIN_DENSE_LETTERS = 6       # Chinese, Japanese, Korean, Thai...: at least 6 characters
_MIN_LETTER_SHARE = 0.6      # letters among the characters that are not spaces


def _strip_options(line: str) -> str:
    """An option-table line without its leading option spec: ``-a, --all  do…`` → ``do…``."""
    words = line.split()
    while words and words[0].startswith("-") and len(words[0]) > 1:
        words.pop(0)
        if words and (words[0].isupper() or words[0][0] in "<[="):
            words.pop(0)                                  # the option's argument: FILE, <n>
    return " ".join(words)


def _is_code(line: str) -> bool:
    """Usage lines and the like: over a third of the words are options, placeholders or code."""
    words = line.split()
    code = sum(1 for word in words if _CODE_WORD.search(word)
               or (word.strip(".,:;…").isupper() and len(word.strip(".,:;…")) > 1))
    return code * 3 > len(words)


def _needs_lines(text: str) -> bool:
    """Several lines, an option, an underscore or a hint of code: a case for :func:`_lines`."""
    return (bool(_CODE_HINT.search(text)) or "\n" in text.strip() or " -" in text
            or text.lstrip().startswith("-"))


def _lines(text: str) -> str:
    """A message with several lines, an underscore or some code: its mnemonic out, option specs
    stripped, usage and code lines dropped, the rest joined into one line."""
    if text.count("_") == 1:                              # GTK allows one mnemonic per label
        text = _MNEMONIC.sub("", text)
    lines = (_strip_options(line) for line in text.split("\n"))
    return " ".join(line for line in lines if line and not _is_code(line))


def _enough(text: str) -> bool:
    """Enough language left: letters are 60% of the non-space characters, and there are 15 letters
    in 3 words, or 6 characters of a script counted by characters (Chinese, Korean...)."""
    letters = sum(map(str.isalpha, text))
    if letters < _MIN_LETTER_SHARE * (len(text) - text.count(" ")):
        return False
    if not text.isascii() and 2 * len(_DENSE_SCRIPT.findall(text)) > letters:
        return letters >= _MIN_DENSE_LETTERS
    return letters >= _MIN_LETTERS and text.count(" ") + 1 >= _MIN_WORDS


def _clean_many(texts: Sequence[str]) -> list[str | None]:
    """:func:`clean_message` of each text (none holding ``"\\x00"``); the substitutions run once
    over all of them joined by ``"\\x00"``."""
    blob = _ENTITY.sub(lambda match: html.unescape(match.group()), "\x00".join(texts))
    if "\x1b" in blob:
        blob = _ANSI.sub("", blob)
    blob = _REMOVE.sub(" ", blob)
    blob = _EMPTY_PAIR.sub(" ", _EMPTY_PAIR.sub(" ", blob))       # twice, for nested ('')
    blob = _COMMA_RUN.sub(",", blob)                              # "by %s, %s, %s and others"
    cleaned = (_lines(text) if _needs_lines(text) else text for text in blob.split("\x00"))
    cleaned = (" ".join(text.split()).strip(_LOOSE_ENDS) for text in cleaned)
    cleaned = (text if text.isascii() else _CJK_GAP.sub("", text) for text in cleaned)
    return [text if _enough(text) else None for text in cleaned]


def clean_message(text: str) -> str | None:
    """One catalogue message → clean text in one line, or ``None`` when too little language is left.

    Removes format directives (``%s``, ``%-10.3f``, ``%1$s``, ``%(name)s``, ``%%``, ``{0}``,
    ``{name}``), keyboard accelerators (``_File``, ``&Open``, ``(_O)``), markup tags (entities
    become characters), ANSI and backslash escapes, control characters, the option specs of
    option tables, whole usage and code lines (over a third of their words options,
    placeholders, paths or code), quotes left empty and punctuation left dangling at the ends;
    collapses whitespace. Then keeps the text only if letters make up at least 60% of its
    non-space characters and it has at least 15 letters in 3 words (6 characters for Chinese,
    Japanese, Korean, Thai…).

    Args:
        text: a msgid or msgstr, possibly several lines.

    Returns:
        The cleaned text, or ``None``.

    Example:
        >>> clean_message("Could not open '%s' for reading: %m\\n")
        'Could not open for reading'
        >>> clean_message("<b>_Save</b> the current document as {name}")
        'Save the current document as'
        >>> clean_message("Open %s") is None                      # too short to tell
        True
        >>> clean_message("Usage: %s [OPTION]... [FILE]...") is None
        True
    """
    return _clean_many([text.replace("\x00", " ")])[0]


_SCRIPT_RANGES = {
    "Latn": "A-Za-z\u00c0-\u024f\u1e00-\u1eff", "Cyrl": "\u0400-\u052f",
    "Grek": "\u0370-\u03ff\u1f00-\u1fff", "Geor": "\u10a0-\u10ff\u1c90-\u1cbf\u2d00-\u2d2f",
    "Hang": "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af",
    "Hans": "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff",
    "Kana": "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f",
}
_SCRIPT_RANGES["Jpan"] = _SCRIPT_RANGES["Kana"] + _SCRIPT_RANGES["Hans"]
_OWN = {script: re.compile(f"[{ranges}]") for script, ranges in _SCRIPT_RANGES.items()}


def _foreign(script: str) -> re.Pattern:
    """Letters of the scripts other than ``script`` (Japanese, ``Jpan``, is kana and kanji)."""
    own = {script, "Jpan"} | ({"Kana", "Hans"} if script == "Jpan" else set())
    return re.compile("[" + "".join(r for s, r in _SCRIPT_RANGES.items() if s not in own) + "]")


_FOREIGN = {script: _foreign(script) for script in _SCRIPT_RANGES}


def _in_script(text: str, script: str) -> bool:
    """Most letters of ``text`` are in ``script``; Japanese (``Jpan``) also needs some kana,
    since kanji alone read as Chinese."""
    if script == "Jpan" and not _OWN["Kana"].search(text):
        return False
    if not _FOREIGN[script].search(text):
        return bool(_OWN[script].search(text))
    return 2 * len(_OWN[script].findall(text)) > sum(map(str.isalpha, text))


_ENGLISH: dict[bytes, str | None] = {}   # msgid → its clean text: msgids repeat in every locale


def _clean_msgids(msgids: list[bytes]) -> list[str | None]:
    new = [msgid for msgid in dict.fromkeys(msgids) if msgid not in _ENGLISH]
    texts = _clean_many([msgid.decode("utf-8", "replace").replace("\x00", " ") for msgid in new])
    _ENGLISH.update(zip(new, texts))
    return [_ENGLISH[msgid] for msgid in msgids]


# -- packages --------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _catalogue_owners(dpkg_dir: str) -> dict[str, str]:
    """Path of each installed ``.mo`` file → the Debian source package that ships it, from dpkg's
    file lists (``info/*.list``) and status file (binary → source); empty without dpkg."""
    sources: dict[str, str] = {}
    status = Path(dpkg_dir, "status")
    if status.is_file():
        for paragraph in status.read_text(encoding="utf-8", errors="replace").split("\n\n"):
            fields = dict(line.split(": ", 1) for line in paragraph.splitlines()
                          if ": " in line and not line.startswith(" "))
            if "Package" in fields:      # "Source: glibc (2.36-9)" → glibc; no Source: itself
                sources[fields["Package"]] = fields.get("Source", fields["Package"]).split()[0]
    owners: dict[str, str] = {}
    for listing in sorted(Path(dpkg_dir, "info").glob("*.list")):
        binary = listing.stem.split(":")[0]                # libfoo:amd64.list → libfoo
        for line in listing.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.endswith(".mo"):
                owners[line] = sources.get(binary, binary)
    return owners


def _install_hint() -> str:
    return (f"install Debian's translations (sudo apt-get install {' '.join(DEBIAN_PACKAGES)}; "
            f"on a minimal image, first drop the path-exclude of /usr/share/locale from "
            f"/etc/dpkg/dpkg.cfg.d/ and reinstall them)")


def _read(locale_dir: Path, codes: tuple[str, ...]
          ) -> tuple[dict[str, dict[str, dict[bytes, bytes]]], set[bytes]]:
    """language → package → {message: its msgid}, raw, and every msgid read. English messages
    are the msgids of the other languages' catalogues; translations equal to their msgid are left
    out."""
    owners = _catalogue_owners(str(_DPKG_DIR))
    messages: dict[str, dict[str, dict[bytes, bytes]]] = {code: {} for code in codes}
    msgids: set[bytes] = set()
    missing = []
    for code in codes:
        if code == "en":
            continue
        _, _, folders = KNOWN_LANGUAGES[code]
        paths = [path for folder in folders
                 for path in sorted((locale_dir / folder / "LC_MESSAGES").glob("*.mo"))
                 if not _SKIPPED_DOMAINS.match(path.stem)]
        if not paths:
            missing.append(f"{code} (looked in {', '.join(str(locale_dir / f) for f in folders)})")
        for path in paths:
            package = owners.get(str(path)) or path.stem
            package = _SAME_PROJECT.get(package, package)
            pairs = _catalogue(path)
            msgids.update(msgid for msgid, _ in pairs)
            messages[code].setdefault(package, {}).update(
                (msgstr, msgid) for msgid, msgstr in pairs if msgstr != msgid)
            if "en" in messages:
                messages["en"].setdefault(package, {}).update((msgid, msgid) for msgid, _ in pairs)
    if missing:
        raise FileNotFoundError(
            f"no gettext catalogues (LC_MESSAGES/*.mo) for language(s) {'; '.join(missing)}; "
            f"{_install_hint()}, or pass locale_dir= a folder that has them")
    return messages, msgids


# -- splitting -------------------------------------------------------------------------------------

@dataclass
class LanguageSplits:
    """A language-identification corpus: ``(text, language code)`` pairs in three splits whose
    messages come from disjoint sets of packages.

    ``packages`` maps each split to the (source) packages whose catalogues it draws on;
    ``counts`` maps each split to the number of messages of each language.
    """

    train: list[tuple[str, str]]
    valid: list[tuple[str, str]]
    test: list[tuple[str, str]]
    packages: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def _assign(counts: dict[str, Counter], seed: int, min_test: int) -> dict[str, str]:
    """package → split: test, then valid, are filled language by language, the language with the
    fewest messages first, from packages in a seeded order: a package joins if it has messages of
    a language still short of the split's target (15% / 5% of its messages, and at least
    2 × min_test / 2 × min_valid) and keeps every language under 1.5 × its target, so the big
    packages stay in train. A split that no package fits gets the smallest. The rest is train."""
    totals: Counter = Counter()
    for package_counts in counts.values():
        totals.update(package_counts)
    floors = {"test": 2 * min_test, "valid": 2 * _min_valid(min_test)}
    order = sorted(counts)
    random.Random(seed).shuffle(order)
    assignment = dict.fromkeys(order, "train")
    for split in ("test", "valid"):
        target = {code: max(_FRACTIONS[split] * total, floors[split])
                  for code, total in totals.items()}
        have: Counter = Counter()
        for code in sorted(totals, key=lambda code: (totals[code], code)):
            for package in order:
                if have[code] >= target[code]:
                    break
                if (assignment[package] == "train" and counts[package][code]
                        and all(have[c] + n <= 1.5 * target[c] for c, n in counts[package].items())
                        and list(assignment.values()).count("train") > 1):
                    assignment[package] = split
                    have.update(counts[package])
        training = [package for package in order if assignment[package] == "train"]
        if not have and len(training) > 1:         # only big packages (a small folder): the least
            assignment[min(training, key=lambda package: sum(counts[package].values()))] = split
    return assignment


def _min_valid(min_test: int) -> int:
    return max(1, min_test // 4)


def _caps(max_per_language: int | None) -> dict[str, int | None]:
    """Messages per language in each split: ``max_per_language`` for train, in proportion for
    valid and test (1/16 and 3/16 of it)."""
    return {split: None if max_per_language is None else
            math.ceil(max_per_language * fraction / _FRACTIONS["train"])
            for split, fraction in _FRACTIONS.items()}


# msgids whose messages are names, not prose: translator credits, copyright lines
_NOT_PROSE = re.compile(rb"translator[-_ ]?credits|copyright|\xc2\xa9|\([cC]\) ?\d", re.IGNORECASE)


def _copied(text: str, msgid: bytes) -> bool:
    """A translation whose words are mostly copied from its English msgid: partly translated, as
    in option tables where only some lines were translated."""
    words = text.lower().split()
    english = set(msgid.decode("utf-8", "replace").lower().split())
    return 2 * sum(word in english for word in words) > len(words)


def _seeded_order(count: int, rng: random.Random) -> Iterator[int]:
    """``range(count)`` in a seeded random order, drawn lazily (one Fisher–Yates step each)."""
    order = list(range(count))
    for i in range(count):
        j = rng.randrange(i, count)
        order[i], order[j] = order[j], order[i]
        yield order[i]


def _pick(candidates: dict[bytes, bytes], want: int | None, rng: random.Random, script: str, *,
          english: bool, excluded: Sequence[Container[bytes]], taken: set[str]) -> list[str]:
    """Up to ``want`` clean texts (all if ``None``) from raw message → msgid, in a seeded order.

    A message in one of ``excluded`` is skipped; a text must be clean, in ``script``, not in
    ``taken`` and, unless ``english``, different from its clean msgid. Only as many messages are
    cleaned as it takes, in batches sized by the share that survived so far."""
    raw = list(candidates)
    order = iter(range(len(raw))) if want is None else _seeded_order(len(raw), rng)
    picked: list[str] = []
    seen = set(taken)
    tried = 0
    while want is None or len(picked) < want:
        survival = max(0.3, len(picked) / tried) if tried else 1.0
        size = len(raw) if want is None else int((want - len(picked)) / survival * 1.1) + 20
        batch = [raw[i] for i in itertools.islice(order, size)]
        if not batch:
            break
        tried += len(batch)
        batch = [message for message in batch if not any(message in ex for ex in excluded)
                 and not _NOT_PROSE.search(candidates[message])]
        if english:
            texts = _clean_msgids(batch)
        else:
            texts = _clean_many([message.decode("utf-8", "replace") for message in batch])
        kept = [(text, message) for text, message in zip(texts, batch)
                if text is not None and text not in seen and _in_script(text, script)]
        if not english and script == "Latn":              # untranslated once cleaned?
            sources = _clean_msgids([candidates[message] for _, message in kept])
            kept = [(text, message) for (text, message), source in zip(kept, sources)
                    if text != source and not _copied(text, candidates[message])]
        for text, _ in kept:
            if text not in seen:
                seen.add(text)
                picked.append(text)
                if len(picked) == want:
                    break
    return picked


@functools.lru_cache(maxsize=4)
def _build(locale_dir: str, codes: tuple[str, ...], seed: int, max_per_language: int | None,
           min_test: int) -> tuple[dict[str, tuple[tuple[str, str], ...]], dict[str, str]]:
    """The pure part of :func:`language_splits`: split → examples, and package → split."""
    messages, msgids = _read(Path(locale_dir), codes)
    counts: dict[str, Counter] = defaultdict(Counter)
    for code, packages in messages.items():
        for package, texts in packages.items():
            counts[package][code] = len(texts)
    assignment = _assign(counts, seed, min_test)

    caps = _caps(max_per_language)
    picked: dict[str, dict[str, list[str]]] = {split: {} for split in _FRACTIONS}
    for code in codes:
        raw = {split: {} for split in _FRACTIONS}         # message → msgid, in package order
        for package in sorted(messages[code]):
            raw[assignment[package]].update(messages[code][package])
        taken: set[str] = set()
        untranslated = [] if code == "en" else [msgids]   # a translation equal to some msgid
        for split, earlier in (("train", []), ("test", ["train"]), ("valid", ["train", "test"])):
            want = None if caps[split] is None else caps[split] + caps[split] // 50 + 5
            picked[split][code] = _pick(
                raw[split], want, random.Random(f"{seed}:{code}:{split}"),
                KNOWN_LANGUAGES[code][1], english=code == "en", taken=taken,
                excluded=[raw[e] for e in earlier] + untranslated)
            taken.update(picked[split][code])

    labels: dict[str, set[str]] = defaultdict(set)        # a text two languages share is dropped
    for by_code in picked.values():
        for code, texts in by_code.items():
            for text in texts:
                labels[text].add(code)
    examples = {}
    for split, by_code in picked.items():
        pairs = [(text, code) for code in codes                # a few spare ones replace them
                 for text in [t for t in by_code[code] if len(labels[t]) == 1][:caps[split]]]
        random.Random(f"{seed}:{split}").shuffle(pairs)
        examples[split] = tuple(pairs)
    return examples, assignment


def _check_languages(languages: Sequence[str] | None) -> tuple[str, ...]:
    if languages is None:
        return _DEFAULT
    if isinstance(languages, str):
        raise TypeError(f"languages must be a sequence of language codes, got the string "
                        f"{languages!r}; pass e.g. [{languages!r}, 'en']")
    codes = tuple(languages)
    unknown = [code for code in codes if code not in KNOWN_LANGUAGES]
    if unknown:
        raise ValueError(f"unknown language code(s) {unknown}; known codes: "
                         f"{', '.join(sorted(KNOWN_LANGUAGES))}")
    repeated = sorted(code for code, n in Counter(codes).items() if n > 1)
    if repeated:
        raise ValueError(f"languages must be distinct, got {repeated} more than once")
    if len(codes) < 2:
        raise ValueError(f"a language-identification corpus needs at least 2 languages, got "
                         f"{list(codes)}")
    return codes


def language_splits(*, seed: int = 0, locale_dir: str | Path | None = None,
                    languages: Sequence[str] | None = None, max_per_language: int | None = 4000,
                    min_test: int = 100) -> LanguageSplits:
    """A language-identification corpus from the installed gettext catalogues, split by package.

    Args:
        seed: picks which packages go to valid and test and which messages are kept under the
            caps; the same seed gives the same splits.
        locale_dir: the folder holding ``<locale>/LC_MESSAGES/*.mo`` (default
            ``/usr/share/locale``).
        languages: codes from :data:`KNOWN_LANGUAGES` (default: the 25 of :data:`LANGUAGES`);
            ``"en"`` is the msgids of the other languages' catalogues.
        max_per_language: training messages per language, sampled; valid and test are capped
            in proportion (1/16 and 3/16 of it: 250 and 750 for 4000). ``None``: no cap, and
            every message is cleaned (about 10 s instead of 3).
        min_test: fewest test (and training) messages a language may have, valid a quarter of
            it; never more than the caps.

    Returns:
        :class:`LanguageSplits`: train / valid / test lists of ``(text, code)`` in seeded random
        order, the packages of each split, and the messages per split and language.

    Raises:
        ValueError: an unknown or repeated language code, fewer than 2 languages, or a language
            with too few messages in some split.
        TypeError: ``languages`` is one string, not a sequence of codes.
        FileNotFoundError: no locale folder, or no catalogues for a requested language.

    Example:
        >>> splits = language_splits(languages=["fr", "de", "en"], max_per_language=400)
        >>> splits.counts["train"], splits.counts["test"]["fr"]
        ({'fr': 400, 'de': 400, 'en': 400}, 75)
        >>> set(splits.packages["train"]) & set(splits.packages["test"])
        set()
    """
    codes = _check_languages(languages)
    if max_per_language is not None and max_per_language < 1:
        raise ValueError(f"max_per_language must be a positive number of messages or None, "
                         f"got {max_per_language}")
    if min_test < 1:
        raise ValueError(f"min_test must be at least 1 message, got {min_test}")
    folder = Path(locale_dir) if locale_dir is not None else LOCALE_DIR
    if not folder.is_dir():
        raise FileNotFoundError(f"no locale folder {folder}; {_install_hint()}, or pass "
                                f"locale_dir= a folder of <locale>/LC_MESSAGES/*.mo catalogues")
    examples, assignment = _build(str(folder.absolute()), codes, seed, max_per_language, min_test)

    counts = {split: {code: 0 for code in codes} for split in _FRACTIONS}
    for split, pairs in examples.items():
        for _, code in pairs:
            counts[split][code] += 1
    caps = _caps(max_per_language)
    minimum = {split: min(n, caps[split] or n) for split, n in
               (("train", min_test), ("valid", _min_valid(min_test)), ("test", min_test))}
    short = [f"{code} has {n} {split} messages (needs {minimum[split]})"
             for split, by_code in counts.items() for code, n in by_code.items()
             if n < minimum[split]]
    if short:
        raise ValueError(f"too few messages in the catalogues under {folder}: {'; '.join(short)}; "
                         f"{_install_hint()}, try another seed, or lower min_test")
    return LanguageSplits(
        list(examples["train"]), list(examples["valid"]), list(examples["test"]),
        packages={split: sorted(p for p, s in assignment.items() if s == split)
                  for split in _FRACTIONS},
        counts=counts)
