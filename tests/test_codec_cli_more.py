"""``voxkit codec`` as a user review found it: compressed audio piped to stdin, hours of audio
without a word on the screen, and the Python snippet of docs/codec.md.

Every refusal is one line ``voxkit codec: error: ...``; the progress bar goes to stderr, only on
a terminal and never with --quiet; the Python API prints nothing.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import voxkit
from cli_helpers import refused, run_cli
from voxkit.codec.api import ONE_PASS_FRAMES, Codec
from voxkit.codec.codes_file import load_codes

ROOT = Path(voxkit.__file__).resolve().parents[1]
FRAME = 1920  # samples per frame at 24 kHz
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg makes the compressed inputs")


class _Terminal(io.StringIO):
    """stderr as a terminal shows it: where the bar is meant to be seen."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def long_tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two passes and a bit: 2 * 64 + 9 frames at 24 kHz, a length the codec works on in three passes."""
    path = tmp_path_factory.mktemp("audio") / "long.wav"
    sf.write(path, 0.3 * np.sin(np.arange((2 * ONE_PASS_FRAMES + 9) * FRAME) / 9), 24000)
    return path


def _ffmpeg(source: Path, target: Path, *codec: str) -> Path:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(source), *codec, str(target)], check=True)
    return target


@needs_ffmpeg
def test_compressed_audio_on_stdin_gets_the_answer_transcribe_gives(
    tmp_path: Path, codec_dir: Path, tone: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An M4A, a WebM or ADTS AAC on stdin was "Format not recognised ... pass them as an array with
    their rate, e.g. np.frombuffer": raw samples diagnosed, and the Python API's advice. Now the
    container is named, before the model loads (the --model here does not exist), with the ffmpeg
    pipe that makes a WAV of it, in the words ``voxkit transcribe -`` uses."""
    inputs = {"MP4/M4A": ("m4a", _ffmpeg(tone, tmp_path / "t.m4a")),
              "WebM/Matroska": ("webm", _ffmpeg(tone, tmp_path / "t.webm", "-c:a", "libopus")),
              "AAC (ADTS)": ("aac", _ffmpeg(tone, tmp_path / "t.aac", "-f", "adts"))}
    out = tmp_path / "x.safetensors"
    for name, (extension, path) in inputs.items():
        data = path.read_bytes()
        for command in ("encode", "roundtrip"):
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
            target = out if command == "encode" else tmp_path / "x.wav"
            line = refused(["codec", command, "-", str(target), "--model", str(tmp_path / "no-codec")], capsys)
            assert line == (f"voxkit codec: error: stdin: the data is {name} audio, which voxkit cannot decode: decode it to WAV on "
                            f"the way (ffmpeg -i in.{extension} -f wav - | voxkit codec {command} - {target}); if it really is "
                            "raw s16le samples, add --format s16le --sample-rate RATE"), line
            assert not target.exists()
    from voxkit.audio.stream import HEAD_BYTES, container_refusal

    for name, (_, path) in inputs.items():  # the words voxkit transcribe - says them in, from one place
        transcribe = container_refusal(path.read_bytes()[:HEAD_BYTES], "voxkit transcribe -")
        assert transcribe is not None and transcribe.startswith(f"the data is {name} audio, which voxkit cannot decode: ")
    for extension in ("flac", "caf"):  # read whole, as a file: these encode (transcribe reads them only from files)
        data = _ffmpeg(tone, tmp_path / f"t.{extension}").read_bytes()
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        assert run_cli(["codec", "encode", "-", str(out), "--force", "--model", str(codec_dir)], capsys)[0] == 0
        assert load_codes(out).codes.shape[0] == 13  # 1 s: 12.5 frames, padded to 13


def test_the_api_reports_its_passes_and_prints_nothing(codec_dir: Path, long_tone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    codec = Codec.from_pretrained(codec_dir)
    seen: list[tuple[int, int]] = []
    codes = codec.encode(long_tone, progress=lambda done, total: seen.append((done, total)))
    frames = 2 * ONE_PASS_FRAMES + 9
    assert seen == [(0, frames), (ONE_PASS_FRAMES, frames), (2 * ONE_PASS_FRAMES, frames), (frames, frames)]
    assert torch.equal(codes, codec.encode(long_tone))  # the same codes with or without a listener
    seen.clear()
    audio = codec.decode(codes, num_samples=ONE_PASS_FRAMES * FRAME + 1, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(0, ONE_PASS_FRAMES + 1), (ONE_PASS_FRAMES, ONE_PASS_FRAMES + 1), (ONE_PASS_FRAMES + 1, ONE_PASS_FRAMES + 1)]
    assert audio.shape == (ONE_PASS_FRAMES * FRAME + 1,)
    assert capsys.readouterr() == ("", "")


def test_long_work_shows_a_bar_on_a_terminal_and_ctrl_c_still_stops_it(
    tmp_path: Path, codec_dir: Path, long_tone: Path, tone: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ten minutes took a minute to encode and two to decode with nothing printed until the end."""
    model = ["--model", str(codec_dir)]
    codes = tmp_path / "c.safetensors"

    def on_terminal(args: list[str]) -> tuple[int, str]:
        screen = _Terminal()
        monkeypatch.setattr(sys, "stderr", screen)
        return run_cli(["codec", *args, *model], capsys)[0], screen.getvalue()

    code, screen = on_terminal(["encode", str(long_tone), str(codes)])
    assert code == 0 and "encoding:" in screen and "s of audio" in screen, screen
    assert screen.split("\r")[-1].startswith(f"{codes}: 10.96 s -> 137 frames")  # the bar cleared, the summary alone
    code, screen = on_terminal(["decode", str(codes), str(tmp_path / "d.wav")])
    assert code == 0 and "decoding:" in screen and "encoding:" not in screen
    code, screen = on_terminal(["roundtrip", str(long_tone), str(tmp_path / "r.wav")])
    assert code == 0 and "encoding:" in screen and "decoding:" in screen
    code, screen = on_terminal(["roundtrip", str(long_tone), str(tmp_path / "q.wav"), "--quiet"])
    assert code == 0 and "%|" not in screen and screen.count("\n") == 1  # --quiet: the summary line only
    code, screen = on_terminal(["encode", str(tone), str(tmp_path / "short.safetensors")])
    assert code == 0 and "%|" not in screen  # one pass: done before a bar would say anything
    monkeypatch.setattr(sys, "stderr", sys.__stderr__)
    assert run_cli(["codec", "roundtrip", str(long_tone), str(tmp_path / "p.wav"), *model], capsys)[2].count("%|") == 0  # a pipe

    from voxkit.codec.model import CodecModel

    decode = CodecModel.decode
    calls = []

    def interrupted(self: CodecModel, *args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 2:  # Ctrl-C in the second pass
            raise KeyboardInterrupt
        return decode(self, *args, **kwargs)

    monkeypatch.setattr(CodecModel, "decode", interrupted)
    code, screen = on_terminal(["roundtrip", str(long_tone), str(tmp_path / "cut.wav")])
    assert code == 130 and "decoding:" in screen and re.split(r"[\r\n]", screen.rstrip("\n"))[-1] == "interrupted", screen
    assert not (tmp_path / "cut.wav").exists()


def test_the_python_snippet_of_the_docs_runs_for_a_short_clip(tmp_path: Path, codec_dir: Path, tone: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``save_codes(..., num_samples=24000 * 3)`` refused every talk.wav shorter than 25 frames (2 s)."""
    text = (ROOT / "docs" / "codec.md").read_text()
    block = re.search(r"```python\n(from voxkit\.codec import Codec\n.*?)```", text, re.S)
    assert block is not None, "docs/codec.md lost its Use snippet"
    code = block[1].split("stream = codec.stream")[0].replace('"DIR"', repr(str(codec_dir)))  # the stream part needs chunks
    shutil.copy(tone, tmp_path / "talk.wav")  # 1 s
    monkeypatch.chdir(tmp_path)
    names: dict[str, object] = {}
    exec(compile(code, "docs/codec.md", "exec"), names)  # noqa: S102 - the document's own code
    audio = Codec.from_pretrained(codec_dir).decode(str(tmp_path / "talk.safetensors"))
    assert audio.shape == (24000,)  # the input's length at 24 kHz, not its whole frames
