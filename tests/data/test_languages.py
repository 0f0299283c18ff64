"""The language-identification corpus from Debian's gettext catalogues: clean messages, splits
whose test packages were never seen in training, and errors that say what is missing."""

import re
import struct
from pathlib import Path

import pytest

from qkv.data import languages
from qkv.data.languages import LANGUAGES, clean_message, language_splits, read_mo

SPLITS = ("train", "valid", "test")


def write_mo(path: Path, messages: dict[str, str], *, big_endian: bool = False) -> Path:
    """A GNU gettext ``.mo`` file, written here independently of the reader under test: a header of
    7 words (magic, revision, count, offset of the msgid table, offset of the msgstr table, hash
    size, hash offset), two tables of (length, offset), then the NUL-terminated strings."""
    order = ">" if big_endian else "<"
    entries = sorted({"": "Content-Type: text/plain; charset=UTF-8\n", **messages}.items())
    count = len(entries)
    ids_at, strs_at, data_at = 28, 28 + 8 * count, 28 + 16 * count
    ids_table, strs_table, data = b"", b"", b""
    for key, value in entries:
        for text, table in ((key, "ids"), (value, "strs")):
            encoded = text.encode("utf-8")
            entry = struct.pack(order + "II", len(encoded), data_at + len(data))
            if table == "ids":
                ids_table += entry
            else:
                strs_table += entry
            data += encoded + b"\0"
    header = struct.pack(order + "7I", 0x950412DE, 0, count, ids_at, strs_at, 0, data_at)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + ids_table + strs_table + data)
    return path


# (English, French, German) with {x} the package's name; each a sentence that survives cleaning
TEMPLATES = [
    ("The {x} file could not be opened", "Impossible d'ouvrir le fichier {x}",
     "Die Datei {x} konnte nicht geöffnet werden"),
    ("Writing the {x} archive failed badly", "L'écriture de l'archive {x} a échoué",
     "Das Schreiben des Archivs {x} ist fehlgeschlagen"),
    ("Reading the {x} settings took too long", "La lecture des réglages {x} a pris trop de temps",
     "Das Lesen der Einstellungen {x} hat zu lange gedauert"),
    ("The {x} server refused the connection", "Le serveur {x} a refusé la connexion",
     "Der Server {x} hat die Verbindung abgelehnt"),
    ("Copied %s into the {x} folder", "%s copié dans le dossier {x} sans erreur",
     "%s wurde in den Ordner {x} kopiert"),
    ("One {x} file was removed\0%d {x} files were removed",         # plural forms
     "Un fichier {x} a été supprimé\0%d fichiers {x} ont été supprimés",
     "Eine Datei {x} wurde entfernt\0%d Dateien {x} wurden entfernt"),
    ("menu\x04Quit the {x} program right now", "Quitter le programme {x} maintenant",  # context
     "Das Programm {x} jetzt beenden"),
    ("Untranslated message of the {x} tool", "Untranslated message of the {x} tool",
     "Unübersetzte Meldung des Werkzeugs {x}"),
    ("Open {x}", "Ouvrir {x}", "{x} öffnen"),                                         # too short
    ("memory exhausted while reading the input", "mémoire épuisée pendant la lecture des données",
     "Speicher erschöpft beim Lesen der Eingabe"),                  # shared by all, like gnulib
]
PACKAGES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]


def write_locale(folder: Path, codes=("fr", "de")) -> Path:
    """A locale folder: ``<code>/LC_MESSAGES/<package>.mo`` for each language and package."""
    column = {"fr": 1, "de": 2}
    for code in codes:
        for package in PACKAGES:
            messages = {template[0].replace("{x}", package):
                        template[column[code]].replace("{x}", package) for template in TEMPLATES}
            write_mo(folder / code / "LC_MESSAGES" / f"{package}.mo", messages)
    return folder


@pytest.fixture(scope="module")
def splits():
    """The default corpus, built once for the module."""
    return language_splits()


# -- reading ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("big_endian", [False, True])
def test_read_mo_skips_the_header_strips_context_and_keeps_the_first_plural_form(tmp_path,
                                                                                 big_endian):
    path = write_mo(tmp_path / "demo.mo", {
        "Hello": "Bonjour", "menu\x04Quit": "Quitter", "Not translated": "",
        "One file\0%d files": "Un fichier\0%d fichiers"}, big_endian=big_endian)
    assert read_mo(path) == {"Hello": "Bonjour", "Quit": "Quitter", "One file": "Un fichier"}


def test_read_mo_names_a_file_that_is_not_a_catalogue(tmp_path):
    path = tmp_path / "bad.mo"
    path.write_bytes(b"not a catalogue at all")
    with pytest.raises(ValueError, match=r"bad.mo is not a gettext .mo file: expected magic"):
        read_mo(path)


# -- cleaning --------------------------------------------------------------------------------------

