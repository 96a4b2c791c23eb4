"""User mistakes on the command line are one-line messages with exit status 1 or 2, never tracebacks.

Each case is what a new user types: a GPU that is not there, ``-o`` naming a file, two inputs that
would overwrite each other's transcripts, a folder where files go, a language that is no code, a
FLAC piped into stdin, an audio file where a manifest goes.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr_helpers import chirp
from cli_helpers import one_line_error, run_cli
from voxkit.audio.write import save_audio


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """a/x.wav and b/x.wav: two different recordings with one base name."""
    root = tmp_path_factory.mktemp("clips")
    save_audio(root / "a" / "x.wav", chirp(1.0), 16000)
    save_audio(root / "b" / "x.wav", chirp(0.5, seed=1), 16000)
    return root




def test_two_inputs_with_one_name_are_refused_before_any_output(
    model_dir: Path, clips: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, out = str(clips / "a" / "x.wav"), str(clips / "b" / "x.wav"), tmp_path / "out"
    code, _, err = run_cli(["transcribe", a, b, "-o", str(out), "--model", str(model_dir)], capsys)
    line = one_line_error(err)
    assert code == 2 and a in line and b in line and "x.*" in line
    assert not out.exists()  # refused before anything was written (or the folder made)
    code, _, err = run_cli(["transcribe", a, a, "-o", str(out), "--model", str(model_dir)], capsys)
    assert code == 2 and "given twice" in one_line_error(err)
    # stdin's outputs are named "stdin": a file of that name collides with it too
    code, _, err = run_cli(["transcribe", "-", str(tmp_path / "stdin.wav"), "-o", str(out), "--model", str(model_dir)], capsys)
    assert code == 2 and "stdin.*" in one_line_error(err)
    # without -o nothing is overwritten: both are transcribed to stdout
    code, out_text, _ = run_cli(["transcribe", a, b, "-f", "json", "--model", str(model_dir)], capsys)
    assert code == 0 and out_text.count('"duration"') == 2


def test_distinct_names_write_one_set_of_files_each(model_dir: Path, clips: Path, tmp_path: Path, capsys) -> None:
    save_audio(tmp_path / "y.wav", chirp(0.5), 16000)
    code, _, _ = run_cli(["transcribe", str(clips / "a" / "x.wav"), str(tmp_path / "y.wav"), "-o", str(tmp_path / "o"), "-f", "json",
                       "--model", str(model_dir)], capsys)
    assert code == 0
    durations = {p.name: json.loads(p.read_text())["duration"] for p in (tmp_path / "o").iterdir()}
    assert durations == {"x.json": pytest.approx(1.0), "y.json": pytest.approx(0.5)}


def test_unusable_device_is_a_message(model_dir: Path, clips: Path, capsys: pytest.CaptureFixture[str]) -> None:
    devices = ["cuda:99", "nonsense"] + ([] if torch.cuda.is_available() else ["cuda"])
    for device in devices:
        code, _, err = run_cli(["transcribe", str(clips / "a" / "x.wav"), "--device", device, "--model", str(model_dir)], capsys)
        line = one_line_error(err)
        assert code == 2 and f"--device {device}" in line.replace("'", ""), line


def test_output_folder_that_is_a_file_or_cannot_be_made(clips: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    wav = str(clips / "a" / "x.wav")
    # --model names nothing: the -o check comes first, before the model would load
    no_model = ["--model", str(tmp_path / "no-model")]
    code, _, err = run_cli(["transcribe", wav, "-o", str(afile), *no_model], capsys)
    assert code == 2 and "is a file, not a folder" in one_line_error(err)
    assert afile.read_text() == "keep me"
    code, _, err = run_cli(["transcribe", wav, "-o", str(afile / "sub"), *no_model], capsys)
    assert code == 2 and f"{afile} is a file, not a folder" in one_line_error(err)


def test_folder_given_as_input_is_named_a_folder(model_dir: Path, clips: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = str(clips / "a")
    code, _, err = run_cli(["transcribe", folder, "--model", str(model_dir)], capsys)
    line = one_line_error(err)
    assert code == 2 and "is a folder" in line and "*.wav" in line and "not found" not in line
    # among other inputs it is reported and skipped like any unreadable input
    code, out, err = run_cli(["transcribe", folder, str(clips / "a" / "x.wav"), "-f", "json", "--model", str(model_dir)], capsys)
    assert code == 1 and "is a folder" in err and json.loads(out)["duration"] == pytest.approx(1.0)


def test_language_is_checked(model_dir: Path, clips: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav = str(clips / "a" / "x.wav")
    code, _, err = run_cli(["transcribe", wav, "--language", "klingon", "--model", str(model_dir)], capsys)
    assert code == 2 and "not a two-letter language code" in one_line_error(err)
    code, _, err = run_cli(["transcribe", wav, "--language", "en-US", "--model", str(model_dir)], capsys)
    assert code == 2 and "did you mean en?" in one_line_error(err)
    code, _, err = run_cli(["transcribe", wav, "--language", "en", "--model", str(model_dir)], capsys)
    assert code == 0 and err == ""  # this model records no languages: a well-formed code is informational
    # a model that records its languages refuses the others
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    for item in model_dir.iterdir():
        (recorded / item.name).write_bytes(item.read_bytes())
    params = json.loads((model_dir / "params.json").read_text())
    (recorded / "params.json").write_text(json.dumps({**params, "languages": ["en", "fr"]}))
    code, _, err = run_cli(["transcribe", wav, "--language", "de", "--model", str(recorded)], capsys)
    assert code == 2 and "knows en, fr" in one_line_error(err)
    code, _, err = run_cli(["transcribe", wav, "--language", "fr", "--model", str(recorded)], capsys)
    assert code == 0 and err == ""


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_flac_on_stdin_is_refused_and_mp3_and_ogg_are_transcribed(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = chirp(1.0).numpy()
    sf.write(tmp_path / "c.flac", wav, 16000)
    sf.write(tmp_path / "c.mp3", wav, 16000)  # no ID3 tag: found by its frame header
    sf.write(tmp_path / "c.ogg", wav, 16000)
    _stdin(monkeypatch, (tmp_path / "c.flac").read_bytes())  # libsndfile cannot read FLAC from a pipe
    code, out, err = run_cli(["transcribe", "-", "--model", str(model_dir)], capsys)
    line = one_line_error(err)
    assert code == 2 and out == "" and "FLAC" in line and "ffmpeg -i in.flac -f wav -" in line, line
    for name in ("c.mp3", "c.ogg"):  # decoded as they arrive, to the samples the file gives
        _stdin(monkeypatch, (tmp_path / name).read_bytes())
        code, out, err = run_cli(["transcribe", "-", "--model", str(model_dir)], capsys)
        assert code == 0 and err == "", err
        assert (code, out) == run_cli(["transcribe", str(tmp_path / name), "--model", str(model_dir)], capsys)[:2]
    # an explicit --format is obeyed: the user said what the bytes are
    _stdin(monkeypatch, (tmp_path / "c.flac").read_bytes())
    code, _, err = run_cli(["transcribe", "-", "--format", "s16le", "--model", str(model_dir)], capsys)
    assert code == 0 and "FLAC" not in err


def test_float_on_stdin_read_as_s16le_is_warned_about_once(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    speech = chirp(2.0).numpy()
    floats = np.concatenate([np.zeros(8000, np.float32), speech]).astype("<f4").tobytes()  # leading silence is skipped
    _stdin(monkeypatch, floats)
    code, _, err = run_cli(["transcribe", "-", "--model", str(model_dir)], capsys)
    assert code == 0 and err.count("looks like 32-bit float") == 1 and "--format f32le" in err
    for data, args in ((floats, ["--format", "f32le"]), ((speech * 32767).astype("<i2").tobytes(), [])):
        _stdin(monkeypatch, data)
        code, _, err = run_cli(["transcribe", "-", *args, "--model", str(model_dir)], capsys)
        assert code == 0 and err == ""


@pytest.mark.parametrize("command", [["eval", "asr"], ["data", "check"]])
def test_manifest_commands_refuse_audio_and_binary_files(command: list[str], tmp_path: Path, capsys) -> None:
    save_audio(tmp_path / "clip.flac", chirp(0.5), 16000)
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 8)
    for path, what in ((tmp_path / "clip.flac", "is FLAC audio, not a JSONL manifest"),
                       (tmp_path / "blob.bin", "is binary data, not a JSONL manifest"),
                       (tmp_path, "is a folder, not a manifest")):
        code, _, err = run_cli([*command, str(path)], capsys)
        assert code == 2 and what in one_line_error(err)


def test_data_check_goes_on_past_an_unreadable_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_audio(tmp_path / "clip.wav", chirp(0.5), 16000)
    good = {"audio": str(tmp_path / "clip.wav"), "text": "hello", "duration": 0.5}
    manifest = tmp_path / "m.jsonl"
    # one line of Latin-1 among UTF-8 ones is a bad row, not a crash
    line = (json.dumps(good) + "\n").encode()
    manifest.write_bytes(line + '{"text": "caf\xe9"}\n'.encode("latin-1") + line)
    code, out, err = run_cli(["data", "check", str(tmp_path / "clip.wav"), str(manifest)], capsys)
    assert code == 1 and "Traceback" not in err
    assert "clip.wav is WAV audio" in err and f"{manifest}:2: not UTF-8 text" in out
    assert f"{manifest}: 2/3 rows ok" in err


def test_stdin_at_a_terminal_is_refused_instead_of_waiting(model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """`voxkit transcribe -` typed without a pipe read the keyboard as audio and waited for ever."""

    class Terminal(io.TextIOWrapper):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal(io.BytesIO(b"")))
    code, out, err = run_cli(["transcribe", "-", "--model", str(model_dir)], capsys)
    assert code == 2 and out == ""
    assert one_line_error(err).startswith("voxkit transcribe: error: - reads audio from standard input, but nothing is piped to it")
