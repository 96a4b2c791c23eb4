"""Chat messages as clients send them, turned into typed turns with decoded audio.

Servers and notebooks hand the audio-chat model OpenAI / vLLM / transformers-style messages:
``{"role": ..., "content": str | [part, ...]}`` with text parts and audio given as base64
(``input_audio``), a file path, a data URL or an in-memory array. Everything is decoded here, once,
to float32 mono at the model's rate, so the chat template and the audio encoder only ever see
:class:`ChatTurn` objects. Every client mistake raises :class:`~voxkit.errors.VoxkitError` (or its
:class:`~voxkit.errors.AudioError`) with one line naming the message and part index, because a
server turns that line into its 400 response and a stack trace tells the caller nothing.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from voxkit.audio.io import array_to_mono, check_sample_rate, load_audio, resample
from voxkit.checks import unicode_problem
from voxkit.errors import AudioError, VoxkitError

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = ("system", "user", "assistant")
PART_TYPES: tuple[str, ...] = ("text", "input_audio", "audio", "audio_url")


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class AudioPart:
    """One clip, already decoded: ``samples`` is float32 mono [T] at the model's rate (16 kHz)."""

    samples: torch.Tensor


@dataclass(frozen=True)
class ChatTurn:
    role: Role
    parts: tuple[TextPart | AudioPart, ...]


def check_turn_order(roles: Sequence[str]) -> None:
    """Raise unless the conversation is one the audio-chat template can encode for generation.

    The non-system messages must alternate user/assistant starting with a user message, and the
    last message must be a user message (the model answers it). A system message may open the chat
    or follow a user or system message, never an assistant one (mistral-common's v7 validator
    refuses that order); the v7 template writes each one in place, between its own markers.
    mistral-common accepts a little more (a leading assistant message, two user messages in a row,
    which it merges with ``"\\n\\n"``, a trailing system message); those are refused here, since a
    client that sends them has most likely lost a turn. Every chat accepted here encodes the same.
    """
    if not roles:
        raise VoxkitError("a chat needs at least one message")
    expected = "user"
    for i, role in enumerate(roles):
        if role == "system":
            if i and roles[i - 1] == "assistant":
                raise VoxkitError(f"message {i}: a system message cannot follow an assistant message (only a user or system one)")
            continue
        if role != expected:
            article = "an" if expected == "assistant" else "a"
            raise VoxkitError(f"message {i}: expected {article} {expected} message here, got {role!r} (roles alternate user/assistant)")
        expected = "assistant" if role == "user" else "user"
    if roles[-1] != "user":
        raise VoxkitError(f"the last message must be a user message, got {roles[-1]!r} (message {len(roles) - 1})")


def parse_messages(
    messages: Sequence[Mapping[str, Any]], *, max_audios: int | None = None, sample_rate: int = 16000
) -> list[ChatTurn]:
    """Turn client messages into :class:`ChatTurn` objects, decoding every audio part.

    Accepted parts: ``{"type": "text", "text": str}``; ``{"type": "input_audio", "input_audio":
    {"data": base64 or data URL, "format": ...}}`` (OpenAI); ``{"type": "audio", ...}`` with one of
    ``path``, ``audio`` (a path, an array or a file's bytes), ``url`` (a path, ``file://`` URI or base64 data URL),
    ``array`` (+ ``sampling_rate`` or ``sample_rate``, defaulting to ``sample_rate`` as transformers assumes);
    ``{"type": "audio_url", "audio_url": {"url": ...}}`` (vLLM). Remote http(s) URLs are refused:
    fetching them is the server's decision, not the parser's. Audio may only appear in user
    messages, and at most ``max_audios`` clips in the whole conversation (counted before decoding,
    so an oversized request is refused cheaply). Empty text parts next to other parts are dropped,
    as mistral-common does.
    """
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise VoxkitError(f"messages must be a list of {{'role', 'content'}} objects, got {type(messages).__name__}")
    if not messages:
        raise VoxkitError("a chat needs at least one message")
    if max_audios is not None and (isinstance(max_audios, bool) or not isinstance(max_audios, int) or max_audios < 0):
        raise VoxkitError(f"max_audios must be a non-negative integer or None, got {max_audios!r}")
    turns: list[ChatTurn] = []
    n_audio = 0
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise VoxkitError(f"message {i} must be an object with 'role' and 'content', got {type(message).__name__}")
        role = message.get("role")
        if role is None:
            raise VoxkitError(f"message {i} has no 'role'")
        if role not in ROLES:
            raise VoxkitError(f"message {i}: unsupported role {role!r} (expected one of {', '.join(ROLES)})")
        content = message.get("content")
        raw_parts: Sequence[Any]
        if isinstance(content, str):
            raw_parts = [{"type": "text", "text": content}]
        elif isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
            raw_parts = content
        elif content is None:
            raw_parts = []
        else:
            raise VoxkitError(f"message {i}: content must be a string or a list of parts, got {type(content).__name__}")
        parts: list[TextPart | AudioPart] = []
        for j, raw in enumerate(raw_parts):
            where = f"message {i}, part {j}"
            kind = _part_type(raw, where)
            if kind == "text":
                text = raw.get("text")
                if not isinstance(text, str):
                    raise VoxkitError(f"{where}: a text part needs a string 'text', got {type(text).__name__}")
                if (problem := unicode_problem(text)) is not None:
                    raise VoxkitError(f"{where}: the text {problem}")
                if text:
                    parts.append(TextPart(text))
                continue
            if role != "user":
                raise VoxkitError(f"{where}: audio is only accepted in user messages, not in {role} messages")
            n_audio += 1
            if max_audios is not None and n_audio > max_audios:
                raise VoxkitError(f"{where}: too many audio clips (at most {max_audios} per conversation)")
            parts.append(AudioPart(_decode_audio(raw, kind, where, sample_rate)))
        if not parts:
            raise VoxkitError(f"message {i} ({role}) has empty content")
        turns.append(ChatTurn(role, tuple(parts)))
    check_turn_order([t.role for t in turns])
    return turns