@pytest.mark.parametrize("message,cleaned", [
    ("Cannot open %s for reading", "Cannot open for reading"),
    ("Wrote %d bytes to the output file", "Wrote bytes to the output file"),
    ("Average speed %-10.3f kilobytes per second", "Average speed kilobytes per second"),
    ("Moved %1$s to %2$s without any errors", "Moved to without any errors"),
    ("Removed %(count)d files from the archive", "Removed files from the archive"),
    ("Loaded {0} entries into the database", "Loaded entries into the database"),
    ("Saved {name} into the chosen folder", "Saved into the chosen folder"),
    ("Completed 50%% of the requested work", "Completed 50 of the requested work"),
    ("Read %lu records from the table", "Read records from the table"),
    ("the day of the month, space padded; same as %_d",
     "the day of the month, space padded; same as"),
    ("Offset %<PRId64> is beyond the end of file", "Offset is beyond the end of file"),
])
def test_clean_message_removes_format_directives(message, cleaned):
    assert clean_message(message) == cleaned


@pytest.mark.parametrize("message,cleaned", [
    ("_File operations are not permitted here", "File operations are not permitted here"),
    ("E_xit the application right now", "Exit the application right now"),
    ("&Open the selected document now", "Open the selected document now"),
    ("ファイルを開く(_O)ことができません", "ファイルを開くことができません"),
])
def test_clean_message_removes_keyboard_accelerators(message, cleaned):
    assert clean_message(message) == cleaned


@pytest.mark.parametrize("message,cleaned", [
    ('<b>Bold</b> text is <span weight="bold">not allowed</span> here',
     "Bold text is not allowed here"),
    ("&amp; more &lt;b&gt;entities&lt;/b&gt; in the markup here",
     "& more entities in the markup here"),
    ("\x1b[1mWarning\x1b[0m: the disk is almost full", "Warning: the disk is almost full"),
    ("Line one\\nstill the same message here", "Line one still the same message here"),
    ("Ring \x07the bell when the job finishes", "Ring the bell when the job finishes"),
    ("  spaced   out\t\ttext   across\n   several   lines  ",
     "spaced out text across several lines"),
])
def test_clean_message_removes_markup_escapes_and_control_characters(message, cleaned):
    assert clean_message(message) == cleaned


@pytest.mark.parametrize("message", [
    "Open file", "OK", "Quit %s", "打开文件", "12345 67890 12345 abc", "%s: %s: %s (%d)",
    "Usage: %s [OPTION]... [FILE]...", "  -a, --all\n  -b, --brief\n",
])
def test_clean_message_drops_what_carries_too_little_language(message):
    assert clean_message(message) is None


def test_clean_message_keeps_option_descriptions_and_short_chinese():
    assert (clean_message("  -a, --all            do not ignore entries starting with .")
            == "do not ignore entries starting with .")
    assert clean_message("无法打开文件") == "无法打开文件"           # 6 characters are enough
    assert clean_message("打开 %s 文件") is None                     # 4 are not
    assert clean_message("找不到 %s 软件包的源代码") == "找不到软件包的源代码"


# -- the default corpus ----------------------------------------------------------------------------

def test_the_default_set_has_twenty_languages_or_more_with_english(splits):
    assert len(LANGUAGES) >= 20 and "en" in LANGUAGES
    for split in SPLITS:
        assert list(splits.counts[split]) == list(LANGUAGES)


def test_every_language_has_enough_messages_in_every_split_and_no_more_than_the_caps(splits):
    floors = {"train": 100, "valid": 25, "test": 100}
    caps = {"train": 4000, "valid": 250, "test": 750}
    for split in SPLITS:
        examples = getattr(splits, split)
        assert {code: sum(1 for _, c in examples if c == code) for code in LANGUAGES} \
            == splits.counts[split]
        for code, n in splits.counts[split].items():
            assert floors[split] <= n <= caps[split], (split, code, n)


def test_test_packages_are_never_seen_in_training(splits):
    train, valid, test = (set(splits.packages[split]) for split in SPLITS)
    assert train and valid and test
    assert not train & test and not train & valid and not valid & test
    seen = set(splits.train)
    assert not seen & set(splits.test) and not seen & set(splits.valid)
    assert not set(splits.valid) & set(splits.test)
    for split in SPLITS:                                   # deduplicated per language
        assert len(set(getattr(splits, split))) == len(getattr(splits, split))


SCRIPT = {"ru": "[а-яё]", "uk": "[а-яєії]", "el": "[α-ω]", "ka": "[\u10d0-\u10ff]",
          "ko": "[\uac00-\ud7af]", "ja": "[\u3040-\u30ff]", "zh": "[\u4e00-\u9fff]"}


