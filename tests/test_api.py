"""``voxkit.Transcriber`` fed the arrays users have: frames-first stereo, integer PCM, live chunks."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import voxkit
from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.audio.io import array_to_mono, load_audio, pcm_to_float
from voxkit.errors import AudioError, VoxkitError

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = Path(voxkit.__file__).parent / "assets" / "samples" / "en.flac"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """2.5 s of the English sample, on the int16 grid (so float and int16 hold the same signal)."""
    wav = load_audio(SAMPLE, ASR_SAMPLE_RATE).numpy()[: 5 * ASR_SAMPLE_RATE // 2]
    return np.round(wav * 32767).astype(np.int16)


@pytest.fixture(scope="module")
def reference(transcriber: voxkit.Transcriber, speech: np.ndarray) -> str:
    text = transcriber.transcribe(speech.astype(np.float32) / 32768).text
    assert text.startswith("Order number seven")  # the sample's first words: the model hears this clip
    return text


def test_frames_first_stereo_as_soundfile_returns_it(transcriber: voxkit.Transcriber, speech: np.ndarray, reference: str) -> None:
    mono = speech.astype(np.float32) / 32768
    stereo = np.stack([mono, mono], axis=1)  # [T, 2]: soundfile.read's layout
    assert transcriber.transcribe(stereo).text == reference
    assert transcriber.transcribe(np.ascontiguousarray(stereo.T)).text == reference  # [2, T]: torchaudio's
    assert transcriber.transcribe(torch.from_numpy(stereo)).text == reference
    assert transcriber.transcribe(mono[:, None]).text == reference  # [T, 1]


def test_stereo_at_another_rate_is_downmixed_then_resampled(transcriber: voxkit.Transcriber, speech: np.ndarray, reference: str) -> None:
    import torchaudio.functional as AF

    mono = torch.from_numpy(speech.astype(np.float32) / 32768)
    at_48k = AF.resample(mono, ASR_SAMPLE_RATE, 48_000)  # [T']
    stereo = torch.stack([at_48k, at_48k], dim=1).numpy()  # [T', 2]
    assert transcriber.transcribe(stereo, sample_rate=48_000).text == reference


def test_integer_pcm_is_scaled(transcriber: voxkit.Transcriber, speech: np.ndarray, reference: str) -> None:
    assert transcriber.transcribe(speech).text == reference  # int16
    assert transcriber.transcribe(speech.astype(np.int32) << 16).text == reference  # int32, same signal
    assert transcriber.transcribe(torch.from_numpy(np.stack([speech, speech], axis=1))).text == reference  # int16 tensor, [T, 2]


def test_pcm_scaling() -> None:
    np.testing.assert_array_equal(pcm_to_float(np.array([-32768, 0, 16384], np.int16)), [-1.0, 0.0, 0.5])
    np.testing.assert_array_equal(pcm_to_float(np.array([-(2**31), 2**30], np.int32)), [-1.0, 0.5])
    np.testing.assert_array_equal(pcm_to_float(np.array([0, 128, 192], np.uint8)), [-1.0, 0.0, 0.5])
    assert pcm_to_float(np.array([0.25], np.float64)).dtype == np.float32
    with pytest.raises(AudioError, match="not a PCM sample type"):
        pcm_to_float(np.array([1, 2, 3]))  # int64: what a list of Python ints becomes
    with pytest.raises(AudioError, match="integers or floats"):
        pcm_to_float(np.array([1j]))


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((4, 6), "cannot tell channels from samples"),  # 4 channels of 6 samples, or 6 of 4?
        ((8, 8), "cannot tell channels from samples"),
        ((100, 200), "cannot tell channels from samples"),  # no axis short enough for channels
        ((2, 3, 400), r"\[T\], \[T, C\] or \[C, T\]"),
        ((0, 2), "empty"),
        ((0,), "empty"),
    ],
)
def test_shapes_that_are_refused(shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(AudioError, match=message):
        array_to_mono(np.zeros(shape, np.float32))


def test_bad_arrays_are_user_errors_not_tracebacks(transcriber: voxkit.Transcriber) -> None:
    with pytest.raises(AudioError, match="cannot tell channels"):
        transcriber.transcribe(np.zeros((4, 6), np.float32))
    with pytest.raises(AudioError, match="NaN"):
        transcriber.transcribe(np.full(4000, np.nan, np.float32))
    with pytest.raises(VoxkitError, match="sample_rate"):
        transcriber.transcribe(np.zeros(4000, np.float32), sample_rate=0)
    with pytest.raises(VoxkitError, match="sample_rate"):
        transcriber.transcribe(np.zeros(4000, np.float32), sample_rate=22050.5)


def test_a_file_as_path_open_file_or_bytes(transcriber: voxkit.Transcriber) -> None:
    """What faster-whisper and transformers' pipelines take: a path, an open binary file, its bytes."""
    by_path = transcriber.transcribe(SAMPLE).text
    with open(SAMPLE, "rb") as f:
        assert transcriber.transcribe(f).text == by_path
    assert transcriber.transcribe(SAMPLE.read_bytes()).text == by_path


