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
