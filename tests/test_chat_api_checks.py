"""voxkit.AudioChat's input checks on a tiny random model: a conversation that is too long says
whether its text, its audio or both are, ``transcribe`` reads audio as ``voxkit.Transcriber`` does,
and integer options take numpy integers (but not bools or floats), as the other voxkit APIs do."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from tests.test_chat_api import TOK, audio_message, clip, make_chat
from voxkit.audio.write import save_audio, to_bytes_wav
from voxkit.chat.api import AudioChat
from voxkit.errors import AudioError, OptionError, VoxkitError

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def chat() -> AudioChat:
    return make_chat(7)  # max_seq_len 256: reads at most 255 positions


# ----------------------------------------------------------------------------- too long: what, by how much


def test_too_long_text_says_text(chat: AudioChat) -> None:
    with pytest.raises(VoxkitError) as caught:
        chat.generate([{"role": "user", "content": "word " * 100}])
    message = str(caught.value)
    assert message == "the conversation is too long: its text takes 503 positions, this model reads at most 255 (shorten the text)"
    with pytest.raises(VoxkitError, match=r"^conversation 1 of the batch is too long: its text takes 503 positions"):
        chat.generate([HI, [{"role": "user", "content": "word " * 100}]])


@pytest.mark.parametrize(("seconds", "words", "fix"), [
    (30.0, 1, "the audio"),
    (2.0, 48, "the text or the audio"),  # neither alone is too long
    (2.0, 60, "the text"),
    (30.0, 60, "the text and the audio"),
])
def test_too_long_audio_conversation_says_which_part(chat: AudioChat, seconds: float, words: int, fix: str) -> None:
    with pytest.raises(VoxkitError, match=r"^the conversation is too long: \d+ positions \(\d+ of text, \d+ of audio for "
                                          rf"{seconds:.1f} s\), this model reads at most 255 \(shorten {fix}\)$"):
        chat.generate(audio_message(clip(seconds), "word " * words))


def test_too_long_transcription_says_audio(chat: AudioChat) -> None:
    with pytest.raises(VoxkitError, match=r"^the transcription request is too long: .* of audio for 30\.0 s\), .*\(shorten the audio\)$"):
        chat.transcribe(clip(30.0).numpy())


# ----------------------------------------------------------------------------- transcribe: the Transcriber's inputs


def test_transcribe_takes_paths_bytes_and_open_files(chat: AudioChat, tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    save_audio(path, clip(0.3), 16000)
    expected = chat.transcribe(path, max_new_tokens=6)
    assert chat.transcribe(str(path), max_new_tokens=6) == expected
    assert chat.transcribe(path.read_bytes(), max_new_tokens=6) == expected
    with open(path, "rb") as fh:
        assert chat.transcribe(fh, max_new_tokens=6) == expected
    assert chat.transcribe(io.BytesIO(to_bytes_wav(clip(0.3), 16000)), max_new_tokens=6) == expected


def test_transcribe_errors_name_no_message(chat: AudioChat) -> None:
    with pytest.raises(AudioError) as caught:
        chat.transcribe("nope.wav")
    assert str(caught.value) == "audio file not found: nope.wav"  # the caller sent no messages
    with pytest.raises(AudioError, match=r"^transcribe\(\): audio must be a path, an open file, the bytes of an audio file"):
        chat.transcribe(3)  # type: ignore[arg-type]
    with pytest.raises(AudioError, match="sample_rate"):
        chat.transcribe(clip(0.3).numpy(), sample_rate=16)


# ----------------------------------------------------------------------------- integer options


def test_numpy_integers_are_integers(chat: AudioChat) -> None:
    assert chat.generate(HI, max_new_tokens=np.int64(4)) == chat.generate(HI, max_new_tokens=4)
    assert "".join(chat.stream(HI, max_new_tokens=np.int32(4))) == chat.generate(HI, max_new_tokens=4)
    sampled = chat.generate(HI, max_new_tokens=6, temperature=1.0, seed=7)
    assert chat.generate(HI, max_new_tokens=6, temperature=np.float64(1.0), seed=np.uint32(7)) == sampled
    wave = clip(0.3).numpy()
    assert chat.transcribe(wave, sample_rate=np.int64(16000), max_new_tokens=np.int16(3)) == chat.transcribe(wave, max_new_tokens=3)
    one = AudioChat(chat.model, TOK, max_audios=np.int64(1))
    assert one.max_audios == 1 and type(one.max_audios) is int
    two = [{"role": "user", "content": [{"type": "audio", "array": wave}, {"type": "audio", "array": wave}]}]
    with pytest.raises(VoxkitError, match="too many audio clips"):
        one.generate(two, max_new_tokens=2)


@pytest.mark.parametrize("bad", [True, 4.0, np.float64(4), "4", 0, np.int64(-1)])
def test_bools_floats_and_non_positive_counts_are_refused(chat: AudioChat, bad: object) -> None:
    for call in (lambda: chat.generate(HI, max_new_tokens=bad), lambda: chat.stream(HI, max_new_tokens=bad),
                 lambda: chat.transcribe(clip(0.3).numpy(), max_new_tokens=bad)):
        with pytest.raises(OptionError, match=r"^max_new_tokens must be a whole number of at least 1, got "):
            call()


@pytest.mark.parametrize("bad", [True, 1.0, -1])
def test_bad_max_audios_is_refused_at_load(chat: AudioChat, bad: object) -> None:
    with pytest.raises(OptionError, match="max_audios must be a whole number of at least 0"):
        AudioChat(chat.model, TOK, max_audios=bad)  # type: ignore[arg-type]


def test_bad_seeds_are_refused(chat: AudioChat) -> None:
    for bad in (True, 1.5, -1):
        with pytest.raises(OptionError, match="seed must be a whole number"):
            chat.generate(HI, max_new_tokens=2, temperature=1.0, seed=bad)