def test_arguments_are_checked_before_any_work(transcriber: voxkit.Transcriber, speech: np.ndarray) -> None:
    with pytest.raises(VoxkitError, match=r"sample_rate is in Hz, not kHz"):
        transcriber.transcribe(speech, sample_rate=16)  # would be 2.5 h of noise
    with pytest.raises(VoxkitError, match="not an audio rate"):
        transcriber.transcribe(speech, sample_rate=10**9)  # would be no audio at all
    with pytest.raises(VoxkitError, match="got NoneType"):
        transcriber.transcribe(None)  # type: ignore[arg-type]
    with pytest.raises(VoxkitError, match="takes a list"):
        transcriber.transcribe_many("talk.wav")  # type: ignore[arg-type]
    for bad in (0, -1, 2.5):
        with pytest.raises(VoxkitError, match="batch_size"):
            transcriber.transcribe_many([speech], batch_size=bad)  # type: ignore[arg-type]
    for kwargs, message in ((dict(threads=0), "threads"), (dict(threads=-1), "threads"), (dict(device="gpu"), "not a device name")):
        with pytest.raises(VoxkitError, match=message):
            voxkit.Transcriber(**kwargs)  # type: ignore[arg-type]
    if not torch.cuda.is_available():
        with pytest.raises(VoxkitError, match="sees no CUDA GPU"):
            voxkit.Transcriber(device="cuda")


def test_int16_values_cast_to_float_are_warned_about(transcriber: voxkit.Transcriber, speech: np.ndarray) -> None:
    """Valid floats, so not refused, but the model hears only clipping: say why the text is noise."""
    with pytest.warns(UserWarning, match="integer PCM cast to float"):
        transcriber.transcribe(speech.astype(np.float32))
    with pytest.warns(UserWarning, match="push\\(\\): float samples peak") as caught:
        stream = transcriber.stream()
        for i in range(0, 16000, 1280):  # a live source's chunks, each with its own peak
            stream.push(speech[i : i + 1280].astype(np.float32))
    assert len([w for w in caught if "float samples peak" in str(w.message)]) == 1  # once a stream, not once a chunk


def test_push_takes_mono_chunks_float_or_int16(transcriber: voxkit.Transcriber, speech: np.ndarray, reference: str) -> None:
    def run(chunks: list) -> list[tuple[str, str]]:
        stream = transcriber.stream()
        events = [e for chunk in chunks for e in stream.push(chunk)] + stream.finish()
        return [(e.kind, e.text) for e in events]

    size = 3000
    floats = run([speech[i : i + size].astype(np.float32) / 32768 for i in range(0, len(speech), size)])
    assert floats[-1] == ("final", reference)
    assert run([speech[i : i + size] for i in range(0, len(speech), size)]) == floats  # int16 chunks
    assert run([speech[i : i + size, None] for i in range(0, len(speech), size)]) == floats  # [T, 1] blocks
    assert run([torch.from_numpy(speech[None, i : i + size]) for i in range(0, len(speech), size)]) == floats  # [1, T]
    # a reader's last read is empty: pushed before finish(), it must not cost the last words
    empty = np.zeros(0, np.float32)
    assert run([empty, *(speech[i : i + size] for i in range(0, len(speech), size)), empty]) == floats


def test_events_do_not_depend_on_how_the_audio_arrives(transcriber: voxkit.Transcriber, speech: np.ndarray) -> None:
    """A file pushed whole and a microphone's 80 ms chunks give the same events in the same order:
    each word's ``word`` event follows its deltas (words used to be held until a segment ended when
    the segment's audio was all there, which reordered a file's jsonl against a live run's)."""
    audio = np.concatenate([speech, np.zeros(ASR_SAMPLE_RATE, np.int16), speech]).astype(np.float32) / 32768  # [T] a pause inside

    def run(size: int) -> list[tuple[str, str, float, float]]:
        stream = transcriber.stream()
        events = [e for i in range(0, len(audio), size) for e in stream.push(audio[i : i + size])] + stream.finish()
        return [(e.kind, e.text, round(e.start, 6), round(e.end, 6)) for e in events]

    live = run(1280)
    whole = run(len(audio))
    assert whole == live
    kinds = [kind for kind, *_ in live]
    assert kinds.count("word") >= 6 and kinds[-1] == "final"
    first_word = kinds.index("word")
    assert "delta" in kinds[first_word:]  # words come out while later words are still being written


