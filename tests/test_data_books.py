"""Book-like English text sources: dictd dictionary, Ding examples, plain text, SWORD zText module."""

import gzip
import struct
import zlib

import pytest

from voxkit.data.books import (
    dictd_paragraphs,
    ding_sentences,
    plain_paragraphs,
    sword_verses,
)
from voxkit.errors import DataError


def test_dictd_entries_lose_headwords_and_verse(tmp_path):
    text = (
        "ABSURDITY, n.  A statement or belief manifestly inconsistent with\none's own opinion.\n\n"
        "ACADEMY, n.  [from {ACADEME}]   A modern school where football is\ntaught.\n\n"
        "    Said a man to a crapulent youth:  \"I thought\n        You a total abstainer.\"\n\n"
        "ABSTAINER, n.  A weak person who yields to the {temptation} of denying\nhimself a pleasure.\n"
    )
    path = tmp_path / "devil.dict.dz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)
    assert list(dictd_paragraphs(str(path))) == [
        "A statement or belief manifestly inconsistent with one's own opinion.",
        "A modern school where football is taught.",
        "A weak person who yields to the temptation of denying himself a pleasure.",
    ]


def _dictd_code(value: int) -> str:
    digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    out = ""
    while True:
        out = digits[value % 64] + out
        value //= 64
        if value == 0:
            return out


def test_ding_sentences_keep_whole_english_sentences(tmp_path):
    entries = [
        "cable stripper\n\n   Abmantelmesser {n}\n",
        "Then you\u2019ll get the confirmation of your cancellation.\n\n   Sie erhalten dann eine Abmeldebest\u00e4tigung.\n",
        "to take an instant dislike to sb./sth.\n\n   sofort eine Abneigung gegen etw. empfinden\n",
        "What brings you to me?\n\n   Was f\u00fchrt dich zu mir?\n",
        "Give my regards to her (formal).\n\n   Gr\u00fc\u00dfe\n",
        "What brings you to me?\n\n   Was treibt dich her?\n",  # the same sentence, another entry
    ]
    blobs = [e.encode("utf-8") for e in entries]
    index_lines, offset = [], 0
    for blob in blobs:
        head = blob.decode("utf-8").split("\n", 1)[0].lower().rstrip(".?")
        index_lines.append(f"{head}\t{_dictd_code(offset)}\t{_dictd_code(len(blob))}\n")
        offset += len(blob)
    path = tmp_path / "english-german.dict.dz"
    with gzip.open(path, "wb") as f:
        f.write(b"".join(blobs))
    (tmp_path / "english-german.index").write_text("".join(sorted(index_lines)), encoding="utf-8")
    assert sorted(ding_sentences(str(path))) == [
        "Then you\u2019ll get the confirmation of your cancellation.",
        "What brings you to me?",
    ]


def test_ding_sentences_need_the_index(tmp_path):
    path = tmp_path / "english-german.dict.dz"
    with gzip.open(path, "wb") as f:
        f.write(b"x\n")
    with pytest.raises(DataError, match="no dictd index"):
        list(ding_sentences(str(path)))


def test_plain_paragraphs_join_lines(tmp_path):
    path = tmp_path / "book.txt"
    path.write_bytes("Overcome anger with\nfreedom from anger.\n\n   indented table\n\nCaf\xe9 is open.\n".encode("latin-1"))
    assert list(plain_paragraphs(str(path))) == ["Overcome anger with freedom from anger.", "Café is open."]


def _write_ztext(folder, testament: str, blocks: list[list[str]]) -> None:
    """A SWORD zText testament: verses grouped into zlib blocks, as the format stores them."""
    bzs, bzz, bzv = b"", b"", struct.pack("<IIH", 0, 0, 0)  # slot 0 is empty, as for a book heading
    for b, verses in enumerate(blocks):
        raw = b""
        for v in verses:
            data = v.encode("utf-8")
            bzv += struct.pack("<IIH", b, len(raw), len(data))
            raw += data
        packed = zlib.compress(raw)
        bzs += struct.pack("<III", len(bzz), len(packed), len(raw))
        bzz += packed
    for ext, data in (("bzs", bzs), ("bzz", bzz), ("bzv", bzv)):
        (folder / f"{testament}.{ext}").write_bytes(data)


def test_sword_verses_strip_markup_and_notes(tmp_path):
    _write_ztext(tmp_path, "ot", [
        ['<w lemma="strong:H0834">He</w> <w lemma="x">lifted</w> up his eyes.', "<div sID=\"p1\"/>Esau said, “What do you mean?”"],
        ['Leah came near<note type="x-footnote">or, approached</note>, and bowed.'],
    ])
    _write_ztext(tmp_path, "nt", [["Love one another."]])
    assert list(sword_verses(str(tmp_path))) == [
        "He lifted up his eyes.",
        "Esau said, “What do you mean?”",
        "Leah came near, and bowed.",
        "Love one another.",
    ]


def test_sword_refuses_other_folders(tmp_path):
    with pytest.raises(DataError, match="not a SWORD zText module"):
        list(sword_verses(str(tmp_path)))
