"""Sentence sources for the synthetic corpus: offline, real, cleaned, deduplicated and split.

Natural sentences come from Debian packages that carry human-written text in many languages:
fortune cookies (``fortunes``, ``fortunes-de``, ``-es``, ``-it``, ``-br``, ``-pl``), translated
man pages (``manpages-fr``, ``-nl``, ``-de``, ...) and, for English, the usage examples of the
WordNet lexical database (``wordnet-base``: ~48 k short everyday sentences that more than triple
the English pool; on fortunes alone a small recogniser memorised its training sentences) and
English books read by :mod:`voxkit.data.books` (the World English Bible, "The Devil's Dictionary",
an English Dhammapada): natural prose, which the glosses and templates could not replace.
Entity-rich sentences (names, places, numbers, dates) come from :mod:`voxkit.data.entities`.

Transcript convention (why): the audio is rendered from exactly the ``text`` string stored in the
manifest, so text and audio agree by construction. To make that true for numbers, digits are spelled
out with num2words in the sentence's language *before* synthesis; sentences whose remaining symbols
espeak would verbalise unpredictably (``&``, ``%``, ``/``, acronyms, abbreviations, roman numerals,
URLs, code) are dropped instead of guessed. Punctuation and casing are kept as in the source; the
spoken words are the whitespace tokens with edge punctuation stripped (:func:`spoken_words`).
"""

from __future__ import annotations

import functools
import glob
import gzip
import hashlib
import itertools
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from voxkit.errors import DataError

FORTUNE_DIR = "/usr/share/games/fortunes"
MAN_DIR = "/usr/share/man"
WORDNET_DIR = "/usr/share/wordnet"


@dataclass(frozen=True)
class LanguageSpec:
    """How one language is voiced and where its text comes from."""

    code: str  # voxkit / manifest language code
    espeak: str  # espeak-ng voice
    num2words: str  # num2words language code
    faker: str  # faker locale
    letters: str  # letters allowed besides ASCII a-z
    fortunes: tuple[str, ...] = ()  # globs under FORTUNE_DIR
    man: str | None = None  # sub-folder of MAN_DIR
    wordnet: bool = False  # WordNet usage examples and definitions (English only)
    books: tuple[str, ...] = ()  # paths of book-like sources read by voxkit.data.books


_EN_FORTUNES = (
    "fortunes", "literature", "wisdom", "people", "politics", "science", "humorists", "love", "work",
    "education", "food", "pets", "platitudes", "riddles", "men-women", "miscellaneous", "kids", "law",
    "medicine", "sports", "news", "songs-poems", "pratchett", "magic", "goedel", "ethnic", "drugs",
    "computers", "cookie", "art", "paradoxum", "tao", "startrek", "zippy", "definitions",
    # added 2026-11-26 (English corpora built before then did not draw from these)
    "knghtbrd", "linux", "linuxcookie", "debian", "disclaimer", "perl", "bofh-excuses", "debian-hints",
    "anarchism",
)
_EN_BOOKS = (
    "/usr/share/dictd/devil.dict.dz",
    "/usr/share/display-dhammapada/dhammapada-english-transl.txt",
    "/usr/share/sword/modules/texts/ztext/engWEB2015eb",
    # added 2026-11-27 (English corpora built before then did not draw from it)
    "/usr/share/dictd/english-german.dict.dz",
)

LANGUAGE_CODE = re.compile(r"[a-z]{2}")  # ISO 639-1, as the kit names languages (en, fr, es, de, ...)

