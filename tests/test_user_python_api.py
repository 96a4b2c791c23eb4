"""The Python APIs used as a notebook or a server uses them: a live stream at a sound card's rate,
events sent as JSON, bytes from a socket, a URL or a text-mode file passed by mistake, streams
finished twice or fed after their end, and the byte-like inputs the file readers take."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import voxkit
from tests.tts_helpers import CODEC, tiny_tts_folder
from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.audio.io import load_audio
from voxkit.codec.api import Codec
from voxkit.codec.args import CodecArgs
from voxkit.codec.model import CodecModel
from voxkit.errors import AudioError, VoxkitError

SAMPLE = Path(voxkit.__file__).parent / "assets" / "samples" / "en.flac"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """The first 2.5 s of the English sample at 16 kHz, float32."""
    return load_audio(SAMPLE, ASR_SAMPLE_RATE).numpy()[: 5 * ASR_SAMPLE_RATE // 2]


def _stream(stream: voxkit.TranscriptionStream, audio: np.ndarray, size: int) -> list:
    return [e for i in range(0, len(audio), size) for e in stream.push(audio[i : i + size])] + stream.finish()


# ----------------------------------------------------------------------------- live streams


def test_a_stream_at_a_sound_cards_rate_hears_what_transcribe_hears(transcriber: voxkit.Transcriber, speech: np.ndarray) -> None:
    """A 48 kHz microphone feeds the stream as it comes; the words and times are those of the whole
    recording given to transcribe() at the same rate."""
    import torchaudio.functional as AF

    at_48k = AF.resample(torch.from_numpy(speech), ASR_SAMPLE_RATE, 48_000).numpy()  # [T']
    whole = transcriber.transcribe(at_48k, sample_rate=48_000)
    assert whole.text.startswith("Order number")  # the model hears the resampled clip
    for size in (4800, 1237):  # a sound card's 100 ms blocks, and sizes that split the resampler's blocks
        stream = transcriber.stream(sample_rate=48_000)
        events = _stream(stream, at_48k, size)
        assert events[-1].kind == "final" and events[-1].text == whole.text
        assert stream.transcript == whole
    with pytest.raises(AudioError, match="not kHz"):
        transcriber.stream(sample_rate=48)


def test_events_are_json_for_a_server(transcriber: voxkit.Transcriber, speech: np.ndarray) -> None:
    events = _stream(transcriber.stream(), speech, 4000)
    assert {e.kind for e in events} == {"delta", "word", "final"}
    sent = json.loads(json.dumps([e.to_json() for e in events]))
    assert [(d["kind"], d["text"], d["stream"]) for d in sent] == [(e.kind, e.text, e.stream) for e in events]
    words = [d for d in sent if d["kind"] == "word"]
    assert [(w["start"], w["end"]) for w in words] == [(round(w.start, 3), round(w.end, 3)) for w in transcriber.transcribe(speech).words]


def test_push_refuses_bytes_and_other_types_in_one_line(transcriber: voxkit.Transcriber, speech: np.ndarray) -> None:
    stream = transcriber.stream()
    pcm = (speech[:1600] * 32767).astype(np.int16)
    for raw in (pcm.tobytes(), bytearray(pcm.tobytes()), memoryview(pcm.tobytes())):
        with pytest.raises(AudioError, match=r"not bytes.*np\.frombuffer\(chunk, np\.int16\)"):
            stream.push(raw)  # type: ignore[arg-type]
    for bad in (None, "talk.wav", np.float32(0.5)):
        with pytest.raises(AudioError, match=rf"push\(\) takes a chunk of samples .*got {type(bad).__name__}$"):
            stream.push(bad)  # type: ignore[arg-type]
    assert stream.push(np.frombuffer(pcm.tobytes(), np.int16)) == stream.push([]) == []  # the fix the message gives works


def test_a_finished_stream_says_how_to_go_on(transcriber: voxkit.Transcriber, speech: np.ndarray) -> None:
    stream = transcriber.stream()
    stream.push(speech[:4000])
    assert stream.finish()[-1].kind == "final"
    assert stream.finish() == []
    with pytest.raises(VoxkitError, match=r"finished: start another one with Transcriber\.stream\(\)"):
        stream.push(speech[:100])


def test_transcribe_many_refuses_one_input_that_iterates(transcriber: voxkit.Transcriber, speech: np.ndarray) -> None:
    """A list of samples or a file's bytes iterate as numbers: read one by one they were "inputs" of type int."""
    for one in (speech[:3200].tolist(), bytearray(SAMPLE.read_bytes()), memoryview(SAMPLE.read_bytes())):
        with pytest.raises(VoxkitError, match=r"transcribe_many\(\) takes a list of inputs.*transcribe\(\)"):
            transcriber.transcribe_many(one)  # type: ignore[arg-type]
    assert transcriber.transcribe_many(iter([speech]))[0] == transcriber.transcribe(speech)  # any iterable of inputs


