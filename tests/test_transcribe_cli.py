"""``voxkit transcribe`` and ``voxkit.Transcriber`` as a user drives them, bad input included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from asr_helpers import chirp
from cli_helpers import run_cli
from voxkit.audio.write import save_audio


@pytest.fixture(scope="module")
def wav_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "clip.wav"
    save_audio(path, chirp(1.5), 16000)
    return path



def test_api_matches_stream_and_cli_json(model_dir: Path, wav_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import voxkit

    asr = voxkit.Transcriber(model_dir, delay_ms=240)
    whole = asr.transcribe(wav_path)
    stream = asr.stream()
    events = []
    wav = chirp(1.5).numpy()
    for start in range(0, len(wav), 777):  # odd chunk sizes, as a microphone delivers
        events += stream.push(wav[start : start + 777])
    events += stream.finish()
    assert stream.transcript.text == whole.text
    assert events[-1].kind == "final" and events[-1].text == whole.text
    assert [e.text for e in events if e.kind == "word"] == [w.text for w in whole.words]
    code, out, _ = run_cli(["transcribe", str(wav_path), "--model", str(model_dir), "--delay-ms", "240", "-f", "json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["text"] == whole.text and data["duration"] == pytest.approx(1.5)
    assert all(w["start"] <= w["end"] for w in data["words"])


def test_output_files_and_jsonl_events(model_dir: Path, wav_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run_cli(["transcribe", str(wav_path), "--model", str(model_dir), "-o", str(tmp_path)], capsys)
    assert code == 0
    assert {p.suffix for p in tmp_path.iterdir()} == {".txt", ".srt", ".vtt", ".json", ".jsonl"}
    assert (tmp_path / "clip.vtt").read_text().startswith("WEBVTT")
    lines = [json.loads(line) for line in (tmp_path / "clip.jsonl").read_text().splitlines()]
    assert lines[-1]["type"] == "final"
    assert {line["type"] for line in lines} <= {"delta", "word", "final"}


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_output_files_get_the_users_usual_mode(
    model_dir: Path, wav_path: Path, tmp_path: Path, umask: int, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import stat

    previous = os.umask(umask)
    try:
        code, _, _ = run_cli(["transcribe", str(wav_path), "--model", str(model_dir), "-o", str(tmp_path / "out")], capsys)
    finally:
        os.umask(previous)
    assert code == 0
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "out").iterdir()}
    assert len(modes) == 5 and set(modes.values()) == {0o666 & ~umask}, modes  # 0644 under umask 022, as any file the user writes


def test_stdin_raw_and_wav_give_the_file_result(model_dir: Path, wav_path: Path) -> None:
    cmd = [sys.executable, "-m", "voxkit.cli.main", "transcribe", "-", "--model", str(model_dir), "-f", "txt"]
    expected = subprocess.run([*cmd[:4], str(wav_path), *cmd[5:]], capture_output=True, text=True, check=True).stdout
    pcm = (chirp(1.5).numpy() * 32767).astype("<i2").tobytes()
    raw = subprocess.run(cmd, input=pcm + b"\x01", capture_output=True, check=True)  # + a truncated frame
    assert raw.stdout.decode() == expected
    assert raw.stderr.count(b"dropped 1 trailing bytes") == 1  # one warning, however the run is set up
    wav = subprocess.run(cmd, input=wav_path.read_bytes(), capture_output=True, check=True)
    assert wav.stdout.decode() == expected
    # 48 kHz stereo raw input is resampled and downmixed on the fly
    hi = torch.nn.functional.interpolate(chirp(1.5)[None, None], scale_factor=3, mode="linear")[0, 0].numpy()
    stereo = np.stack([hi, hi], axis=1)
    raw_args = ["--sample-rate", "48000", "--channels", "2", "--format", "f32le"]
    res = subprocess.run([*cmd, *raw_args], input=stereo.astype("<f4").tobytes(), capture_output=True)
    assert res.returncode == 0 and res.stderr == b""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.wav"], "audio file not found"),
        (["--delay-ms", "100", "X"], "multiple of 80"),
        ([], "give audio files"),
        (["--mic", "x.wav"], "--mic takes no input files"),
    ],
)
def test_user_errors_are_messages_not_tracebacks(
    model_dir: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["transcribe", *args, "--model", str(model_dir)], capsys)
    assert code in (1, 2)
    assert message in err and "Traceback" not in err


def test_each_unreadable_input_is_named_once(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing file, a folder and a device file: one line each, the input named once (the reader's
    message already names it; the command used to put the name in front again)."""
    missing, folder = str(tmp_path / "missing.wav"), str(tmp_path)
    code, _, err = run_cli(["transcribe", missing, folder, "/dev/null", "--model", str(model_dir)], capsys)
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and len(lines) == 3, err
    assert lines[0] == f"voxkit transcribe: error: audio file not found: {missing}"
    assert lines[1].startswith(f"voxkit transcribe: error: {folder} is a folder, not an audio file")
    assert lines[2] == "voxkit transcribe: error: /dev/null is not a regular file; to read a stream, pipe it to standard input (-)"