def _part_type(raw: Any, where: str) -> str:
    if not isinstance(raw, Mapping):
        raise VoxkitError(f"{where}: a content part must be an object with a 'type', got {type(raw).__name__}")
    kind = raw.get("type")
    if kind not in PART_TYPES:
        shown = "no 'type'" if kind is None else f"type {kind!r}"
        raise VoxkitError(f"{where}: unsupported content part with {shown} (supported: {', '.join(PART_TYPES)})")
    return str(kind)


def _decode_audio(raw: Mapping[str, Any], kind: str, where: str, sample_rate: int) -> torch.Tensor:
    """float32 mono [T] at ``sample_rate`` from one audio part, or an AudioError naming ``where``."""
    try:
        if kind == "input_audio":
            spec = raw.get("input_audio")
            data = spec.get("data") if isinstance(spec, Mapping) else spec
            if not isinstance(data, (str, bytes)) or not data:
                raise AudioError("'input_audio' needs base64 'data' (a string)")
            return _from_bytes(data if isinstance(data, bytes) else _b64(data), sample_rate)
        if kind == "audio_url":
            spec = raw.get("audio_url")
            return _from_reference(spec.get("url") if isinstance(spec, Mapping) else spec, sample_rate)
        if "array" in raw:
            return _from_array(raw["array"], _array_rate(raw, sample_rate), sample_rate)
        for key in ("path", "audio", "url"):
            if key in raw:
                value = raw[key]
                if key == "audio" and isinstance(value, (bytes, bytearray, memoryview)):
                    return _from_bytes(bytes(value), sample_rate)  # a file's bytes, as transcribe() takes them
                if key == "audio" and not isinstance(value, (str, os.PathLike)):
                    return _from_array(value, _array_rate(raw, sample_rate), sample_rate)
                return _from_reference(value, sample_rate)
        raise AudioError("an audio part needs one of 'path', 'audio', 'url' or 'array'")
    except AudioError as err:
        raise AudioError(f"{where}: {err}") from None


def _array_rate(raw: Mapping[str, Any], default: int) -> Any:
    """An array part's rate: ``sampling_rate`` (transformers' and datasets' key) or ``sample_rate``
    (voxkit's own keyword everywhere else). Why both: a rate under the other spelling was ignored,
    and 48 kHz samples read as 16 kHz came out three times too long, without a word."""
    rates = {key: raw[key] for key in ("sampling_rate", "sample_rate") if key in raw}
    if len(rates) == 2 and rates["sampling_rate"] != rates["sample_rate"]:
        raise AudioError(f"the audio part gives two rates, sampling_rate {rates['sampling_rate']!r} and "
                         f"sample_rate {rates['sample_rate']!r}: give one")
    return next(iter(rates.values()), default)


def _b64(text: str) -> bytes:
    """Bytes of plain base64 or of a ``data:...;base64,`` URL (whitespace from line-wrapping ignored)."""
    if text.startswith("data:"):
        header, comma, text = text.partition(",")
        if not comma or not header.endswith(";base64"):
            raise AudioError("a data URL must look like 'data:audio/<format>;base64,<data>'")
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise AudioError("audio data is not valid base64") from None
    if not data:
        raise AudioError("audio data is empty")
    return data


def _from_bytes(data: bytes, sample_rate: int) -> torch.Tensor:
    """Decode in-memory file bytes; libsndfile's reason is kept, the in-memory stream's repr dropped."""
    try:
        return load_audio(io.BytesIO(data), sample_rate)  # [T]
    except AudioError as err:
        text = str(err)
        if text.startswith("cannot decode audio"):
            text = f"cannot decode the audio data: {text.rsplit(': ', 1)[-1]}"
        raise AudioError(text.replace(": <stream>", "")) from None


def _from_reference(ref: Any, sample_rate: int) -> torch.Tensor:
    """A path, ``file://`` URI or base64 data URL; remote URLs are refused."""
    if isinstance(ref, os.PathLike):
        ref = os.fspath(ref)
    if not isinstance(ref, str) or not ref:
        raise AudioError(f"an audio path or URL must be a non-empty string, got {type(ref).__name__}")
    if ref.startswith("data:"):
        return _from_bytes(_b64(ref), sample_rate)
    if ref.startswith(("http://", "https://")):
        raise AudioError(f"remote audio URLs are not fetched ({ref[:60]}); download it and pass a path or base64")
    return load_audio(ref.removeprefix("file://"), sample_rate)  # [T]


def _from_array(samples: Any, rate: Any, sample_rate: int) -> torch.Tensor:
    """An in-memory array ([T], [T, C] or [C, T], float or integer PCM) as mono [T] at ``sample_rate``."""
    rate = check_sample_rate(rate, "'sampling_rate'")  # the one rule of every API that takes samples
    if isinstance(samples, (list, tuple)):
        try:
            samples = np.asarray(samples)  # float lists stay float; int lists become int64, which pcm_to_float refuses
        except ValueError:
            raise AudioError("an audio 'array' list must be rectangular: [T] or [T, C] numbers") from None
    if not isinstance(samples, (np.ndarray, torch.Tensor)):
        raise AudioError(f"an audio 'array' must be a numpy array, a torch tensor or a list, got {type(samples).__name__}")
    mono = torch.from_numpy(array_to_mono(samples))  # [T]
    return resample(mono, rate, int(sample_rate)).contiguous()  # [T']
