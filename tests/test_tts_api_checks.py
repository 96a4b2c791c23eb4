"""What Speaker tells its user: a take cut by the model's context, a text that cannot fit (refused
before any audio), sentences kept whole at abbreviations, a reference read only as far as it is used,
a reference text given with a prepared voice, wrong argument types, and the model's real reference
window in the messages."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tts_helpers import never_ending, tiny_tts_folder
from voxkit.errors import OptionError, VoxkitError
from voxkit.tts.api import MAX_SENTENCE_CHARS, Speaker
from voxkit.tts.sentences import split_sentences, wrap

SENTENCE = "This is a long sentence that should take several seconds to say out loud."  # 75 characters
CONTEXT = 512  # the tiny model's positions


@pytest.fixture(scope="module")
def speaker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Speaker]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield Speaker.from_pretrained(tiny_tts_folder(tmp_path_factory.mktemp("tts_checks")))
    torch.set_num_threads(threads)  # the modules after this one run as they do alone


def _prompt_length(speaker: Speaker, text: str, reference_text: str) -> int:
    voice = speaker.prepare_voice("demo")
    return speaker.model.prompt(speaker.tokenizer.encode(text, bos=False), voice.codes,
                                speaker.tokenizer.encode(reference_text, bos=False)).tokens.shape[0]


# ----------------------------------------------------------------------------- the context


@pytest.fixture
def never_ends(speaker: Speaker) -> Iterator[None]:
    with never_ending(speaker.model):
        yield


@pytest.mark.usefixtures("never_ends")
def test_a_take_cut_by_the_context_is_said(speaker: Speaker) -> None:
    reference_text = "x" * 300
    room = CONTEXT - _prompt_length(speaker, SENTENCE, reference_text)  # about 100 frames: fewer than the 250 allowed
    with pytest.warns(UserWarning) as caught:
        audio, _ = speaker.speak(SENTENCE, voice="demo", reference_text=reference_text, seed=1)
    assert audio.size == room * speaker.codec.samples_per_frame  # the model did not end: the context did
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "\n" not in messages[0]
    assert messages[0].startswith(f'sentence 1 of 1 ("This is a long sentence that should take...") was cut short at {room / 12.5:.1f} s')
    assert "the model's context of 512 positions" in messages[0] and "shorten the sentence, the reference text" in messages[0]


@pytest.mark.usefixtures("never_ends")
def test_the_stream_keeps_its_notes_for_an_app(speaker: Speaker) -> None:
    """An app that streams (the demo) reads what was cut from the stream itself, not from warnings."""
    with pytest.warns(UserWarning, match="was cut short"):
        stream = speaker.stream(SENTENCE, voice="demo", reference_text="x" * 300, seed=1)
        assert stream.notes == []  # nothing generated yet
        np.concatenate(list(stream))
    assert len(stream.notes) == 1 and stream.notes[0].startswith("sentence 1 of 1")


def test_a_take_that_ends_in_time_is_not_warned_about(speaker: Speaker) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        speaker.speak("Hi.", voice="demo", seed=1)  # 34 frames at most, 400 positions free


def test_too_little_room_is_refused_at_the_call_before_any_audio(speaker: Speaker) -> None:
    with pytest.raises(VoxkitError) as caught:
        speaker.stream(SENTENCE, voice="demo", reference_text="x" * 470, seed=1)  # not iterated: refused up front
    message = str(caught.value)
    assert message.startswith('sentence 1 ("This is a long sentence that should take...") does not fit the model\'s context of 512')
    assert "30 reference frames, 470 reference-text tokens" in message
    assert message.endswith("shorten the reference text or the reference audio")


def test_a_later_sentence_that_cannot_fit_refuses_the_whole_text(speaker: Speaker) -> None:
    """The user's report: sentence 1 was heard, then sentence 2 raised. Now nothing is generated."""
    text = "Hi there. Then " + "🙂" * 60 + " done."  # 4 byte tokens an emoji
    with pytest.raises(VoxkitError, match=r'^sentence 2 \("Then 🙂'):
        speaker.stream(text, voice="demo", reference_text="x" * 330, seed=1)  # 147 positions left: "Hi there." fits


