"""What the data commands say about audio files that do not fit their manifest rows.

``voxkit data check`` compares a row's recorded sample_rate (and, with --decode, its duration) with
the file; ``voxkit data manifest`` lists recordings it cannot decode as skipped, with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli_helpers import run_cli
from voxkit.data.importer import import_directory
from voxkit.data.manifest import check_manifest


def _flac(path: Path, seconds: float, sr: int) -> None:
    sf.write(path, (np.random.RandomState(0).randn(int(sr * seconds)) * 0.1).astype(np.float32), sr, format="FLAC")


def _manifest(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_recorded_sample_rate_the_file_does_not_have_is_a_bad_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The corpus the review found: rows claiming 24 kHz over 16 kHz files passed --decode."""
    _flac(tmp_path / "a.flac", 1.0, 16000)
    good = {"audio": "a.flac", "text": "hello there", "duration": 1.0, "sample_rate": 16000}
    m = _manifest(tmp_path / "m.jsonl", [good, {**good, "sample_rate": 24000}])
    for decode in (False, True):  # the header gives the rate: no decoding needed to see it
        assert check_manifest(m, decode=decode).problems == [(2, "sample_rate 24000 does not match the audio (16000 Hz)")]
    code, out, err = run_cli(["data", "check", str(m), "--decode"], capsys)
    assert code == 1 and f"{m}:2: sample_rate 24000 does not match the audio (16000 Hz)" in out
    assert "1/2 rows ok" in err
    assert run_cli(["data", "check", str(_manifest(tmp_path / "ok.jsonl", [good, {**good, "sample_rate": 16000.0}]))],
                   capsys)[0] == 0


def test_decode_compares_the_duration_with_the_decoded_audio(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A cut FLAC keeps the header of the whole file: its header's length matches the row, what a
    reader gets (0.77 s here) does not."""
    _flac(tmp_path / "whole.flac", 2.0, 16000)
    data = (tmp_path / "whole.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    m = _manifest(tmp_path / "m.jsonl", [{"audio": "cut.flac", "text": "hello", "duration": 2.0, "sample_rate": 16000}])
    assert check_manifest(m).problems == []  # header only: what the header promises
    with pytest.warns(UserWarning, match="truncated"):
        problems = check_manifest(m, decode=True).problems
    assert len(problems) == 1 and problems[0][1].startswith("duration 2.000s does not match the decoded audio (0.")
    code, out, _ = run_cli(["data", "check", str(m), "--decode"], capsys)
    assert code == 1 and "does not match the decoded audio" in out
    # within the tolerance: a duration rounded to the millisecond, as every writer stores it
    _flac(tmp_path / "b.flac", 1.2345, 16000)
    ok = _manifest(tmp_path / "ok.jsonl", [{"audio": "b.flac", "text": "hello", "duration": 1.234, "sample_rate": 16000}])
    assert check_manifest(ok, decode=True).problems == []


def test_manifest_lists_recordings_it_cannot_decode_as_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "rec dir"
    d.mkdir()
    (d / "New Recording 3.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A ")  # a phone's voice memo
    (d / "New Recording 3.txt").write_text("hello there")
    (d / "memo.AAC").write_bytes(b"\xff\xf1")  # no transcript either
    (d / "done.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A ")  # converted already: done.wav is imported
    sf.write(d / "done.wav", np.full(8000, 0.1, np.float32), 16000)
    (d / "done.txt").write_text("converted")
    sf.write(d / "voice.opus", np.full(48000, 0.1, np.float32), 48000, format="OGG", subtype="OPUS")  # decodable
    (d / "voice.txt").write_text("an opus clip")
    rows, skipped = import_directory(str(tmp_path))
    assert sorted(Path(r["audio"]).name for r in rows) == ["done.wav", "voice.opus"]
    reasons = dict(skipped)
    assert reasons == {
        str(d / "New Recording 3.m4a"): "M4A audio, a format voxkit cannot decode; convert it first: "
                                         f"ffmpeg -i '{d}/New Recording 3.m4a' '{d}/New Recording 3.wav'",
        str(d / "memo.AAC"): f"AAC audio, a format voxkit cannot decode; convert it first: ffmpeg -i '{d}/memo.AAC' "
                             f"'{d}/memo.wav' (and write its transcript to a .txt next to it)",
    }
    code, out, err = run_cli(["data", "manifest", str(d), "--out", str(tmp_path / "m.jsonl")], capsys)
    assert code == 0 and "2 rows" in out and "2 skipped" in out
    assert f"skipped {d / 'New Recording 3.m4a'}: M4A audio, a format voxkit cannot decode" in err
