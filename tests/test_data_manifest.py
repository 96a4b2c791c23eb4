"""Manifests: round trip, validator reports bad rows with reasons, CLI exit codes."""

import json
import math

import numpy as np
import soundfile as sf

from voxkit.cli.main import main
from voxkit.data.manifest import check_manifest, read_manifest, write_manifest


def _wav(path, seconds=1.0, sr=16000):
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), sr)


def _good_row(path):
    return {"audio": str(path), "text": "Hello there, friend.", "language": "en", "speaker": "s1",
            "duration": 1.0, "sample_rate": 16000,
            "words": [{"word": "Hello", "start": 0.0, "end": 0.3}, {"word": "there", "start": 0.35, "end": 0.6},
                      {"word": "friend", "start": 0.65, "end": 0.95}]}


def test_round_trip_relative_paths(tmp_path):
    _wav(tmp_path / "a.wav")
    rows = [_good_row(tmp_path / "a.wav")]
    write_manifest(tmp_path / "m.jsonl", rows, relative_to=str(tmp_path))
    raw = json.loads((tmp_path / "m.jsonl").read_text().splitlines()[0])
    assert raw["audio"] == "a.wav"
    back = read_manifest(tmp_path / "m.jsonl")
    assert back == rows
    assert check_manifest(tmp_path / "m.jsonl", decode=True).problems == []


def test_bad_rows_are_reported_not_crashed_on(tmp_path, capsys):
    _wav(tmp_path / "ok.wav")
    (tmp_path / "broken.wav").write_bytes(b"RIFF....garbage")
    good = _good_row(tmp_path / "ok.wav")
    rows = [
        good,
        {**good, "audio": str(tmp_path / "missing.wav")},
        {**good, "duration": math.nan},
        {**good, "text": "  "},
        {**good, "audio": str(tmp_path / "broken.wav")},
        {**good, "duration": 3.0},
        {**good, "words": good["words"][::-1]},
        {k: v for k, v in good.items() if k != "duration"},
    ]
    path = tmp_path / "m.jsonl"
    write_manifest(path, rows)
    with open(path, "a") as f:
        f.write("{not json\n")
    report = check_manifest(path)
    reasons = dict(report.problems)
    assert report.rows == 9 and report.good == 1
    assert "audio file missing" in reasons[2]
    assert "bad duration" in reasons[3]
    assert "empty text" in reasons[4]
    assert "unreadable audio" in reasons[5]
    assert "does not match the audio" in reasons[6]
    assert "words do not match" in reasons[7] or "monotonic" in reasons[7]
    assert "missing field 'duration'" in reasons[8]
    assert "invalid JSON" in reasons[9]
    assert main(["data", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:2: audio file missing" in out


def test_cli_user_errors_exit_2(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nope.jsonl")]) == 2
    assert "voxkit data: error: manifest not found" in capsys.readouterr().err
    assert main(["data", "synth", "--out", str(tmp_path / "c"), "--languages", "xx"]) == 2
    assert "unsupported language" in capsys.readouterr().err


def test_check_reports_replacement_characters_and_byte_order_marks(tmp_path, capsys):
    _wav(tmp_path / "a.wav")
    good = {k: v for k, v in _good_row(tmp_path / "a.wav").items() if k != "words"}
    path = tmp_path / "m.jsonl"
    write_manifest(path, [good, {**good, "text": "caf\ufffd cr\ufffdme"}, {**good, "text": "\ufeffhello"}])
    report = check_manifest(path)
    reasons = dict(report.problems)
    assert report.good == 1 and sorted(reasons) == [2, 3]
    assert "U+FFFD" in reasons[2] and "byte-order mark" in reasons[3]
    assert main(["data", "check", str(path)]) == 1
    assert f"{path}:3: text holds a byte-order mark" in capsys.readouterr().out