LANGUAGES: dict[str, LanguageSpec] = {
    spec.code: spec
    for spec in (
        LanguageSpec("en", "en-us", "en", "en_US", "", _EN_FORTUNES, wordnet=True, books=_EN_BOOKS),
        LanguageSpec("fr", "fr", "fr", "fr_FR", "àâæçéèêëîïôœùûüÿ", (), "fr"),
        LanguageSpec("es", "es", "es", "es_ES", "áéíóúüñ", ("es/*",), "es"),
        LanguageSpec("de", "de", "de", "de_DE", "äöüß", ("de/*",), "de"),
        LanguageSpec("it", "it", "it", "it_IT", "àèéìíîòóùú", ("it/*",), "it"),
        LanguageSpec("pt", "pt-br", "pt_BR", "pt_BR", "áâãàçéêíóôõúü", ("brasil",), "pt_BR"),
        LanguageSpec("nl", "nl", "nl", "nl_NL", "áéëïóöüèê", (), "nl"),
        LanguageSpec("pl", "pl", "pl", "pl_PL", "ąćęłńóśźż", ("pl/*",), "pl"),
    )
}

_PUNCT = " .,;:!?'\"-()«»¿¡„“”‘’–—"
_EDGE = ".,;:!?'\"()«»¿¡„“”‘’–—-"
_QUOTES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "\u00a0": " ", "\t": " "})
_SENT_SPLIT = re.compile(r"(?<=[.!?…])[\"'»”]?\s+(?=[\"'«“„¿¡(]?[A-ZÀ-ÖØ-ÞĄĆĘŁŃÓŚŹŻ])")
_NUMBER = re.compile(r"(?<![\w.,])\d{1,7}(?![\w.,]\d|\w)")
_SPACES = re.compile(r"\s+")
_INNER_PERIOD = re.compile(r"\.\S|\S\.\s+\S")
_OPTION = re.compile(r"^[(\"'«„“¿¡]*-\w")
_CALL = re.compile(r"\w[()]\w|\w\(")


def language_spec(code: str) -> LanguageSpec:
    try:
        return LANGUAGES[code]
    except KeyError:
        raise DataError(f"unsupported language {code!r}; voxkit data synth knows: {', '.join(LANGUAGES)}") from None


def spoken_words(text: str) -> list[str]:
    """The spoken words of a transcript: whitespace tokens with edge punctuation stripped.

    Inner apostrophes and hyphens stay (``l'homme``, ``well-known``): espeak speaks them as one word.
    Tokens without a letter (a lone dash) are not words.
    """
    out = []
    for tok in text.split():
        w = tok.strip(_EDGE)
        if w and any(map(str.isalpha, w)):
            out.append(w)
    return out


def token_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, word) character spans of :func:`spoken_words` in ``text`` (same order)."""
    spans = []
    for m in re.finditer(r"\S+", text):
        tok = m.group(0)
        left = len(tok) - len(tok.lstrip(_EDGE))
        w = tok.strip(_EDGE)
        if w and any(c.isalpha() for c in w):
            spans.append((m.start() + left, m.start() + left + len(w), w))
    return spans


def spell_numbers(text: str, lang: str) -> str:
    """Replace plain integers by words in ``lang`` (num2words), so the transcript says what is spoken."""
    from num2words import num2words

    code = language_spec(lang).num2words

    def repl(m: re.Match[str]) -> str:
        return num2words(int(m.group(0)), lang=code).replace(",", "")

    return _NUMBER.sub(repl, text)


def clean_sentence(text: str, lang: str, *, min_words: int = 4, max_words: int = 25, max_chars: int = 200) -> str | None:
    """Normalise one candidate sentence, or return None when it is unfit for synthesis.

    Rejects: URLs/code/symbols, characters outside the language's alphabet, acronyms (≥2 capitals,
    espeak spells them), inner periods (abbreviations), numbers that are not plain integers, and
    sentences outside the length limits.
    """
    spec = language_spec(lang)
    s = unicodedata.normalize("NFC", text).translate(_QUOTES)
    s = _SPACES.sub(" ", s).strip()
    if not s or "http" in s or "www" in s or "@" in s:
        return None
    if any(map(str.isdigit, s)):
        s = spell_numbers(s, lang)
        if any(map(str.isdigit, s)):
            return None
    if not _allowed_chars(spec.letters).issuperset(s):
        return None
    if _INNER_PERIOD.search(s[:-1].rstrip(".!?\"'»”)")):  # inner period: abbreviation or list
        return None
    if "--" in s or "''" in s or s.count('"') % 2:
        return None
    if "-" in s or "(" in s or ")" in s:  # the only tokens the two patterns can match
        for tok in s.split():
            if _OPTION.match(tok) or _CALL.search(tok):
                return None  # command-line option or function call
    words = spoken_words(s)
    if not (min_words <= len(words) <= max_words) or len(s) > max_chars:
        return None
    for w in words:
        if not w.islower():  # a word with a lower-case letter and no capital is no acronym
            letters = [c for c in w if c.isalpha()]
            if len(letters) >= 2 and all(c.isupper() for c in letters):
                return None  # acronym or shouting: espeak spells or reads it unpredictably
        if w[0] in "-'" or w[-1] in "-'":
            return None
    if not _looks_like(words, lang):
        return None
    if not s[0].isupper() and s[0] not in "¿¡\"«„“(":
        return None
    if s[-1] not in ".!?\"»”)":
        return None
    return s


@functools.cache
def _allowed_chars(letters: str) -> frozenset[str]:
    """Every character :func:`clean_sentence` accepts: ASCII letters, the language's letters (both cases), punctuation."""
    ascii_letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return frozenset(ascii_letters) | frozenset(letters) | frozenset(letters.upper()) | frozenset(_PUNCT)


