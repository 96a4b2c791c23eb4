"""``voxkit speak`` as a user runs it: files, stdout, streaming to a file, presets, seeds, and errors without tracebacks."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tts_helpers import tiny_tts_folder
from voxkit.cli.main import main as cli_main


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_tts_folder(tmp_path_factory.mktemp("tts_cli"))


def _speak(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "voxkit.cli.main", "speak", *argv], capture_output=True, timeout=300)


def test_speak_writes_a_file_and_prints_the_seed(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "hello.wav"
    assert cli_main(["speak", "Hello there.", "--model", str(model), "-o", str(out), "--seed", "5"]) == 0
    audio, rate = sf.read(out)
    assert rate == 24000 and audio.size > 0
    assert "seed 5" in capsys.readouterr().err
    again = tmp_path / "again.wav"
    assert cli_main(["speak", "Hello there.", "--model", str(model), "-o", str(again), "--seed", "5"]) == 0
    np.testing.assert_array_equal(sf.read(again)[0], audio)


def test_speak_to_stdout_and_streamed_to_a_file_give_the_same_audio(model: Path, tmp_path: Path) -> None:
    whole = _speak("One. Two.", "--model", str(model), "-o", "-", "--seed", "2")
    assert whole.returncode == 0, whole.stderr.decode()
    a, rate = sf.read(io.BytesIO(whole.stdout))
    streamed = _speak("One. Two.", "--model", str(model), "-o", "-", "--seed", "2", "--stream")
    assert streamed.returncode == 0, streamed.stderr.decode()
    b, _ = sf.read(io.BytesIO(streamed.stdout))  # a header with unknown sizes, as a pipe must write it
    out = tmp_path / "s.flac"
    assert cli_main(["speak", "One. Two.", "--model", str(model), "-o", str(out), "--seed", "2", "--stream"]) == 0
    c, _ = sf.read(out)
    assert rate == 24000 and a.size > 0
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, c, atol=1.01 / 32768)  # soundfile's 16-bit rounding, one step at most


def test_speak_clones_a_reference_file_and_lists_voices(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = tmp_path / "ref.ogg"
    sf.write(ref, (0.2 * np.sin(np.arange(16000 * 4) * 0.05)).astype(np.float32), 16000)
    assert cli_main(["speak", "Hi.", "--model", str(model), "--voice", str(ref), "--reference-text", "A tone.",
                     "--seed", "3", "-o", str(tmp_path / "o.wav")]) == 0
    assert "first 3.2 s are used" in capsys.readouterr().err  # the tiny model's reference window, said as a warning
    assert cli_main(["speak", "x", "--model", str(model), "--list-voices"]) == 0
    assert "voices: demo" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["Hi."], "give -o FILE"),
    (["Hi.", "-o", "{tmp}/x.mp4"], "must end in"),
    (["Hi.", "-o", "{tmp}/afile/x.wav"], "is a file, not a folder"),
    (["Hi.", "-o", "{tmp}"], "is a folder"),
    (["Hi.", "-o", "{tmp}/o.wav", "--voice", "nobody"], "neither an audio file nor a preset"),
    (["Hi.", "-o", "{tmp}/o.wav", "--voice", "{tmp}"], "directory"),
    (["Hi.", "-o", "{tmp}/o.wav", "--language", "xx"], "not supported"),
    (["Hi.", "-o", "{tmp}/o.wav", "--speed", "9"], "speed"),
    (["Hi.", "-o", "{tmp}/o.wav", "--steps", "0"], "steps"),
    (["", "-o", "{tmp}/o.wav"], "empty"),
    (["Hi.", "-o", "{tmp}/o.wav", "--device", "cuda:7"], "cuda"),
])
def test_speak_errors_are_one_line(model: Path, tmp_path: Path, argv: list[str], message: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("")
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert cli_main(["speak", *args, "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_speak_refuses_to_overwrite_and_names_a_missing_bundled_model(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import voxkit.tts.api as api

    out = tmp_path / "o.wav"
    out.write_bytes(b"")
    assert cli_main(["speak", "Hi.", "--model", str(model), "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    monkeypatch.setattr(api, "BUNDLED", tmp_path / "none")
    assert cli_main(["speak", "Hi.", "-o", str(tmp_path / "p.wav")]) == 2
    assert "no bundled TTS model" in capsys.readouterr().err
