"""Readers for the book-like English text sources: a dictd dictionary, a plain text, a SWORD Bible.

Why: by 2026-11 the recogniser's English errors were spellings of rare words in natural sentences,
and the fortune cookies (~12 k English sentences) were used up; glosses and templated sentences did
not help. These Debian packages add natural, modern-ish English prose with a wide vocabulary:
``dict-devil`` (Bierce's "The Devil's Dictionary"), ``display-dhammapada`` (an English translation
of the Dhammapada), ``sword-text-web`` (the World English Bible, public domain, ~39 k verses) and,
since 2026-11-27, the English example sentences of ``dict-de-en`` (the Ding German-English
dictionary: ~18 k sentence headwords, 14.5 k after cleaning, such as "What's on your mind?"), the
register the fortunes have and the books lack: contractions, questions, first and second person.
Each reader yields paragraphs; :mod:`voxkit.data.text` splits and cleans them like any other source.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import zlib
from collections.abc import Iterator

from voxkit.data.text import _read_text
from voxkit.errors import DataError

# A Devil's Dictionary entry starts with its headword and part of speech: "ABSOLUTE, adj.  ".
_DICT_HEADWORD = re.compile(r"^[A-Z][A-Z' .-]*,\s+(?:[a-z]+\.\s*)+(?:\[[^\]]*\]\s*)?")
_MARKUP = re.compile(r"<[^>]*>")
_NOTE = re.compile(r"<note\b.*?</note>", re.DOTALL)
_BRACES = re.compile(r"[{}]")
# A Ding headword that is a whole sentence: capital first letter, final . ! or ?, no sb./sth.
# placeholders, alternatives or bracketed notes.
_DING_SENTENCE = re.compile(r"^[A-Z][^\[\]{}()/;|]*[.!?]$")
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _blank_line_paragraphs(text: str) -> Iterator[str]:
    for block in re.split(r"\n\s*\n", text):
        if block.startswith((" ", "\t")):
            continue  # indented verse, quotations and tables are not prose
        para = " ".join(line.strip() for line in block.splitlines()).strip()
        if para:
            yield para


def dictd_paragraphs(path: str) -> Iterator[str]:
    """Prose paragraphs of a dictd ``.dict.dz`` file (gzip-compatible), headwords removed."""
    with gzip.open(path) as f:
        text = f.read().decode("utf-8", errors="replace")
    for para in _blank_line_paragraphs(text):
        yield _BRACES.sub("", _DICT_HEADWORD.sub("", para))


def _dictd_number(code: str) -> int:
    """A dictd index offset or length: base-64 digits, most significant first."""
    value = 0
    for ch in code:
        value = value * 64 + _B64.index(ch)
    return value


def ding_sentences(path: str) -> Iterator[str]:
    """The whole-sentence English headwords of the Ding ``english-german.dict.dz``.

    Why the index: it is the only place that says where each entry starts (the entries carry no
    separator that prose cannot contain); its headwords are lower-cased and stripped of
    punctuation, so each entry's first line is read for the original spelling.
    """
    index = path[: -len(".dict.dz")] + ".index"
    if not os.path.isfile(index):
        raise DataError(f"{path}: no dictd index {index}")
    with gzip.open(path) as f:
        data = f.read()
    seen: set[str] = set()
    with open(index, encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 3:
                continue
            offset, length = _dictd_number(fields[1]), _dictd_number(fields[2])
            head = data[offset : offset + length].decode("utf-8", errors="replace").split("\n", 1)[0].strip()
            if head not in seen and _DING_SENTENCE.match(head):
                seen.add(head)
                yield head


def plain_paragraphs(path: str) -> Iterator[str]:
    """Blank-line separated paragraphs of a plain text file (UTF-8, else Latin-1)."""
    yield from _blank_line_paragraphs(_read_text(path))


def sword_verses(module_dir: str) -> Iterator[str]:
    """Verses of a SWORD ``zText`` module (OSIS markup and footnotes removed).

    Layout (per testament ``ot``/``nt``): ``.bzs`` holds one (offset, size, uncompressed size)
    uint32 triple per zlib block of ``.bzz``; ``.bzv`` holds one (block, start, length) record
    (uint32, uint32, uint16) per verse slot, zero length for empty slots.
    """
    found = False
    for testament in ("ot", "nt"):
        base = os.path.join(module_dir, testament)
        if not os.path.exists(base + ".bzv"):
            continue
        found = True
        with open(base + ".bzs", "rb") as f:
            blocks = list(struct.iter_unpack("<III", f.read()))
        with open(base + ".bzz", "rb") as f:
            packed = f.read()
        with open(base + ".bzv", "rb") as f:
            index = f.read()
        cached_block, data = -1, b""
        for block, start, length in struct.iter_unpack("<IIH", index[: len(index) // 10 * 10]):
            if length == 0 or block >= len(blocks):
                continue
            if block != cached_block:
                offset, size, _ = blocks[block]
                data, cached_block = zlib.decompress(packed[offset : offset + size]), block
            verse = data[start : start + length].decode("utf-8", errors="replace")
            text = " ".join(_MARKUP.sub("", _NOTE.sub("", verse)).split())
            if text:
                yield text
    if not found:
        raise DataError(f"{module_dir}: not a SWORD zText module (no ot.bzv or nt.bzv)")