# ----------------------------------------------------------------------------- files given the wrong way


def test_file_inputs_given_the_wrong_way_say_what_to_do(transcriber: voxkit.Transcriber, speech: np.ndarray, tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="is a URL.*download it first"):
        transcriber.transcribe("https://example.com/talk.wav")
    text = tmp_path / "talk.wav"
    text.write_bytes(SAMPLE.read_bytes())
    with open(text) as f, pytest.raises(AudioError, match=r"text mode.*open\(path, 'rb'\)"):  # noqa: PTH123 - a user's open()
        transcriber.transcribe(f)  # type: ignore[arg-type]
    with pytest.raises(AudioError, match=r"empty \(0 bytes\)"):
        transcriber.transcribe(b"")
    with pytest.raises(AudioError, match=r"raw PCM samples are no file.*np\.frombuffer"):
        transcriber.transcribe((speech * 32767).astype(np.int16).tobytes())


def test_a_pipe_a_closed_file_and_a_file_read_to_its_end(transcriber: voxkit.Transcriber, capfd: pytest.CaptureFixture[str]) -> None:
    """A pipe (sys.stdin.buffer) printed libsndfile's failed seeks as tracebacks and was refused as
    "No 'data' chunk"; a closed file and one read to its end were "Format not recognised"."""
    import os
    import threading

    alone = transcriber.transcribe(SAMPLE).text
    read_end, write_end = os.pipe()
    feeder = threading.Thread(target=lambda: (os.write(write_end, SAMPLE.read_bytes()), os.close(write_end)))
    feeder.start()
    with os.fdopen(read_end, "rb") as pipe:  # a pipe's reader cannot seek
        assert not pipe.seekable() and transcriber.transcribe(pipe).text == alone
    feeder.join()
    assert "Traceback" not in capfd.readouterr().err
    with open(SAMPLE, "rb") as f:  # noqa: PTH123 - a user's open()
        assert transcriber.transcribe(f).text == alone
        with pytest.raises(AudioError, match=r"is at its end \(byte \d+\): nothing is left to read in it; seek\(0\) to read it again"):
            transcriber.transcribe(f)
        f.seek(0)
        assert transcriber.transcribe(f).text == alone
    with pytest.raises(AudioError, match=r"en\.flac is closed: open it again, or pass its path$"):
        transcriber.transcribe(f)


@pytest.mark.parametrize("number", [np.float32(0.1), 5, True])
def test_a_number_is_no_audio(transcriber: voxkit.Transcriber, number: object) -> None:
    """It was told to use transcribe(), being inside it."""
    with pytest.raises(AudioError, match=r"^transcribe\(\): audio must be a path, .* got the number "):
        transcriber.transcribe(number)  # type: ignore[arg-type]


@pytest.mark.parametrize("option", ["segment", "boost"])
def test_switches_take_true_or_false(option: str) -> None:
    """boost="no" switched the boost on: a string is truthy."""
    from voxkit.errors import OptionError

    with pytest.raises(OptionError, match=f"^{option} must be True or False, got 'no'$"):
        voxkit.Transcriber(**{option: "no"})


def test_a_file_as_bytearray_or_memoryview(transcriber: voxkit.Transcriber) -> None:
    """Guard: what a web framework hands over (an upload's buffer) reads like the bytes."""
    data = SAMPLE.read_bytes()
    text = transcriber.transcribe(data).text
    assert transcriber.transcribe(bytearray(data)).text == text
    assert transcriber.transcribe(memoryview(data)).text == text


# ----------------------------------------------------------------------------- codec and speaker streams


@pytest.fixture(scope="module")
def codec() -> Codec:
    torch.manual_seed(0)
    return Codec(CodecModel(CodecArgs(**CODEC)))  # type: ignore[arg-type]


