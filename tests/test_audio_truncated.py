"""A WAV whose header promises more samples than the file holds is read with a one-line warning."""

from __future__ import annotations

import io
import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli_helpers import run_cli
from voxkit.audio.io import load_audio, load_input


def _wav(seconds: float, rate: int = 16000) -> bytes:
    """A whole 16-bit mono WAV of a quiet tone."""
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _cut(data: bytes, keep_bytes: int) -> bytes:
    """The file cut short behind its header (the header still promises the whole length)."""
    start = data.index(b"data") + 8
    return data[: start + keep_bytes]


def test_a_truncated_file_warns_once_and_keeps_what_is_there(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    path.write_bytes(_cut(_wav(3.0), 2 * 160))  # 3 s promised, 10 ms of samples held
    with pytest.warns(UserWarning) as caught:
        wav = load_audio(path, 16000)
    messages = [str(w.message) for w in caught]
    assert messages == [f"{path} is truncated: its header promises 3.00 s, it holds 0.01 s"]
    assert wav.shape == (160,)


def test_bytes_and_open_files_are_checked_too(tmp_path: Path) -> None:
    data = _cut(_wav(2.0), 16000 * 2)  # 1 s of 2
    with pytest.warns(UserWarning, match="promises 2.00 s, it holds 1.00 s"):
        assert load_input(data, None, 16000, "test").shape == (16000,)
    with pytest.warns(UserWarning, match="<stream> is truncated"):
        load_audio(io.BytesIO(data), 16000)


def test_whole_files_and_pipe_headers_do_not_warn(tmp_path: Path) -> None:
    whole = tmp_path / "whole.wav"
    whole.write_bytes(_wav(1.0))
    data = bytearray(_wav(1.0))
    at = data.index(b"data") + 4
    data[at : at + 4] = struct.pack("<I", 0xFFFFFFFF)  # a pipe writer's "size unknown"
    piped = tmp_path / "piped.wav"
    piped.write_bytes(bytes(data))
    flac = tmp_path / "tone.flac"
    sf.write(flac, np.zeros(16000, np.float32), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in (whole, piped, flac):
            assert load_audio(path, 16000).shape == (16000,)


def test_transcribe_of_a_truncated_file_says_so(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The user's report: a file cut to almost nothing printed nothing and succeeded, unexplained."""
    path = tmp_path / "cut.wav"
    path.write_bytes(_cut(_wav(3.0), 2 * 800))
    code, out, err = run_cli(["transcribe", str(path), "--model", str(model_dir), "-f", "json"], capsys)
    assert code == 0, err
    # one line, as the command's errors are: no file, line number or source line of voxkit's own
    assert [line for line in err.splitlines() if "truncated" in line] == [
        f"voxkit transcribe: warning: {path} is truncated: its header promises 3.00 s, it holds 0.05 s"]
    assert "UserWarning" not in err and "warnings.warn" not in err
    assert json.loads(out)["duration"] == pytest.approx(0.05)


def test_extensible_wavs_and_stdin_and_repeats_warn_too(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """WAVE_FORMAT_EXTENSIBLE (what ffmpeg writes for 24-bit, float or > 2 channels), a truncated
    WAV piped to stdin, and the same truncated file given twice each get their one-line notice."""
    import subprocess
    import sys

    t = np.arange(3 * 16000) / 16000
    buf = io.BytesIO()
    sf.write(buf, np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * 3, axis=1).astype(np.float32), 16000, format="WAVEX", subtype="PCM_24")
    wavex = buf.getvalue()
    assert struct.unpack("<H", wavex[20:22])[0] == 0xFFFE  # WAVE_FORMAT_EXTENSIBLE
    cut = tmp_path / "cut24.wav"
    cut.write_bytes(_cut(wavex, 9 * 1600))  # 0.1 s of 3 x 24-bit samples
    with pytest.warns(UserWarning, match="cut24.wav is truncated: its header promises 3.00 s, it holds 0.10 s"):
        load_audio(cut, 16000)
    code, _, err = run_cli(["transcribe", str(cut), str(cut), "--model", str(model_dir), "-f", "txt"], capsys)
    assert code == 0 and err.count("voxkit transcribe: warning:") == 2, err  # each input its own notice
    piped = subprocess.run([sys.executable, "-m", "voxkit.cli.main", "transcribe", "-", "--model", str(model_dir), "-f", "txt"],
                           input=_cut(_wav(3.0), 2 * 1600), capture_output=True, check=True)
    assert b"voxkit transcribe: warning: stdin is truncated: its WAV header promises 3.00 s, it held 0.10 s" in piped.stderr
    empty = subprocess.run([sys.executable, "-m", "voxkit.cli.main", "transcribe", "-", "--model", str(model_dir), "-f", "jsonl"],
                           input=b"", capture_output=True)
    assert empty.returncode == 2 and empty.stdout == b"" and b"no audio received" in empty.stderr  # nothing on stdout
