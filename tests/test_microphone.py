"""``voxkit transcribe --mic`` with a stand-in for sounddevice: the microphone path end to end.

The microphone opens only after the model has loaded; the command says when it records, so that
nobody speaks into a microphone that is not yet listening. A recording at the device's own rate
(48 kHz here) is resampled to 16 kHz as it comes, and Ctrl-C ends the run with the transcript so far.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import run_cli
from voxkit.audio.io import load_audio

SAMPLE = Path(__file__).resolve().parents[1] / "voxkit" / "assets" / "samples" / "en.flac"
RATE = 48000


def _fake_sounddevice(recording: np.ndarray, opened: list[str]) -> types.ModuleType:
    """A module with sounddevice's query_devices and InputStream; reading past the recording is Ctrl-C."""

    class InputStream:
        def __init__(self, samplerate: int, channels: int, dtype: str, device: object, blocksize: int) -> None:
            assert (samplerate, channels, dtype) == (RATE, 1, "float32")
            self.at = 0

        def __enter__(self) -> InputStream:
            opened.append("open")
            return self

        def __exit__(self, *exc: object) -> None:
            opened.append("closed")

        def read(self, frames: int) -> tuple[np.ndarray, bool]:
            if self.at >= len(recording):
                raise KeyboardInterrupt  # the person presses Ctrl-C
            block = recording[self.at : self.at + frames]
            self.at += frames
            return np.pad(block, (0, frames - len(block)))[:, None], False  # [frames, 1]

    module = types.ModuleType("sounddevice")
    module.query_devices = lambda device, kind: {"name": "Test Mic", "default_samplerate": float(RATE)}  # type: ignore[attr-defined]
    module.InputStream = InputStream  # type: ignore[attr-defined]
    return module


def test_the_microphone_is_transcribed_and_says_when_it_listens(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    speech = load_audio(SAMPLE, RATE).numpy()  # [T] at the device's rate
    recording = np.concatenate([speech, np.zeros(RATE, np.float32)])  # then a second of silence
    opened: list[str] = []
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(recording, opened))
    code, out, err = run_cli(["transcribe", "--mic"], capsys)
    file_code, file_out, _ = run_cli(["transcribe", str(SAMPLE)], capsys)
    assert code == 0 and file_code == 0
    assert err == "voxkit transcribe: listening on Test Mic (48000 Hz); Ctrl-C stops\n"
    assert opened == ["open", "closed"]
    assert out.split() == file_out.split()  # the words the file gives