_STOPWORDS = {
    "en": "the a an of and to in is it that you for with not are be this was on as",
    "fr": "le la les de des du et un une est en que qui pas pour dans sur ne se il",
    "es": "el la los las de del y un una es en que no por para con se lo su",
    "de": "der die das und ist nicht ein eine zu den mit von sich des auf für im",
    "it": "il la le di e un una che non per con del della si è sono in lo gli",
    "pt": "o a os as de do da e um uma que não para com é em se por no na",
    "nl": "de het een en van is niet te dat in op met voor zijn er die wordt",
    "pl": "i w się nie na z do to że jest o jak co ale od po dla",
}
_STOPWORD_SETS = {lang: frozenset(words.split()) for lang, words in _STOPWORDS.items()}


def _looks_like(words: list[str], lang: str) -> bool:
    """Cheap language check: man page translations often keep English sentences untranslated."""
    low = [w.lower() for w in words]
    own = sum(w in _STOPWORD_SETS[lang] for w in low) if lang in _STOPWORD_SETS else 1
    if lang == "en":
        return own >= 1
    eng = sum(w in _STOPWORD_SETS["en"] for w in low)
    return own >= 1 and own > eng


def split_sentences(paragraph: str) -> list[str]:
    """Split running text into sentences at . ! ? followed by a capitalised word."""
    return [p.strip() for p in _SENT_SPLIT.split(paragraph) if p.strip()]


def _read_text(path: str) -> str:
    with gzip.open(path) if path.endswith(".gz") else open(path, "rb") as fh:
        raw = fh.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


_ATTRIBUTION = re.compile(r"^\s*(--|―|—|-\s)")
_DIALOGUE = re.compile(r"^\s*\w+:")


def fortune_paragraphs(path: str) -> Iterator[str]:
    """Fortune cookies of one file, without attribution lines ("-- Author") or indented verse."""
    for cookie in _read_text(path).split("\n%"):
        lines = []
        for line in cookie.split("\n"):
            if _ATTRIBUTION.match(line) or line.startswith(("\t", "    ")):
                break  # attribution or formatted block: end of prose
            if ":" in line[:15] and _DIALOGUE.match(line):
                lines = []  # dialogue "A: ..." style: skip
                break
            lines.append(line.strip())
        text = " ".join(lines).strip()
        if text:
            yield text