def test_a_sentence_too_long_beside_the_voice_is_split_not_refused(speaker: Speaker) -> None:
    """The report's text: a long second sentence with a 300-character reference text raised mid-stream."""
    long = ("This sentence is deliberately made rather long so that together with the reference text it no longer "
            "fits the context of the model at all, ") * 2 + "and it ends here."
    stream = speaker.stream("Hi there. " + long, voice="demo", reference_text="x" * 300, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the random model runs each piece to the context
        chunks = list(stream)
    pauses = sum(1 for c in chunks if c.size == int(0.2 * speaker.sample_rate) and not c.any())
    assert pauses >= 3  # "Hi there." and the long sentence in at least three pieces


@pytest.mark.parametrize("run", ["语" * 300, "é🙂" * 150])
def test_byte_heavy_text_is_split_by_tokens(speaker: Speaker, run: str) -> None:
    """300 CJK characters (900 byte tokens) or 150 letters and emoji (900) passed the 250-character
    wrap and outgrew the 512-position context at generation. (Emoji alone are nothing to say.)"""
    pieces = speaker._plan(speaker.sentences(run), None, None)
    assert len(pieces) >= 2 and "".join(p.text for p in pieces) == run
    for piece in pieces:
        assert len(piece.ids) + piece.room == CONTEXT - 4  # BOS, [BEGIN_AUDIO], the empty voice frame, [BEGIN_AUDIO]
        assert piece.room >= len(piece.text) * 12.5 / 12  # its speech at a reading pace fits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        audio, _ = speaker.speak(run[:120], seed=2)  # generated without a context error
    assert audio.size > 0


# ----------------------------------------------------------------------------- sentences


def test_abbreviations_and_quotes_keep_sentences_whole(speaker: Speaker) -> None:
    assert speaker.sentences("Mr. Smith and Dr. Jones met at 5 p.m. Today was fine.") == [
        "Mr. Smith and Dr. Jones met at five p.m.", "Today was fine."]
    assert speaker.sentences("“Why?” She asked.") == ["“Why?”", "She asked."]
    assert speaker.sentences("J. K. Rowling wrote it, e.g. Harry. Apples, pears, etc. and more. Mrs. Brown left.") == [
        "J. K. Rowling wrote it, e.g. Harry.", "Apples, pears, etc. and more.", "Mrs. Brown left."]
    assert speaker.sentences("We had apples, pears, etc. Then we left. It was 10 a.m. She moved to the U.S. It was cold.") == [
        "We had apples, pears, etc.", "Then we left.", "It was ten a.m.", "She moved to the U.S.", "It was cold."]
    assert speaker.sentences("M. Dupont et Mme. Martin sont là. Ils partent.", "fr") == [
        "M. Dupont et Mme. Martin sont là.", "Ils partent."]


def test_a_number_starting_a_sentence_still_splits(speaker: Speaker) -> None:
    """Numbers are read aloud in lower case ("fifty-two"), so the split is made before reading too."""
    assert speaker.sentences("It ended. 52 people came. No. 5 won.") == ["It ended.", "fifty-two people came.", "No. five won."]


class _FourLanguages:  # sentences() reads nothing of the model but its languages
    languages = ["en", "fr", "es", "de"]


@pytest.mark.parametrize(("lang", "text", "expected"), [
    ("es", "El Sr. García y la Sra. López viven en EE. UU. desde hoy. Luego se fueron.",
     ["El Sr. García y la Sra. López viven en EE. UU. desde hoy.", "Luego se fueron."]),
    ("es", "¿Qué dijo la Dra. Ruiz? ¡Nada! Fin.", ["¿Qué dijo la Dra. Ruiz?", "¡Nada!", "Fin."]),
    ("de", "Hr. Müller kauft z. B. Äpfel. Dann kommt Fr. Schmidt am 3. Mai.",
     ["Hr. Müller kauft z. B. Äpfel.", "Dann kommt Fr. Schmidt am dritten Mai."]),
    ("de", "Ich zähle bis 3. Dann gehe ich, z.B. nach Hause usw. Ende.",
     ["Ich zähle bis drei.", "Dann gehe ich, z.B. nach Hause usw.", "Ende."]),
    ("fr", "« Pourquoi ? » Elle partit. M. Durand resta.", ["« Pourquoi ? »", "Elle partit.", "M. Durand resta."]),
    ("fr", "Il dit « Oui. » Puis il part.", ["Il dit « Oui. »", "Puis il part."]),
])
def test_sentences_per_language(lang: str, text: str, expected: list[str]) -> None:
    assert Speaker.sentences(_FourLanguages(), text, lang) == expected  # type: ignore[arg-type]


def test_the_splitter_itself() -> None:
    assert split_sentences("你好。我很好！你呢？", "en") == ["你好。", "我很好！", "你呢？"]
    assert split_sentences("He said “Stop.” Then left.", "en") == ["He said “Stop.”", "Then left."]
    assert split_sentences("Wait... Then what?! Nothing.", "en") == ["Wait...", "Then what?!", "Nothing."]
    assert split_sentences("Bis 3. Dann.", "de") == ["Bis 3.", "Dann."]  # digits are kept where the reader did not run
    assert split_sentences("Bis 3. Dann.", "de", digits_start=True) == ["Bis 3. Dann."]  # ... before it runs
    assert wrap("a" * 10 + " bb, cc dd", lambda p: len(p) <= 4) == ["aaaa", "aaaa", "aa", "bb,", "cc", "dd"]
    assert wrap("one two, three four, five.", lambda p: len(p) <= 20) == ["one two, three four,", "five."]
    pieces = wrap("word, " * 80 + "end.", lambda p: len(p) <= MAX_SENTENCE_CHARS)
    assert max(map(len, pieces)) <= MAX_SENTENCE_CHARS and all(p.endswith((",", ".")) for p in pieces)


# ----------------------------------------------------------------------------- the reference


def test_a_long_reference_is_read_only_as_far_as_it_is_used(speaker: Speaker, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import voxkit.audio.io as audio_io

    rate = 44100
    t = np.arange(rate * 60) / rate
    stereo = 0.3 * np.stack([np.sin(2 * np.pi * 150 * t), np.sin(2 * np.pi * 220 * t)], axis=1)  # [T, 2] one minute
    path = tmp_path / "long.wav"
    sf.write(path, stereo.astype(np.float32), rate, subtype="PCM_16")
    resampled: list[int] = []
    resample = audio_io.resample

    def spy(wav: torch.Tensor, orig_sr: int, sample_rate: int) -> torch.Tensor:
        resampled.append(wav.shape[-1])
        return resample(wav, orig_sr, sample_rate)

    monkeypatch.setattr(audio_io, "resample", spy)
    voice = speaker.prepare_voice(path)
    assert voice.warnings == ["the reference is 60.0 s long; its first 3.2 s are used"] and voice.duration == pytest.approx(3.2)
    assert resampled and max(resampled) < 3.5 * rate  # not the whole minute
    monkeypatch.setattr(audio_io, "resample", resample)
    whole = audio_io.load_audio(path, speaker.sample_rate)[: int(3.2 * speaker.sample_rate)]  # what was kept before: cut after loading
    torch.testing.assert_close(voice.codes, speaker.codec.encode(whole, speaker.sample_rate), rtol=0, atol=0)
    head = audio_io.load_audio(path, speaker.sample_rate, mono=False, max_seconds=1.0)  # [2, T] the same door for any caller
    full = audio_io.load_audio(path, speaker.sample_rate, mono=False)
    torch.testing.assert_close(head, full[:, : speaker.sample_rate], rtol=0, atol=0)
    array = speaker.prepare_voice(stereo.astype(np.float32), rate)  # an array is cut before it is resampled, to the same result
    torch.testing.assert_close(array.codes, speaker.prepare_voice((stereo * 32767).astype(np.int16), rate).codes)


def test_a_reference_text_with_a_prepared_voice_is_used(speaker: Speaker) -> None:
    voice = speaker.prepare_voice("demo")
    given, _ = speaker.speak("Hi.", voice=voice, reference_text="Other words entirely.", seed=4)
    prepared, _ = speaker.speak("Hi.", voice=dataclasses.replace(voice, text="Other words entirely."), seed=4)
    stored, _ = speaker.speak("Hi.", voice=voice, seed=4)
    np.testing.assert_array_equal(given, prepared)
    assert given.shape != stored.shape or not np.array_equal(given, stored)
    assert voice.text == "A preset voice."  # the caller's Voice is not changed
    with pytest.raises(OptionError, match="give the voice too"):
        speaker.stream("Hi.", reference_text="Some words.")


def test_messages_name_the_models_reference_window(speaker: Speaker, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    monkeypatch.setattr(speaker.model.args, "max_reference_frames", 125)  # the tiny recipe's 10 s
    short = speaker.prepare_voice(rng.normal(0, 0.1, 24000 * 2).astype(np.float32), 24000)
    assert short.warnings == ["the reference is only 2.0 s long; 3-10 s of clear speech clone a voice better"]
    with pytest.raises(VoxkitError, match=r"give at least 1 s \(3-10 s works best\)"):
        speaker.prepare_voice(rng.normal(0, 0.1, 12000).astype(np.float32), 24000)
    assert speaker.max_reference_seconds == 10.0


# ----------------------------------------------------------------------------- argument types


@pytest.mark.parametrize(("text", "kwargs", "message"), [
    ("Hi.", {"speed": "1"}, r"^speed must be a number between 0.5 and 2.0, got '1'$"),
    ("Hi.", {"speed": float("nan")}, "speed must be"),
    (b"Hi.", {}, r"^text must be a str, got bytes: decode the bytes first"),
    (5, {}, r"^text must be a str, got int$"),
    ("Hi.", {"voice": 5}, r"^voice must be a preset name, an audio file, \(samples, sample_rate\) or a Voice"),
    ("Hi.", {"voice": "demo", "reference_text": 5}, r"^reference_text must be a str, got int$"),
])
def test_wrong_types_are_named(speaker: Speaker, text: object, kwargs: dict, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        speaker.speak(text, **kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- loaded for inference


def test_loaded_speaker_runs_fused_and_says_the_same(speaker: Speaker) -> None:
    """from_pretrained fuses the backbone's projections (the fused CPU step engages); the same
    weights unfused give the same take for the same seed."""
    from voxkit.tts.checkpoint import load_tts

    assert all(getattr(block.attention, "wqkv", None) is not None for block in speaker.model.backbone.layers)
    plain_model, _ = load_tts(speaker.folder)
    plain = Speaker(plain_model, speaker.codec, speaker.tokenizer, speaker.folder)
    assert getattr(plain_model.backbone.layers[0].attention, "wqkv", None) is None
    fused_audio, _ = speaker.speak("Hi there.", voice="demo", seed=3)
    plain_audio, _ = plain.speak("Hi there.", voice="demo", seed=3)
    np.testing.assert_allclose(fused_audio, plain_audio, atol=1e-5)