def test_each_word_follows_its_deltas_when_the_audio_ends_mid_speech(transcriber: voxkit.Transcriber) -> None:
    """Cut mid-sentence, the end's flush closes several words at once: they are held for the end's
    fit, and so are the later words' deltas, so that no word event comes after the next word's deltas."""
    import re

    wav = load_audio(SAMPLE, ASR_SAMPLE_RATE).numpy()  # [T] the whole sample (8.1 s)
    for seconds in (2.3, 4.0, 5.7):
        audio = wav[: int(seconds * ASR_SAMPLE_RATE)]
        for size in (1280, len(audio)):
            stream = transcriber.stream()
            events = [e for i in range(0, len(audio), size) for e in stream.push(audio[i : i + size])] + stream.finish()
            kinds = "".join(e.kind[0] for e in events)  # d(elta), w(ord), f(inal)
            assert re.fullmatch(r"(d+w)+d*f", kinds), (seconds, size, kinds)


def test_push_refuses_what_it_cannot_take(transcriber: voxkit.Transcriber) -> None:
    stream = transcriber.stream()
    with pytest.raises(AudioError, match=r"mono.*mean\(axis=1\)"):
        stream.push(np.zeros((3000, 2), np.float32))
    with pytest.raises(AudioError, match="NaN"):
        stream.push(np.array([0.0, np.inf], np.float32))
    assert stream.push(np.zeros(0, np.float32)) == []  # an empty chunk is no audio, not an error
    stream.finish()
    with pytest.raises(VoxkitError, match="finished"):
        stream.push(np.zeros(100, np.float32))


def test_readme_streaming_snippet_prints_the_last_words(
    speech: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's Python block, run as written on the sample: every word it prints from the
    stream, the last ones (which finish() returns) included, are the transcript's words."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Transcription") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    import soundfile as sf

    sf.write(tmp_path / "talk.wav", speech, ASR_SAMPLE_RATE)
    monkeypatch.chdir(tmp_path)
    chunks = [speech[i : i + 4000].astype(np.float32) / 32768 for i in range(0, len(speech), 4000)]
    namespace = {"chunks": chunks}
    exec(compile(code.group(1), "README.md", "exec"), namespace)  # noqa: S102 - the project's own README
    printed = capsys.readouterr().out.splitlines()
    streamed = [line.split(" ", 1)[1] for line in printed if line.startswith("word ")]
    assert streamed == [w.text for w in namespace["stream"].transcript.words]
    assert f"final {namespace['result'].text}" in printed


def test_a_folder_is_named_a_folder(tmp_path) -> None:  # noqa: ANN001
    from voxkit.audio.io import load_audio
    from voxkit.errors import AudioError

    with pytest.raises(AudioError, match="is a folder, not an audio file"):
        load_audio(tmp_path, 16000)


def test_weights_in_16_bits_hear_what_float32_hears(speech: np.ndarray, reference: str) -> None:
    from voxkit.errors import OptionError

    half = voxkit.Transcriber(dtype="bfloat16")
    assert {p.dtype for p in half.bundle.model.parameters()} == {torch.bfloat16}
    assert half.transcribe(speech).text == reference
    stream = half.stream()
    events = stream.push(speech) + stream.finish()
    assert [e.text for e in events if e.kind == "final"] == [reference]
    with pytest.raises(OptionError, match="dtype must be a floating torch dtype"):
        voxkit.Transcriber(dtype="int8")


def test_a_sample_rate_given_with_a_file_is_refused_not_ignored(transcriber: voxkit.Transcriber, speech: np.ndarray) -> None:
    with pytest.raises(VoxkitError, match="a file is read at the rate its header gives"):
        transcriber.transcribe(SAMPLE, sample_rate=44100)
    with pytest.raises(VoxkitError, match="a file is read at the rate its header gives"):
        transcriber.transcribe_many([speech, SAMPLE.read_bytes()], sample_rate=8000)
    assert transcriber.transcribe(speech).text == transcriber.transcribe(speech, sample_rate=ASR_SAMPLE_RATE).text
