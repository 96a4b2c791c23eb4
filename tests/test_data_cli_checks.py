"""`voxkit data` flag values and empty inputs: one `voxkit data: error:` line, exit 2, before any work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxkit.cli.main import main
from voxkit.data.manifest import write_manifest


def _manifest(tmp_path: Path, rows: int = 3) -> Path:
    """A manifest of short tone clips with word timings (the shape `voxkit data synth` writes)."""
    out = []
    for i in range(rows):
        wav = tmp_path / f"c{i}.wav"
        sf.write(wav, (0.1 * np.sin(np.arange(8000) / 5)).astype(np.float32), 16000)
        out.append({"audio": str(wav), "text": "hello there", "language": "en", "speaker": f"s{i}", "duration": 0.5,
                    "sample_rate": 16000, "id": f"c{i}",
                    "words": [{"word": "hello", "start": 0.0, "end": 0.2}, {"word": "there", "start": 0.25, "end": 0.45}]})
    path = tmp_path / "m.jsonl"
    write_manifest(path, out)
    return path


def _one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("voxkit data: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize(("argv", "needle"), [
    (["vocab", "{m}", "--out", "{t}/v", "--max-pieces", "-5"], "--max-pieces takes a number of pieces of at least 1, got -5"),
    (["vocab", "{m}", "--out", "{t}/v", "--max-pieces", "0"], "--max-pieces"),
    (["vocab", "{m}", "--out", "{t}/v", "--min-count", "0"], "--min-count"),
    (["check", "{m}", "--max-report", "-1"], "--max-report takes a number of bad rows to print (0: only the counts) of at least 0"),
    (["chat", "{m}", "--out", "{t}/v/c.jsonl", "--spoken-questions", "-2"], "--spoken-questions"),
    (["chat", "{m}", "--out", "{t}/v/c.jsonl", "--per-row", "0"], "--per-row"),
    (["tts", "{m}", "--codec", "{t}/none", "--out", "{t}/v", "--limit", "0"],
     "--limit takes a number of clips per manifest of at least 1, got 0"),
    (["tts", "{m}", "--codec", "{t}/none", "--out", "{t}/v", "--limit", "-1"], "--limit"),
    (["tts", "{m}", "--codec", "{t}/none", "--out", "{t}/v", "--max-seconds", "0"], "--max-seconds"),
    (["tts", "{m}", "--codec", "{t}/none", "--out", "{t}/v", "--max-seconds", "nan"], "--max-seconds"),
])
def test_bad_counts_name_their_flag_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    m = _manifest(tmp_path)
    argv = [a.format(m=m, t=tmp_path) for a in argv]
    assert main(["data", *argv]) == 2
    _one_line_error(capsys, needle)
    assert not (tmp_path / "v").exists()  # refused before the output folder was made


def test_check_max_report_zero_prints_only_the_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = _manifest(tmp_path)
    with open(m, "a") as f:
        f.write("{bad\n{bad\n")
    assert main(["data", "check", str(m), "--max-report", "0"]) == 1
    captured = capsys.readouterr()
    assert captured.out == f"{m}: ... 2 more bad rows\n" and "3/5 rows ok" in captured.err


def test_chat_refuses_an_empty_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "chat" / "e.jsonl"
    assert main(["data", "chat", str(empty), "--out", str(out)]) == 2
    _one_line_error(capsys, f"no rows in {empty}")
    assert not out.exists()


def test_chat_refuses_when_no_kind_fits_the_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.jsonl"
    assert main(["data", "chat", str(_manifest(tmp_path)), "--out", str(out), "--kinds", "spoken_question=1"]) == 2
    _one_line_error(capsys, "no instruction examples from 3 rows", "spoken_question needs --spoken-questions N")
    assert not out.exists()


def test_chat_still_writes_examples_from_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.jsonl"
    assert main(["data", "chat", str(_manifest(tmp_path)), "--out", str(out), "--kinds", "count_words=1"]) == 0
    assert capsys.readouterr().out.startswith(f"{out}: 3 examples from 3 rows (count_words 3)")
    header, *examples = [json.loads(line) for line in out.read_text().splitlines()]
    assert header["examples"] == 3 and {e["answer"] for e in examples} == {"2"}
