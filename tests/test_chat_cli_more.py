"""``voxkit chat`` as a user review found it: ``--audio -`` for stdin, errors that name the
internal messages ("message 0, part 0") instead of the --audio the user gave, and a --help that
promised a bundled model and said nothing of --max-new-tokens."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from cli_helpers import one_line_error, run_cli
from test_chat_model import tiny_whisper_args
from voxkit.chat.checkpoint import save_chat
from voxkit.chat.model import ChatModel
from voxkit.cli.main import main as cli_main
from voxkit.tokenizer import ByteTokenizer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = ChatModel(tiny_whisper_args(ByteTokenizer().vocab_size)).eval()
    return save_chat(model, tmp_path_factory.mktemp("chat") / "model", tokenizer=ByteTokenizer())


@pytest.fixture(scope="module")
def st48(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """0.5 s of 48 kHz stereo: a rate and a channel count the model's 16 kHz mono is made from."""
    path = tmp_path_factory.mktemp("audio") / "st48.wav"
    t = np.arange(24000) / 48000
    sf.write(path, np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)], 1), 48000, subtype="PCM_16")
    return path


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_audio_on_stdin_gets_the_answer_of_the_file(
    model_dir: Path, st48: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--audio -`` was looked up as a file named "-" ("audio file not found: -")."""
    base = ["chat", "--model", str(model_dir), "--max-new-tokens", "6"]
    for ask in (["What is said?"], ["What is said?", "--no-stream"], ["--transcribe"]):
        code, from_file, err = run_cli([*base, *ask, "--audio", str(st48)], capsys)
        assert code == 0 and err == "", err
        _stdin(monkeypatch, st48.read_bytes())
        code, from_stdin, err = run_cli([*base, *ask, "--audio", "-"], capsys)
        assert code == 0 and err == "" and from_stdin == from_file, err
    _stdin(monkeypatch, st48.read_bytes())  # beside a file: stdin is one of the clips, in its place
    code, two, err = run_cli([*base, "Which is longer?", "--audio", str(st48), "--audio", "-"], capsys)
    assert code == 0 and err == ""
    assert run_cli([*base, "Which is longer?", "--audio", str(st48), "--audio", str(st48)], capsys)[1] == two

    from voxkit.chat.api import AudioChat

    reply = AudioChat.from_pretrained(model_dir).generate(
        [{"role": "user", "content": [{"type": "audio", "path": str(st48)}, {"type": "text", "text": "What is said?"}]}],
        max_new_tokens=6)
    assert run_cli([*base, "What is said?", "--audio", str(st48), "--no-stream"], capsys)[1] == f"{reply}\n"  # as the API reads the path


@pytest.mark.parametrize(
    ("audio", "stdin", "message"),
    [
        (["-", "-"], b"RIFF", "--audio - is given 2 times: stdin holds one audio file; give the others as files"),
        (["-"], b"", "--audio -: stdin is empty: no audio received"),
        (["-"], b"\x00\x00\x00\x20ftypM4A " + bytes(64),
         "--audio -: the data is MP4/M4A audio, which voxkit cannot decode: decode it to WAV on the way "
         "(ffmpeg -i in.m4a -f wav - | voxkit chat 'What is said?' --audio -)"),
        (["-"], np.full(8000, 1000, np.int16).tobytes(),  # raw samples: no header, so no rate
         "--audio -: stdin is not an audio file (WAV, FLAC, MP3, Ogg, AIFF); raw PCM needs a header with its rate: "
         "ffmpeg -f s16le -ar 16000 -ac 1 -i - -f wav - | voxkit chat 'What is said?' --audio -"),
        (["{missing}"], None, "--audio {missing}: audio file not found"),
        (["{folder}"], None, "--audio {folder}: a folder, not an audio file"),
        (["{clip}", "{garbage}"], None, "--audio {garbage}: cannot decode audio: Format not recognised"),
        ([""], None, "--audio is empty: give an audio file, or - for stdin"),
        (["{clip}"] * 9, None, "--audio is given 9 times: the model takes at most 8 clips a question"),
    ],
    ids=["two-stdins", "empty-stdin", "m4a-stdin", "raw-stdin", "missing", "folder", "not-audio", "empty-name", "too-many"],
)
def test_a_clip_that_cannot_be_read_is_named_as_the_user_gave_it(
    tmp_path: Path, st48: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    audio: list[str], stdin: bytes | None, message: str,
) -> None:
    """"message 0, part 0: audio file not found: x.wav" named a structure the user never wrote, and
    came after the model loaded: the --model here does not exist, so each line is found before it."""
    (tmp_path / "garbage.wav").write_bytes(b"not audio at all" * 64)
    names = {"{missing}": str(tmp_path / "nothing.wav"), "{folder}": str(tmp_path), "{clip}": str(st48),
             "{garbage}": str(tmp_path / "garbage.wav")}
    for key, value in names.items():
        audio, message = [value if a == key else a for a in audio], message.replace(key, value)
    if stdin is not None:
        _stdin(monkeypatch, stdin)
    args = ["chat", "What is said?", "--model", str(tmp_path / "no-model"), *[x for a in audio for x in ("--audio", a)]]
    code, _, err = run_cli(args, capsys)
    line = one_line_error(err)
    assert code == 2 and line.startswith(f"voxkit chat: error: {message}") and "message 0" not in line, line


def test_errors_of_the_messages_name_the_argument(
    model_dir: Path, st48: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error the chat API finds in a part it was handed says which --audio it came from."""
    from voxkit.chat import messages

    def refuse(*args: object) -> torch.Tensor:
        raise messages.AudioError("audio is empty (shape (0,))")

    monkeypatch.setattr(messages, "_from_array", refuse)
    code, _, err = run_cli(["chat", "Why?", "--model", str(model_dir), "--audio", str(st48)], capsys)
    assert code == 2 and one_line_error(err) == f"voxkit chat: error: --audio {st48}: audio is empty (shape (0,))"


def test_help_says_what_max_new_tokens_is_and_that_no_model_is_bundled(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["chat", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    tokens = text.split("--max-new-tokens MAX_NEW_TOKENS ", 1)[1]
    assert tokens.startswith("most tokens of the answer or transcript (default 256)"), tokens[:80]
    from voxkit.chat.api import BUNDLED

    if not (BUNDLED / "params.json").is_file():
        assert "the bundled model" not in text and "this voxkit bundles no chat model" in text
    assert "or - for one audio file's bytes on stdin" in text