def test_a_codec_stream_finished_twice_adds_no_frame(codec: Codec) -> None:
    """The resampler's tail was flushed again by a second finish(): one more frame of codes than the audio has."""
    wave = np.sin(np.linspace(0, 2000, 16_000 * 3 // 10)).astype(np.float32)  # [T] 0.3 s at 16 kHz
    stream = codec.stream(sample_rate=16_000)
    codes = torch.cat([stream.encode(wave[i : i + 1000]) for i in range(0, len(wave), 1000)] + [stream.finish()])
    assert torch.equal(codes, codec.encode(wave, sample_rate=16_000))
    assert stream.finish().shape == (0, codec.num_codebooks)
    with pytest.raises(VoxkitError, match=r"finished: start another one with Codec\.stream\(\)"):
        stream.encode(wave)
    assert stream.decode(codes).shape == (codes.shape[0] * codec.samples_per_frame,)  # decoding goes on


def test_a_codec_stream_refuses_what_is_no_chunk(codec: Codec) -> None:
    stream = codec.stream()
    for bad, message in ((None, "got NoneType"), (np.float32(0.1), "got float32"), (b"\0\0" * 100, r"np\.frombuffer")):
        with pytest.raises(AudioError, match=message):
            stream.encode(bad)  # type: ignore[arg-type]
    assert stream.encode(torch.zeros(0)).shape == (0, codec.num_codebooks)


def test_a_voice_as_memoryview_is_its_bytes(tmp_path: Path) -> None:
    speaker = voxkit.Speaker.from_pretrained(tiny_tts_folder(tmp_path / "tts"))
    data = SAMPLE.read_bytes()
    as_bytes, rate = speaker.speak("Hi.", voice=data, reference_text="Order number.", seed=0)
    as_view, _ = speaker.speak("Hi.", voice=memoryview(data), reference_text="Order number.", seed=0)
    assert rate == speaker.sample_rate
    np.testing.assert_array_equal(as_view, as_bytes)


def test_a_second_thread_inside_a_stream_is_refused(transcriber: voxkit.Transcriber, speech: np.ndarray) -> None:
    """Two callers stepping one stream at once interleave its steps and corrupt both; the second is
    told at once. The first push is held inside the stream (no timing: it waits on an event)."""
    import threading

    stream = transcriber.stream()
    inside, leave = threading.Event(), threading.Event()
    step = stream.live.push

    def held_push(data: np.ndarray) -> list:
        if not inside.is_set():  # only the first caller is held
            inside.set()
            leave.wait()
        return step(data)

    stream.live.push = held_push  # type: ignore[method-assign]
    first: list = []
    worker = threading.Thread(target=lambda: first.append(stream.push(speech[:8000])))
    worker.start()
    inside.wait()
    try:
        for call in (lambda: stream.push(speech[8000:]), stream.finish):
            with pytest.raises(VoxkitError, match=r"another thread was inside this stream.*its own Transcriber\.stream\(\)"):
                call()
    finally:
        leave.set()
        worker.join()
    stream.live.push = step  # type: ignore[method-assign]
    events = first[0] + stream.push(speech[8000:]) + stream.finish()  # the refused calls changed nothing
    assert events[-1].text == transcriber.transcribe(speech).text


def test_an_unknown_format_is_an_option_error() -> None:
    from voxkit.asr.transcript import Transcript, Word, render
    from voxkit.errors import OptionError

    transcript = Transcript([Word("hi", 0.0, 0.5)], 1.0)
    with pytest.raises(OptionError, match=r"unknown format 'SRT': render\(\) writes one of txt, srt, vtt, json"):
        render(transcript, "SRT")
    assert render(transcript, "srt").startswith("1\n00:00:00,000 --> 00:00:00,500\nhi")


def test_chat_dtype_by_name_as_transformers_takes_it(tmp_path: Path) -> None:
    from tests.test_chat_api import TOK, make_chat
    from voxkit.chat.api import AudioChat
    from voxkit.chat.checkpoint import save_chat
    from voxkit.errors import OptionError

    save_chat(make_chat(7).model, tmp_path / "chat", tokenizer=TOK)
    hi = [{"role": "user", "content": "hi"}]
    half = AudioChat.from_pretrained(tmp_path / "chat", dtype=torch.float16)
    by_name = AudioChat.from_pretrained(tmp_path / "chat", dtype="float16")
    assert by_name.model.adapter[0].weight.dtype == torch.float16
    assert by_name.generate(hi, max_new_tokens=4) == half.generate(hi, max_new_tokens=4)
    stored = AudioChat.from_pretrained(tmp_path / "chat", dtype="auto")  # as stored: float32 here
    assert stored.model.adapter[0].weight.dtype == torch.float32
    for bad in (torch.int8, "half-ish", 16):
        with pytest.raises(OptionError, match=r"dtype must be a floating torch dtype.*'auto'"):
            AudioChat.from_pretrained(tmp_path / "chat", dtype=bad)  # type: ignore[arg-type]


def test_a_rate_as_any_numpy_number_is_a_rate(transcriber: voxkit.Transcriber, speech: np.ndarray) -> None:
    """``sr`` from array arithmetic comes as np.float32 or np.int32 as often as a Python int;
    np.float64 (a float subclass) was taken and np.float32 refused."""
    text = transcriber.transcribe(speech).text
    for rate in (np.float32(16_000), np.int32(16_000), np.float64(16_000), 16_000.0):
        assert transcriber.transcribe(speech, sample_rate=rate).text == text  # type: ignore[arg-type]
    assert transcriber.stream(sample_rate=np.float32(16_000)).sample_rate == 16_000  # type: ignore[arg-type]
    for bad in (np.float32(16_000.5), np.float32("nan"), True, "16000"):
        with pytest.raises(AudioError, match="sample_rate must be a positive whole number of Hz"):
            transcriber.transcribe(speech, sample_rate=bad)  # type: ignore[arg-type]


def test_chat_audio_part_takes_its_rate_under_either_key_and_file_bytes() -> None:
    """A rate given as ``sample_rate`` (voxkit's keyword elsewhere) was ignored: 48 kHz read as 16 kHz
    came out three times too long. A file's bytes as ``audio`` decode as transcribe() decodes them."""
    import io

    import soundfile as sf

    from voxkit.chat.messages import parse_messages

    tone = np.sin(np.arange(48000) / 48000 * 2 * np.pi * 440).astype(np.float32) * 0.3  # [T] 1 s at 48 kHz

    def audio_of(part: dict) -> torch.Tensor:
        turns = parse_messages([{"role": "user", "content": [{"type": "audio", **part}]}])
        return turns[0].parts[0].samples

    for key in ("sampling_rate", "sample_rate"):
        assert audio_of({"array": tone, key: 48000}).shape[0] == 16000, key
        assert audio_of({"audio": tone, key: 48000}).shape[0] == 16000, key
    with pytest.raises(AudioError, match="gives two rates"):
        audio_of({"array": tone, "sampling_rate": 48000, "sample_rate": 16000})
    buffer = io.BytesIO()
    sf.write(buffer, tone, 48000, format="WAV")
    for wrap in (bytes, bytearray, memoryview):
        assert audio_of({"audio": wrap(buffer.getvalue())}).shape[0] == 16000, wrap


@pytest.mark.parametrize("delay", [100, "480", 2480])
def test_a_bad_delay_is_an_option_error(delay: object) -> None:
    """It was a plain VoxkitError: `except ValueError` missed it, unlike threads=0 or batch_size=0."""
    from voxkit.errors import OptionError

    with pytest.raises(OptionError, match="^delay must be "):
        voxkit.Transcriber(delay_ms=delay)  # type: ignore[arg-type]


def test_a_warning_points_at_the_callers_line(transcriber: voxkit.Transcriber, speech: np.ndarray, tmp_path: Path) -> None:
    """Python prints a warning with the file and line it is attributed to: it was voxkit/audio/io.py."""
    import inspect
    import warnings

    import soundfile as sf

    cut = tmp_path / "cut.wav"
    sf.write(cut, speech, ASR_SAMPLE_RATE)
    cut.write_bytes(cut.read_bytes()[:-8000])  # its header promises more than it holds
    for call in (lambda: transcriber.transcribe(speech * 32768), lambda: transcriber.transcribe(cut),
                 lambda: load_audio(cut, ASR_SAMPLE_RATE)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        [warning] = [w for w in caught if issubclass(w.category, voxkit.errors.VoxkitWarning)]
        assert (warning.filename, warning.lineno) == (__file__, inspect.getsourcelines(call)[1]), warning