def test_odd_files(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    save_audio(tmp_path / "silent.flac", torch.zeros(16000), 16000)
    save_audio(tmp_path / "stereo48k.wav", torch.stack([chirp(1.0), chirp(1.0)]).repeat_interleave(3, dim=1), 48000)
    import soundfile as sf

    sf.write(tmp_path / "eight_bit.wav", chirp(1.0).numpy(), 16000, subtype="PCM_U8")
    (tmp_path / "empty.wav").write_bytes(b"")
    code, _, err = run_cli(["transcribe", str(tmp_path / "corrupt.wav"), "--model", str(model_dir)], capsys)
    assert code == 2 and "cannot decode audio" in err
    # one bad file among good ones is reported and skipped; the others are transcribed
    good = str(tmp_path / "silent.flac")
    code, out, err = run_cli(["transcribe", str(tmp_path / "empty.wav"), good, "--model", str(model_dir), "-f", "json"], capsys)
    assert code == 1 and "empty.wav" in err and "Traceback" not in err
    assert json.loads(out)["duration"] == pytest.approx(1.0)
    for name in ("silent.flac", "stereo48k.wav", "eight_bit.wav"):
        code, out, err = run_cli(["transcribe", str(tmp_path / name), "--model", str(model_dir), "-f", "json"], capsys)
        assert code == 0, err
        assert json.loads(out)["duration"] > 0.9


def test_bundle_folder_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], wav_path: Path) -> None:
    code, _, err = run_cli(["transcribe", str(wav_path), "--model", str(tmp_path / "nope")], capsys)
    assert code == 2 and "does not exist" in err


def test_stdin_layout_and_empty_stdin_are_errors(model_dir: Path) -> None:
    """--sample-rate 16 (kHz meant) read 0.1 s of audio as 100 s of noise and transcribed it;
    empty stdin gave an empty transcript with status 0 where an empty file is an error."""
    cmd = [sys.executable, "-m", "voxkit.cli.main", "transcribe", "-", "--model", str(model_dir)]
    pcm = (chirp(0.5).numpy() * 32767).astype("<i2").tobytes()
    for args, message in ((["--sample-rate", "16"], "--sample-rate 16 is not an audio rate (--sample-rate is in Hz, not kHz)"),
                          (["--channels", "0"], "--channels takes a number of channels of at least 1")):
        res = subprocess.run([*cmd, "--format", "s16le", *args], input=pcm, capture_output=True, text=False)
        assert res.returncode == 2 and message in res.stderr.decode() and b"Traceback" not in res.stderr
    res = subprocess.run(cmd, input=b"", capture_output=True)
    assert res.returncode == 2 and b"stdin: no audio received" in res.stderr


def test_all_formats_need_a_folder(model_dir: Path, wav_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-f all without -o printed txt, srt, vtt and json one after the other (and no jsonl)."""
    code, out, err = run_cli(["transcribe", str(wav_path), "--model", str(model_dir), "-f", "all"], capsys)
    assert code == 2 and out == "" and "-f all writes one file per format: give -o DIR" in err