def test_texts_are_written_in_the_script_of_their_language(splits):
    for text, code in splits.train + splits.test:
        if code in SCRIPT:
            assert re.search(SCRIPT[code], text.lower()), (code, text)
        if code == "zh":
            assert not re.search("[\u3040-\u30ff]", text), text   # kana: Japanese, not Chinese
        if code in ("en", "fr", "de", "es"):
            assert not re.search("[\u0400-\u04ff\u3040-\u9fff]", text), (code, text)


def test_no_format_directive_or_markup_is_left(splits):
    leftover = re.compile(r"%(?:\d+\$)?[-+#0]*\d*(?:\.\d+)?l{0,2}[sdiuxf]\b|%\(\w+\)|\{\d+\}|"
                          r"</?[a-z]+>|\x1b|[\x00-\x1f]")
    assert not [text for text, _ in splits.train + splits.valid + splits.test
                if leftover.search(text)]


# -- seeds -----------------------------------------------------------------------------------------

def test_the_same_seed_gives_the_same_splits_and_another_seed_other_packages():
    def build(seed):
        languages._build.cache_clear()                     # build again, not from the cache
        return language_splits(seed=seed, languages=["fr", "de", "en"], max_per_language=300)
    first, again, other = build(0), build(0), build(1)
    assert first == again
    assert first.packages != other.packages
    assert set(other.packages["train"]).isdisjoint(other.packages["test"])


# -- your own catalogues ---------------------------------------------------------------------------

def test_a_locale_folder_of_two_languages_and_a_few_packages_works_end_to_end(tmp_path):
    folder = write_locale(tmp_path / "locale")
    corpus = language_splits(locale_dir=folder, languages=["fr", "de", "en"], min_test=2,
                             max_per_language=None)
    assert sorted(p for split in SPLITS for p in corpus.packages[split]) == sorted(PACKAGES)
    for split in SPLITS:
        assert corpus.packages[split], split
        for text, code in getattr(corpus, split):        # each text from a package of its split
            owners = [p for p in PACKAGES if re.search(rf"\b{p}\b", text)]
            if split == "train" and not owners:
                continue                                   # the message all packages share
            assert len(owners) == 1 and owners[0] in corpus.packages[split], (split, text)
    texts = {code: {t for split in SPLITS for t, c in getattr(corpus, split) if c == code}
             for code in ("fr", "de", "en")}
    assert "Un fichier alpha a été supprimé" in texts["fr"]          # first plural form
    assert "Quitter le programme beta maintenant" in texts["fr"]     # context stripped
    assert "copié dans le dossier gamma sans erreur" in texts["fr"]  # directive out
    assert "Impossible d'ouvrir le fichier alpha" in texts["fr"]
    assert "Die Datei alpha konnte nicht geöffnet werden" in texts["de"]
    assert "The alpha file could not be opened" in texts["en"]       # English: the msgids
    assert not any(t.startswith("Untranslated") for t in texts["fr"])
    assert not any("Ouvrir" in t for t in texts["fr"])               # too short
    assert "Speicher erschöpft beim Lesen der Eingabe" in {t for t, _ in corpus.train}
    assert all(n >= 2 for split in ("train", "test") for n in corpus.counts[split].values())


def test_a_missing_language_names_itself_the_folder_and_the_packages_to_install(tmp_path):
    folder = write_locale(tmp_path / "locale", codes=("fr",))
    with pytest.raises(FileNotFoundError) as error:
        language_splits(locale_dir=folder, languages=["fr", "de"], min_test=2)
    message = str(error.value)
    assert "de (looked in" in message and str(folder / "de") in message
    assert "apt-get install" in message and "coreutils" in message
    with pytest.raises(FileNotFoundError, match="no locale folder"):
        language_splits(locale_dir=tmp_path / "nowhere")


def test_too_few_messages_names_the_language_and_split(tmp_path):
    folder = write_locale(tmp_path / "locale")
    with pytest.raises(ValueError, match=r"fr has \d+ test messages \(needs 50\).*apt-get install"):
        language_splits(locale_dir=folder, languages=["fr", "de"], min_test=50)


@pytest.mark.parametrize("requested,error,match", [
    (["fr", "xx"], ValueError, r"unknown language code\(s\) \['xx'\]; known codes: .*\bfr\b"),
    (["fr", "fr"], ValueError, r"distinct, got \['fr'\]"),
    (["fr"], ValueError, "at least 2 languages"),
    ("fr", TypeError, "sequence of language codes"),
])
def test_bad_language_lists_are_named(requested, error, match):
    with pytest.raises(error, match=match):
        language_splits(languages=requested)


def test_the_makefile_installs_the_packages_the_corpus_relies_on():
    makefile = (Path(__file__).parents[2] / "Makefile").read_text(encoding="utf-8")
    line = next(line for line in makefile.splitlines() if line.startswith("DEBIAN_PACKAGES"))
    assert set(languages.DEBIAN_PACKAGES) <= set(line.split(":=", 1)[1].split())