_ROFF_TEXT_MACROS = {"B", "I", "BR", "IR", "RB", "BI", "IB", "RI", "SM", "SB"}
_ROFF_ESCAPES = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),
    (re.compile(r"\\s[+-]?\d"), ""),
    (re.compile(r"\\\((aq|cq|oq)"), "'"),
    (re.compile(r"\\\((em|en)"), "—"),
    (re.compile(r"\\\*\(..|\\\*\[[^\]]*\]|\\\*."), ""),
    (re.compile(r"\\[,/&%:]"), ""),
    (re.compile(r"\\[ ~0]"), " "),
    (re.compile(r"\\-"), "-"),
]


def man_paragraphs(path: str) -> Iterator[str]:
    """Prose paragraphs of one roff man page (macros dropped, font escapes removed)."""
    para: list[str] = []
    for line in _read_text(path).split("\n"):
        if line.startswith((".", "'")):
            parts = line[1:].split(None, 1)
            if parts and parts[0] in _ROFF_TEXT_MACROS and len(parts) > 1:
                line = parts[1].replace('"', "")
            else:
                if para:
                    yield " ".join(para)
                para = []
                continue
        if line.startswith('\\"'):
            continue
        if "\\" in line:  # every escape pattern starts with a backslash
            for pat, rep in _ROFF_ESCAPES:
                line = pat.sub(rep, line)
        if "\\" in line:
            line = line + " \\"  # poison: unknown escape, cleaner drops the sentence
        para.append(line.strip())
    if para:
        yield " ".join(para)


_WORDNET_EXAMPLE = re.compile(r'"([^"]+)"')


def _wordnet_glosses(path: str) -> Iterator[str]:
    """The gloss (text after ``|``) of each synset line of one WordNet data file."""
    for line in _read_text(path).split("\n"):
        if line.startswith("  ") or "|" not in line:
            continue  # licence header
        yield line.split("|", 1)[1]


def _as_sentence(fragment: str) -> str | None:
    """A lower-case WordNet fragment as a sentence: capital first letter, final period."""
    if not fragment or not fragment[0].isalpha():
        return None
    return fragment[0].upper() + fragment[1:] + ("" if fragment[-1] in ".!?" else ".")


def wordnet_examples(path: str) -> Iterator[str]:
    """Usage examples of one WordNet data file, made into sentences (capital first letter, final period).

    Each synset line ends with a gloss: definitions, then quoted examples separated by ``;``. The
    examples are lower-case fragments ("he looked right and left"); quotations with verse marks
    (``/``) or an attribution are left to :func:`clean_sentence` to reject.
    """
    for gloss in _wordnet_glosses(path):
        for m in _WORDNET_EXAMPLE.finditer(gloss):
            if s := _as_sentence(m.group(1).strip().rstrip(",;:")):
                yield s


def wordnet_definitions(path: str) -> Iterator[str]:
    """Definitions of one WordNet data file, made into sentences (capital first letter, final period).

    Why: the usage examples alone give ~30k English sentences, and a small recogniser trained on so
    few learns them as a language model. The definitions ("a board beside a kitchen sink") add ~100k
    phrases with a far wider vocabulary. A gloss may hold several definitions separated by ``;``;
    the quoted examples are removed first (:func:`wordnet_examples` yields them).
    """
    for gloss in _wordnet_glosses(path):
        for part in _WORDNET_EXAMPLE.sub("", gloss).split(";"):
            if s := _as_sentence(part.strip().strip(",;: ")):
                yield s


def source_files(lang: str) -> list[str]:
    spec = language_spec(lang)
    files: list[str] = []
    if spec.wordnet:
        files += glob.glob(os.path.join(WORDNET_DIR, "data.*"))
    for pattern in spec.fortunes:
        files += [f for f in glob.glob(os.path.join(FORTUNE_DIR, pattern)) if "." not in os.path.basename(f) or f.endswith(".fortunes")]
    if spec.man:
        files += glob.glob(os.path.join(MAN_DIR, spec.man, "man*", "*.gz"))
    files = [f for f in files if os.path.isfile(f)] + [b for b in spec.books if os.path.exists(b)]
    return sorted({os.path.realpath(f) for f in files})


