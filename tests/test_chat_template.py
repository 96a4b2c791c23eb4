"""Audio-chat messages and prompt ids, held to mistral-common's own encoding of the same requests.

The reference is a mistral-common tokenizer as a Voxtral Mini checkpoint configures it: the shipped
Tekken vocabulary with voxkit's audio slots, instruct tokenizer v7, 16 kHz audio in 30 s chunks.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from voxkit.audio.write import save_audio, to_bytes_wav
from voxkit.chat.messages import AudioPart, ChatTurn, TextPart, parse_messages
from voxkit.chat.template import (
    AUDIO_TOKENS_PER_CHUNK,
    audio_parts,
    audio_spans,
    audio_token_count,
    encode_chat,
    encode_transcription,
    padded_samples,
)
from voxkit.errors import AudioError, VoxkitError
from voxkit.subset_tokenizer import SubsetTokenizer
from voxkit.tokenizer import SHIPPED_TEKKEN, SPECIAL_TOKENS, ByteTokenizer, TekkenTokenizer

SR = 16000
USER = {"role": "user", "content": "hi"}


def tone(seconds: float, channels: int = 1) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR  # [T]
    wav = 0.3 * torch.sin(2 * math.pi * 220.0 * t)  # [T]
    return wav if channels == 1 else wav.expand(channels, -1).clone()  # [C, T]


def b64_wav(seconds: float) -> str:
    return base64.b64encode(to_bytes_wav(tone(seconds), SR)).decode("ascii")


def txt(text: Any) -> dict[str, Any]:
    return {"type": "text", "text": text}


def audio_part(seconds: float, data_url: bool = False) -> dict[str, Any]:
    data = b64_wav(seconds)
    return {"type": "input_audio", "input_audio": {"data": f"data:audio/wav;base64,{data}" if data_url else data, "format": "wav"}}


def audio_encoder(chunk_seconds: float | None) -> Any:
    from mistral_common.tokens.tokenizers.audio import AudioConfig, AudioEncoder, AudioSpectrogramConfig, SpecialAudioIDs

    config = AudioConfig(
        sampling_rate=SR,
        frame_rate=12.5,
        encoding_config=AudioSpectrogramConfig(num_mel_bins=128, hop_length=160, window_size=400),
        chunk_length_s=chunk_seconds,
    )
    return AudioEncoder(config, SpecialAudioIDs(audio=24, begin_audio=25, streaming_pad=None, text_to_audio=None, audio_to_text=None))


@pytest.fixture(scope="module")
def reference() -> Any:
    """mistral-common's MistralTokenizer: the shipped Tekken (audio slots named, as voxkit's) at v7."""
    import mistral_common
    from mistral_common.protocol.instruct.normalize import get_normalizer
    from mistral_common.protocol.instruct.validator import ValidationMode, get_validator
    from mistral_common.tokens.tokenizers.base import TokenizerVersion
    from mistral_common.tokens.tokenizers.instruct import InstructTokenizerV7
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    data = json.loads((Path(mistral_common.__file__).parent / "data" / SHIPPED_TEKKEN).read_text(encoding="utf-8"))
    config = data["config"]
    specials = [dict(t) for t in Tekkenizer.DEPRECATED_SPECIAL_TOKENS]
    for rank in range(len(specials), config["default_num_special_tokens"]):
        specials.append({"rank": rank, "token_str": SPECIAL_TOKENS.get(rank, f"<SPECIAL_{rank}>"), "is_control": True})
    tekken = Tekkenizer(
        data["vocab"],
        specials,  # type: ignore[arg-type]
        pattern=config["pattern"],
        vocab_size=config["default_vocab_size"],
        num_special_tokens=config["default_num_special_tokens"],
        version=TokenizerVersion.v7,
    )
    return MistralTokenizer(
        InstructTokenizerV7(tekken, audio_encoder=audio_encoder(30.0)),
        validator=get_validator(TokenizerVersion.v7, mode=ValidationMode.test),
        request_normalizer=get_normalizer(TokenizerVersion.v7),
    )


@pytest.fixture(scope="module")
def tekken() -> TekkenTokenizer:
    return TekkenTokenizer.shipped()


def reference_chat(reference: Any, messages: list[dict[str, Any]]) -> list[int]:
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    return list(reference.encode_chat_completion(ChatCompletionRequest(messages=messages)).tokens)


def reference_transcription(reference: Any, seconds: float, language: str | None) -> list[int]:
    from mistral_common.protocol.transcription.request import TranscriptionRequest

    return list(reference.encode_transcription(TranscriptionRequest(audio=b64_wav(seconds), language=language)).tokens)


# --- ids identical to mistral-common ---------------------------------------------------------------


def test_two_clips_and_text_in_one_turn(reference: Any, tekken: TekkenTokenizer) -> None:
    # neighbouring text parts are joined with a blank line; the empty one is dropped
    content = [txt("Compare these two clips. "), txt(" Be brief."), audio_part(1.0), txt("and"), audio_part(2.5, data_url=True), txt("")]
    messages = [{"role": "user", "content": content}]
    ids = encode_chat(parse_messages(messages), tekken)
    assert ids == reference_chat(reference, messages)
    assert audio_spans(ids) == [(ids.index(25) + 1, 375), (len(ids) - 376, 375)]


def test_multi_turn_with_system_prompts(reference: Any, tekken: TekkenTokenizer) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "system", "content": " Really terse. "},
        {"role": "user", "content": "  What is 2+2? "},
        {"role": "system", "content": [txt("Answer in French."), txt("Always.")]},
        {"role": "assistant", "content": [txt("Quatre."), txt("Fini.  \n  ")]},
        {"role": "user", "content": [txt("And 3+3?")]},
    ]
    ids = encode_chat(parse_messages(messages), tekken)
    assert ids == reference_chat(reference, messages)
    assert ids[:2] == [1, 17] and ids[-1] == 4


def test_multi_turn_with_audio(reference: Any, tekken: TekkenTokenizer) -> None:
    messages = [
        {"role": "user", "content": [audio_part(3.0), txt("What is said here?")]},
        {"role": "assistant", "content": "A tone, nothing said. "},
        {"role": "user", "content": [txt("And here?"), audio_part(0.5)]},
    ]
    assert encode_chat(parse_messages(messages), tekken) == reference_chat(reference, messages)


def test_audio_longer_than_one_chunk(reference: Any, tekken: TekkenTokenizer) -> None:
    messages = [{"role": "user", "content": [audio_part(31.0), txt("Summarise.")]}]
    ids = encode_chat(parse_messages(messages), tekken)
    assert ids == reference_chat(reference, messages)
    assert [n for _, n in audio_spans(ids)] == [2 * AUDIO_TOKENS_PER_CHUNK]


@pytest.mark.parametrize("language", ["en", None])
def test_transcription(reference: Any, tekken: TekkenTokenizer, language: str | None) -> None:
    n = audio_token_count(int(2.0 * SR))
    assert encode_transcription(n, tekken, language=language) == reference_transcription(reference, 2.0, language)


def test_system_prompt_with_audio_is_refused_like_v7(reference: Any, tekken: TekkenTokenizer) -> None:
    messages = [{"role": "system", "content": "Be nice."}, {"role": "user", "content": [audio_part(0.5)]}]
    with pytest.raises(ValueError, match="not allowed"):
        reference_chat(reference, messages)
    with pytest.raises(VoxkitError, match="system messages"):
        encode_chat(parse_messages(messages), tekken)


def test_system_after_assistant_is_refused_like_v7(reference: Any) -> None:
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "system", "content": "c"}, USER]
    with pytest.raises(Exception, match="Unexpected role 'system' after role 'assistant'"):
        reference_chat(reference, messages)
    with pytest.raises(VoxkitError, match="message 2: a system message cannot follow"):
        parse_messages(messages)


@pytest.mark.parametrize("chunk", [30.0, None])
@pytest.mark.parametrize("samples", [1, 159, 160, 399, 400, 1279, 1281, 16000, 479999, 480000, 480001, 1_000_003])
def test_audio_token_count_matches_the_audio_encoder(chunk: float | None, samples: int) -> None:
    from mistral_common.tokens.tokenizers.audio import Audio

    audio = Audio(np.zeros(samples, dtype=np.float32), SR, "wav")
    expected = len(audio_encoder(chunk).encode_audio(audio).tokens) - 1  # minus [BEGIN_AUDIO]
    assert audio_token_count(samples, chunk_seconds=chunk) == expected
    assert padded_samples(samples, chunk_seconds=chunk) == audio.audio_array.shape[0]


def test_audio_token_count_per_chunk() -> None:
    assert AUDIO_TOKENS_PER_CHUNK == 375
    assert audio_token_count(1) == audio_token_count(30 * SR) == 375
    assert audio_token_count(30 * SR + 1) == 750
    with pytest.raises(VoxkitError):
        audio_token_count(0)


# --- other tokenizers ------------------------------------------------------------------------------

CHAT = [
    {"role": "system", "content": "Sys"},
    {"role": "user", "content": "héllo"},
    {"role": "assistant", "content": "hi "},
    {"role": "user", "content": "again"},
]


def test_byte_tokenizer_layout() -> None:
    tok = ByteTokenizer()

    def text(s: str) -> list[int]:
        return tok.encode(s, bos=False)

    expected = [1, 17, *text("Sys"), 18, 3, *text("héllo"), 4, *text("hi"), 2, 3, *text("again"), 4]
    assert encode_chat(parse_messages(CHAT), tok) == expected
    turns = parse_messages([{"role": "user", "content": [{"type": "audio", "array": np.zeros(SR, np.float32), "sampling_rate": SR}]}])
    assert encode_chat(turns, tok) == [1, 3, 25, *[24] * 375, 4]
    assert encode_transcription(2, tok, language="fr") == [1, 3, 25, 24, 24, 4, *text("lang:fr"), 34]


def test_subset_tokenizer_keeps_the_layout(tekken: TekkenTokenizer) -> None:
    subset = SubsetTokenizer.from_texts(tekken, ["hello again hello again", "Sys Sys"], max_pieces=4, min_count=1)
    turns = parse_messages(CHAT)
    assert encode_chat(turns, subset) == subset._map(encode_chat(turns, tekken))
    assert encode_transcription(3, subset, language="de") == subset._map(encode_transcription(3, tekken, language="de"))


def test_audio_spans_and_parts(tekken: TekkenTokenizer) -> None:
    turns = [ChatTurn("user", (TextPart("a"), AudioPart(torch.zeros(10)), AudioPart(torch.zeros(SR * 40))))]
    ids = encode_chat(turns, tekken, audio_tokens=lambda p: 1 + int(p.samples.shape[0] > SR))
    assert [ids[s - 1] for s, _ in audio_spans(ids)] == [25, 25]
    assert [n for _, n in audio_spans(ids)] == [1, 2]
    assert [p.samples.shape[0] for p in audio_parts(turns)] == [10, SR * 40]


@pytest.mark.parametrize("language", ["EN", "english", "e", "", "en-US", 5])
def test_bad_language(tekken: TekkenTokenizer, language: Any) -> None:
    with pytest.raises(VoxkitError, match="language"):
        encode_transcription(3, tekken, language=language)


# --- audio inputs ----------------------------------------------------------------------------------


def one_clip(part: dict[str, Any]) -> torch.Tensor:
    (turn,) = parse_messages([{"role": "user", "content": [part]}])
    (clip,) = turn.parts
    assert isinstance(clip, AudioPart)
    assert clip.samples.dtype == torch.float32 and clip.samples.ndim == 1
    return clip.samples


def test_arrays_are_downmixed_scaled_and_resampled() -> None:
    left = (tone(0.5) * 32767).round().to(torch.int16).numpy()  # [T]
    stereo = np.stack([left, left], axis=1)  # [T, 2], as soundfile returns it
    samples = one_clip({"type": "audio", "array": stereo, "sampling_rate": SR})
    assert samples.shape == (SR // 2,)
    assert torch.allclose(samples, tone(0.5), atol=1e-4)
    channels_first = one_clip({"type": "audio", "audio": torch.from_numpy(stereo.T.copy()), "sampling_rate": SR})  # [2, T]
    assert torch.equal(samples, channels_first)
    resampled = one_clip({"type": "audio", "array": tone(1.0)[::2].tolist(), "sampling_rate": 8000})  # a float list at 8 kHz
    assert abs(resampled.shape[0] - SR) <= 1


def test_paths_and_urls_decode_the_same(tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    save_audio(path, tone(0.25, channels=2), SR)
    b64 = base64.b64encode(path.read_bytes()).decode()
    clips = [
        one_clip({"type": "audio", "path": str(path)}),
        one_clip({"type": "audio", "audio": str(path)}),
        one_clip({"type": "audio", "url": f"file://{path}"}),
        one_clip({"type": "audio", "url": f"data:audio/wav;base64,{b64}"}),
        one_clip({"type": "audio_url", "audio_url": {"url": str(path)}}),
        one_clip({"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}}),
        one_clip({"type": "input_audio", "input_audio": {"data": "\n".join([b64[:64], b64[64:]])}}),  # line-wrapped
    ]
    assert clips[0].shape == (SR // 4,)
    assert all(torch.equal(c, clips[0]) for c in clips)


def test_max_audios() -> None:
    messages = [
        {"role": "user", "content": [audio_part(0.1)]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [audio_part(0.1), audio_part(0.1)]},
    ]
    assert len(audio_parts(parse_messages(messages, max_audios=3))) == 3
    with pytest.raises(VoxkitError, match=r"message 2, part 1: too many audio"):
        parse_messages(messages, max_audios=2)
    with pytest.raises(VoxkitError, match=r"message 0, part 0: too many"):
        parse_messages(messages, max_audios=0)


# --- errors ----------------------------------------------------------------------------------------

NOT_AUDIO = base64.b64encode(b"not audio").decode()
EMPTY_WAV = base64.b64encode(to_bytes_wav(torch.zeros(10), SR)[:44]).decode()  # a header with no frames


def nan_float_wav() -> str:
    buf = io.BytesIO()
    sf.write(buf, np.array([0.0, np.nan, 0.1], np.float32), SR, format="WAV", subtype="FLOAT")
    return base64.b64encode(buf.getvalue()).decode()


def user_part(part: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [txt("x"), part]}]


ERRORS: list[tuple[Any, str]] = [
    ([], "at least one message"),
    ("hello", "must be a list"),
    (["hello"], "message 0 must be an object"),
    ([{"content": "x"}], "message 0 has no 'role'"),
    ([{"role": "tool", "content": "x"}], "unsupported role 'tool'"),
    ([USER, USER], "message 1: expected an assistant"),
    ([{"role": "assistant", "content": "x"}, USER], "message 0: expected a user"),
    ([USER, {"role": "assistant", "content": "x"}], "last message must be a user"),
    ([USER, {"role": "system", "content": "x"}], "last message must be a user"),
    ([{"role": "system", "content": "x"}], "message 0: expected a user|last message"),
    ([{"role": "user", "content": ""}], "message 0 \\(user\\) has empty content"),
    ([{"role": "user", "content": []}], "empty content"),
    ([{"role": "user"}], "empty content"),
    ([{"role": "user", "content": [txt("")]}], "empty content"),
    ([{"role": "user", "content": 5}], "content must be a string or a list"),
    (user_part({"type": "image_url", "image_url": "x"}), "message 0, part 1: .*'image_url'.*supported: text, input_audio"),
    (user_part({"text": "no type"}), "part 1: unsupported content part with no 'type'"),
    (user_part("plain string"), "part 1: a content part must be an object"),
    (user_part(txt(3)), "part 1: a text part needs a string 'text', got int"),
    (user_part({"type": "input_audio", "input_audio": {"data": "not base64!"}}), "part 1: audio data is not valid base64"),
    (user_part({"type": "input_audio", "input_audio": {"data": NOT_AUDIO}}), "part 1: cannot decode the audio data: [^<]*$"),
    (user_part({"type": "input_audio", "input_audio": {"data": EMPTY_WAV}}), "part 1: audio is empty$"),
    (user_part({"type": "input_audio", "input_audio": {"data": nan_float_wav()}}), "part 1: audio contains NaN"),
    (user_part({"type": "input_audio", "input_audio": {"format": "wav"}}), "part 1: 'input_audio' needs base64"),
    (user_part({"type": "audio", "url": "data:audio/wav,abc"}), "part 1: a data URL must look like"),
    (user_part({"type": "audio", "url": "https://example.com/a.wav"}), "part 1: remote audio URLs"),
    (user_part({"type": "audio", "path": "/no/such/file.wav"}), "part 1: audio file not found"),
    (user_part({"type": "audio"}), "part 1: an audio part needs one of"),
    (user_part({"type": "audio", "array": np.zeros((2, 3, 400))}), "part 1: audio arrays must be"),
    (user_part({"type": "audio", "array": np.zeros((4, 4))}), "part 1: cannot tell channels"),
    (user_part({"type": "audio", "array": np.array([0.0, np.nan] * 100)}), "part 1: audio contains NaN"),
    (user_part({"type": "audio", "array": np.zeros(0)}), "part 1: audio is empty"),
    (user_part({"type": "audio", "array": [1, 2, 3]}), r"part 1: int64 is not a PCM sample type \(a list of Python ints .*np\.int16"),
    (user_part({"type": "audio", "array": [[0.0], [0.0, 1.0]]}), "part 1: .*rectangular"),
    (user_part({"type": "audio", "array": "abc"}), "part 1: an audio 'array' must be"),
    (user_part({"type": "audio", "array": np.zeros(100), "sampling_rate": 0}), "part 1: 'sampling_rate' must be"),
    (user_part({"type": "audio", "array": np.zeros(100), "sampling_rate": "16k"}), "part 1: 'sampling_rate'"),
    (user_part({"type": "audio", "array": np.zeros(100), "sampling_rate": True}), "part 1: 'sampling_rate'"),
    ([USER, {"role": "assistant", "content": [{"type": "audio", "array": np.zeros(100)}]}, USER], "message 1, part 0: audio is only"),
    ([{"role": "system", "content": [{"type": "audio", "array": np.zeros(100)}]}, USER], "message 0, part 0: .* system message"),
]


@pytest.mark.parametrize(("messages", "pattern"), ERRORS)
def test_parse_errors(messages: Any, pattern: str) -> None:
    with pytest.raises(VoxkitError, match=pattern) as info:
        parse_messages(messages)
    assert "\n" not in str(info.value)


def test_audio_errors_are_audio_errors() -> None:
    with pytest.raises(AudioError):
        parse_messages(user_part({"type": "audio", "array": np.zeros(0)}))
    with pytest.raises(VoxkitError, match="max_audios"):
        parse_messages([USER], max_audios=-1)


def test_encode_chat_checks_turns(tekken: TekkenTokenizer) -> None:
    with pytest.raises(VoxkitError, match="last message"):
        encode_chat([ChatTurn("user", (TextPart("a"),)), ChatTurn("assistant", (TextPart("b"),))], tekken)
    with pytest.raises(VoxkitError, match="only accepted in user"):
        user = ChatTurn("user", (TextPart("a"),))
        encode_chat([user, ChatTurn("assistant", (AudioPart(torch.zeros(5)),)), user], tekken)
    with pytest.raises(VoxkitError, match="empty content"):
        encode_chat([ChatTurn("user", (TextPart(""),))], tekken)
    with pytest.raises(VoxkitError, match="audio tokens"):
        encode_chat([ChatTurn("user", (AudioPart(torch.zeros(5)),))], tekken, audio_tokens=lambda p: 0)
