"""Importing user folders: wav+txt pairs and LibriSpeech trees."""

import numpy as np
import soundfile as sf

from voxkit.cli.main import main
from voxkit.data.importer import import_directory
from voxkit.data.manifest import check_manifest, read_manifest


def _wav(path, seconds, sr=16000, fmt=None):
    sf.write(path, np.full(int(sr * seconds), 0.1, np.float32), sr, format=fmt)


def test_wav_txt_pairs(tmp_path, capsys):
    d = tmp_path / "alice"
    d.mkdir()
    _wav(d / "one.wav", 1.5)
    (d / "one.txt").write_text("First  recording\n")
    _wav(d / "two.wav", 0.5)
    (d / "two.txt").write_text("   ")
    _wav(d / "three.wav", 0.5)  # no transcript
    (d / "four.wav").write_bytes(b"junk")
    (d / "four.txt").write_text("bad audio")
    rows, skipped = import_directory(str(tmp_path))
    assert [r["text"] for r in rows] == ["First recording"]
    assert rows[0]["speaker"] == "alice" and rows[0]["duration"] == 1.5
    reasons = {p.split("/")[-1]: why for p, why in skipped}
    assert reasons["two.wav"] == "empty transcript"
    assert "no transcript" in reasons["three.wav"]
    assert "four.wav" in reasons
    out = tmp_path / "m.jsonl"
    assert main(["data", "manifest", str(tmp_path), "--out", str(out), "--relative"]) == 0
    assert check_manifest(out).problems == []


def test_librispeech_tree(tmp_path):
    chap = tmp_path / "103" / "1240"
    chap.mkdir(parents=True)
    _wav(chap / "103-1240-0000.flac", 1.0, fmt="FLAC")
    _wav(chap / "103-1240-0001.flac", 2.0, fmt="FLAC")
    (chap / "103-1240.trans.txt").write_text("103-1240-0000 CHAPTER ONE\n103-1240-0001 MISSUS RACHEL LYNDE\n103-1240-0002 NO AUDIO\n")
    rows, skipped = import_directory(str(tmp_path))
    assert [(r["text"], r["speaker"], r["duration"]) for r in rows] == [
        ("CHAPTER ONE", "103", 1.0), ("MISSUS RACHEL LYNDE", "103", 2.0)]
    assert len(skipped) == 1 and "missing" in skipped[0][1]
    assert main(["data", "manifest", str(tmp_path)]) == 0
    assert len(read_manifest(tmp_path / "manifest.jsonl")) == 2
    # --speaker-from none: no speaker, not the utterance id's prefix
    assert {r["speaker"] for r in import_directory(str(tmp_path), speaker_from="none")[0]} == {""}


def test_transcripts_are_utf8_with_bom_dropped_and_extensions_in_any_case(tmp_path, capsys):
    d = tmp_path / "bob"
    d.mkdir()
    _wav(d / "latin.wav", 0.5)
    (d / "latin.txt").write_bytes("café crème".encode("latin-1"))
    _wav(d / "bom.wav", 0.5)
    (d / "bom.txt").write_bytes("\ufeffhello there".encode())
    _wav(d / "F.flac", 0.5, fmt="FLAC")
    (d / "F.TXT").write_text("upper case names")
    _wav(d / "damaged.wav", 0.5)
    (d / "damaged.lab").write_text("caf\ufffd", encoding="utf-8")  # saved after a wrong decoding
    rows, skipped = import_directory(str(tmp_path))
    assert sorted((r["audio"].split("/")[-1], r["text"]) for r in rows) == [
        ("F.flac", "upper case names"), ("bom.wav", "hello there")]
    reasons = {p.split("/")[-1]: why for p, why in skipped}
    assert reasons.keys() == {"latin.wav", "damaged.wav"}
    assert reasons["latin.wav"].startswith("transcript latin.txt is not UTF-8 text (byte 0xe9 at offset 3)")
    assert "U+FFFD" in reasons["damaged.wav"]
    out = tmp_path / "m.jsonl"
    assert main(["data", "manifest", str(tmp_path), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"skipped {d / 'latin.wav'}: transcript latin.txt is not UTF-8 text" in captured.err
    assert "2 rows" in captured.out and "2 skipped" in captured.out
    assert check_manifest(out).problems == []


def test_librispeech_listing_with_bom_a_latin1_line_and_upper_case_audio(tmp_path):
    chap = tmp_path / "103" / "1240"
    chap.mkdir(parents=True)
    for n in range(3):
        _wav(chap / f"103-1240-000{n}.FLAC", 0.5, fmt="FLAC")
    (chap / "103-1240.TRANS.TXT").write_bytes(
        "\ufeff103-1240-0000 CHAPTER ONE\n".encode() + "103-1240-0001 CAFÉ\n".encode("latin-1")
        + "103-1240-0002 NAÏVE\n".encode())
    rows, skipped = import_directory(str(tmp_path))
    assert [(r["audio"].split("/")[-1], r["text"], r["speaker"]) for r in rows] == [
        ("103-1240-0000.FLAC", "CHAPTER ONE", "103"), ("103-1240-0002.FLAC", "NAÏVE", "103")]
    assert skipped == [(str(chap / "103-1240-0001.FLAC"),
                        "line 2 of 103-1240.TRANS.TXT is not UTF-8 text (byte 0xc9 at offset 17); save it as UTF-8")]