def _paragraphs(path: str) -> Iterable[str]:
    """The paragraphs of one source file (or SWORD module folder), by the kind of source it is."""
    from voxkit.data import books

    if os.path.dirname(path) == os.path.realpath(WORDNET_DIR):
        return itertools.chain(wordnet_examples(path), wordnet_definitions(path))
    if os.path.isdir(path):
        return books.sword_verses(path)
    if os.path.basename(path) == "english-german.dict.dz":
        return books.ding_sentences(path)
    if path.endswith(".dict.dz"):
        return books.dictd_paragraphs(path)
    if path.endswith(".txt"):
        return books.plain_paragraphs(path)
    if "/man/" in path:
        return man_paragraphs(path)
    return fortune_paragraphs(path)


def file_sentences(path: str, lang: str) -> list[str]:
    """The clean sentences of one source file (not deduplicated), in file order."""
    return [s for para in _paragraphs(path) for sent in split_sentences(para) if (s := clean_sentence(sent, lang))]


def natural_sentences(lang: str) -> list[str]:
    """All clean, deduplicated natural sentences for ``lang`` from the installed Debian sources.

    Remembered in-process (why): reading and cleaning the sources takes tens of seconds for English,
    and a process that plans several corpora (other seeds, hours or language sets) needs the same
    pool each time. The memo is keyed by the language's spec, the source folders and the path, size
    and modification time of every source file, so a changed or added source is read again.
    """
    spec = language_spec(lang)
    files = tuple((path, _file_stamp(path)) for path in source_files(lang))
    return list(_natural_pool(spec, (FORTUNE_DIR, MAN_DIR, WORDNET_DIR), files))


def _file_stamp(path: str) -> tuple[tuple[str, int, int], ...]:
    """(path, size, mtime) of a file, or of every file under a folder (a SWORD module)."""
    found = [os.path.join(root, n) for root, _, names in os.walk(path) for n in names] if os.path.isdir(path) else [path]
    return tuple((f, (st := os.stat(f)).st_size, st.st_mtime_ns) for f in sorted(found))


@functools.lru_cache(maxsize=len(LANGUAGES))
def _natural_pool(spec: LanguageSpec, folders: tuple[str, ...], files: tuple[tuple[str, object], ...]) -> tuple[str, ...]:
    """:func:`natural_sentences`' memo; ``folders`` and the stamps in ``files`` only key it."""
    return tuple(dedupe(s for path, _ in files for s in file_sentences(path, spec.code)))


def dedupe_key(text: str) -> str:
    return " ".join(w.lower() for w in spoken_words(text))


def dedupe(sentences: Iterable[str]) -> list[str]:
    """Keep the first occurrence of each sentence, comparing lower-cased spoken words only."""
    seen: set[str] = set()
    out = []
    for s in sentences:
        k = dedupe_key(s)
        if k not in seen:
            seen.add(k)
            out.append(s)
    return out


def stable_fraction(key: str, salt: str = "") -> float:
    """A deterministic number in [0, 1) from a string (the same on every machine and Python run)."""
    h = hashlib.blake2b((salt + "\0" + key).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


# Salt of the held-out hashes. It does NOT follow a plan's seed: every plan, whatever its seed,
# must agree on which sentences and voices are held out, or a plan made with another seed puts
# another plan's test sentences into its train split. "1" is what seed 1 used when the salt still
# followed the seed, so the English corpora built with seed 1 kept their splits.
SPLIT_SALT = "1"


def text_split(sentence: str, fractions: dict[str, float]) -> str:
    """Assign a sentence to a split by a hash of its words, so a sentence never crosses splits."""
    return pick_split(stable_fraction(dedupe_key(sentence), f"text{SPLIT_SALT}"), fractions)


def pick_split(u: float, fractions: dict[str, float]) -> str:
    """The split whose cumulative fraction interval holds ``u`` in [0, 1)."""
    acc = 0.0
    for name, frac in fractions.items():
        acc += frac
        if u < acc:
            return name
    return next(iter(fractions))
