"""``voxkit transcribe`` given several inputs, some of them bad: what stdout and stderr show.

A user transcribing ``good.wav bad.wav other.flac`` reads the "# NAME" headers to tell the
transcripts apart. An input that yields no transcript (missing, empty, no samples, a folder) must
not get a header, only its one error line; the good inputs are still transcribed and the exit
status says that something failed.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_helpers import chirp
from cli_helpers import run_cli
from voxkit.audio.io import load_audio
from voxkit.audio.write import save_audio

SAMPLE = Path(__file__).resolve().parents[1] / "voxkit" / "assets" / "samples" / "en.flac"


def _inputs(root: Path) -> tuple[list[str], list[str]]:
    """(good inputs, bad inputs) in separate folders, so that no name is part of another."""
    good_dir, bad_dir = root / "good", root / "bad"
    good_dir.mkdir()
    bad_dir.mkdir()
    save_audio(good_dir / "first.wav", chirp(1.5), 16000)
    save_audio(good_dir / "second.flac", chirp(1.0, seed=1), 16000)
    (bad_dir / "empty.wav").write_bytes(b"")
    sf.write(bad_dir / "nosamples.wav", np.zeros(0, np.float32), 16000)
    (bad_dir / "afolder").mkdir()
    good = [str(good_dir / "first.wav"), str(good_dir / "second.flac")]
    bad = [str(bad_dir / "missing.wav"), str(bad_dir / "empty.wav"), str(bad_dir / "nosamples.wav"), str(bad_dir / "afolder")]
    return good, bad


@pytest.mark.parametrize("fmt", [None, "txt", "srt", "vtt", "json", "jsonl", "-o"])
def test_a_bad_input_gets_its_error_line_and_no_header(
    model_dir: Path, tmp_path: Path, fmt: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = _inputs(tmp_path)
    inputs = [good[0], *bad, good[1]]  # bad ones between the good ones
    extra = [] if fmt is None else ["-o", str(tmp_path / "out")] if fmt == "-o" else ["-f", fmt]
    code, out, err = run_cli(["transcribe", *inputs, *extra, "--model", str(model_dir)], capsys)
    assert code == 1, err  # some failed, some did not
    assert "Traceback" not in err
    lines = err.splitlines()
    assert [line for line in lines if line.startswith("#")] == [f"# {good[0]}", f"# {good[1]}"], err
    errors = [line for line in lines if line.startswith("voxkit transcribe: error:")]
    assert len(errors) == len(bad) and len(lines) == len(bad) + 2, err
    for name, line in zip(bad, errors, strict=True):
        assert [x for x in lines if name in x] == [line], err  # named by its error line alone, no header too
    assert lines[0] == f"# {good[0]}" and lines[-1] == f"# {good[1]}"  # in the order given
    if fmt == "-o":
        assert out == ""
        assert sorted(p.stem for p in (tmp_path / "out").iterdir()) == ["first"] * 5 + ["second"] * 5
    elif fmt == "json":
        decoder, docs, pos = json.JSONDecoder(), [], 0
        while pos < len(out.rstrip()):
            doc, pos = decoder.raw_decode(out, pos)
            docs.append(doc)
            pos += len(out[pos:]) - len(out[pos:].lstrip())
        assert [d["duration"] for d in docs] == pytest.approx([1.5, 1.0])
    elif fmt == "jsonl":
        finals = [json.loads(line) for line in out.splitlines() if '"final"' in line]
        assert [f["duration"] for f in finals] == pytest.approx([1.5, 1.0])
    elif fmt in (None, "txt"):
        assert len(out.splitlines()) == 2  # one transcript line per good input
    else:
        assert out.count("WEBVTT" if fmt == "vtt" else "00:00:00,000 -->") == 2


def test_only_bad_inputs_exit_2_without_headers(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, bad = _inputs(tmp_path)
    code, out, err = run_cli(["transcribe", *bad, "--model", str(model_dir)], capsys)
    assert code == 2 and out == ""
    assert [line.split(":")[1].strip() for line in err.splitlines()] == ["error"] * len(bad), err


def test_an_input_failing_midway_ends_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Raw float stdin that turns to NaN after its first words: those words stay on their own line,
    and the next input's transcript starts a new one instead of continuing it."""
    wav = load_audio(SAMPLE, 16000).numpy()[: 3 * 16000].copy()
    wav[int(2.5 * 16000)] = np.nan
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(wav.astype("<f4").tobytes())))
    code, out, err = run_cli(["transcribe", "-", str(SAMPLE), "--format", "f32le"], capsys)
    assert code == 1
    assert err.splitlines() == [
        "# stdin", "voxkit transcribe: error: stdin: audio contains NaN or infinite samples", f"# {SAMPLE}"
    ]
    partial, whole = out.splitlines()
    assert partial.split() and whole.startswith(partial.strip())  # the first words of the sample, then the sample
    assert len(whole.split()) > len(partial.split())
