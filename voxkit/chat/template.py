"""The audio-chat prompt: token ids of a conversation exactly as mistral-common writes them for a
Voxtral-style model (Tekken, instruct tokenizer v7, 16 kHz audio in 30 s chunks).

Why a second implementation instead of calling mistral-common: the model must accept any voxkit
tokenizer (the byte tokenizer and vocabulary subsets of the small models included), and the audio
arrives already decoded, so re-encoding it to base64 WAV for mistral-common would be wasted work.
The tests hold this module to mistral-common's own ids on the same requests.

The v7 layout (``<s>`` = 1, ``</s>`` = 2)::

    <s> [SYSTEM_PROMPT]sys[/SYSTEM_PROMPT] [INST]text[BEGIN_AUDIO][AUDIO]*N text[/INST] answer</s> [INST]...[/INST]

* Each system message is written where it stands, between its own markers (v3 prepended one
  merged system prompt to the last user message instead); its text is not stripped.
* User text is encoded as given: no stripping and no added space around the markers. Neighbouring
  text parts of one message are joined with ``"\\n\\n"`` (mistral-common's normalizer does that
  before encoding); an audio part splits the text around it. Empty text parts are dropped.
* Assistant text is joined the same way, then trailing spaces (only ``" "``) are stripped.
* v7 refuses system messages in a conversation that has audio (allowed from v11 on); so does
  :func:`encode_chat`, since a v7 model was never trained on that layout.
* An audio clip is padded with silence to a whole number of 30 s chunks, 375 tokens each.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

from voxkit.chat.messages import AudioPart, ChatTurn, TextPart, check_turn_order
from voxkit.errors import VoxkitError
from voxkit.tokenizer import AUDIO_ID, BEGIN_AUDIO_ID, END_INST_ID, INST_ID, TRANSCRIBE_ID, Tokenizer

BEGIN_SYSTEM_ID = 17  # [SYSTEM_PROMPT]
END_SYSTEM_ID = 18  # [/SYSTEM_PROMPT]
SAMPLE_RATE = 16000
CHUNK_SECONDS = 30.0
FRAME_RATE = 12.5  # audio tokens per second
HOP = 160  # mel hop, samples
WINDOW = 400  # mel window, samples: the shortest audio without chunking
AUDIO_TOKENS_PER_CHUNK = 375  # 30 s * 12.5 tokens/s
TEXT_JOIN = "\n\n"
_LANGUAGE = re.compile(r"[a-z]{2,3}")


def padded_samples(
    num_samples: int, *, chunk_seconds: float | None = CHUNK_SECONDS, sample_rate: int = SAMPLE_RATE, window: int = WINDOW
) -> int:
    """Length the audio encoder sees: rounded up to whole chunks (the encoder was trained on 30 s
    windows, so a short clip is padded with silence, never stretched), or at least one mel window
    when chunking is off."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise VoxkitError(f"an audio clip needs at least one sample, got {num_samples!r}")
    if chunk_seconds is None:
        return max(num_samples, window)
    chunk = int(chunk_seconds * sample_rate)
    if chunk < 1:
        raise VoxkitError(f"chunk_seconds={chunk_seconds} is shorter than one sample at {sample_rate} Hz")
    return math.ceil(num_samples / chunk) * chunk


def audio_token_count(
    num_samples: int,
    *,
    chunk_seconds: float | None = CHUNK_SECONDS,
    sample_rate: int = SAMPLE_RATE,
    frame_rate: float = FRAME_RATE,
    hop: int = HOP,
    window: int = WINDOW,
) -> int:
    """Number of ``[AUDIO]`` placeholders for a clip of ``num_samples`` samples.

    As mistral-common counts them: pad (:func:`padded_samples`), count mel frames (a partial hop
    does not make a frame), then one token per ``sample_rate // frame_rate / hop`` frames, rounded
    up. The prompt must reserve exactly as many positions as the audio encoder will emit embeddings.
    """
    padded = padded_samples(num_samples, chunk_seconds=chunk_seconds, sample_rate=sample_rate, window=window)
    frames_per_token = int((sample_rate // frame_rate) / hop)
    if frames_per_token < 1:
        raise VoxkitError(f"one audio token must span at least one hop: {sample_rate} Hz / {frame_rate} tokens/s < {hop}")
    frames = padded // hop
    return -(-frames // frames_per_token)


def default_audio_tokens(part: AudioPart) -> int:
    """Token count of a 16 kHz clip with 30 s chunks (Voxtral Mini's audio encoder)."""
    return audio_token_count(int(part.samples.shape[-1]))


def audio_parts(turns: Sequence[ChatTurn]) -> list[AudioPart]:
    """The clips of a conversation in the order of their spans in :func:`encode_chat`'s ids."""
    return [p for t in turns for p in t.parts if isinstance(p, AudioPart)]


def _joined(parts: Sequence[TextPart | AudioPart]) -> list[str | AudioPart]:
    """Neighbouring non-empty text parts joined with TEXT_JOIN; audio parts kept in place."""
    out: list[str | AudioPart] = []
    for part in parts:
        if isinstance(part, AudioPart):
            out.append(part)
        elif not part.text:
            continue
        elif out and isinstance(out[-1], str):
            out[-1] = out[-1] + TEXT_JOIN + part.text
        else:
            out.append(part.text)
    return out


def encode_chat(
    turns: Sequence[ChatTurn], tokenizer: Tokenizer, *, audio_tokens: Callable[[AudioPart], int] = default_audio_tokens
) -> list[int]:
    """Prompt ids for generation, ending with ``[/INST]`` (layout and rules in the module docstring).

    ``audio_tokens`` gives the placeholder count of a clip: the default is Voxtral Mini's; a model
    with another audio encoder passes its own. :func:`audio_spans` finds the placeholders again.
    """
    check_turn_order([t.role for t in turns])
    if audio_parts(turns) and (systems := [i for i, t in enumerate(turns) if t.role == "system"]):
        raise VoxkitError(f"system messages (message {systems[0]}) cannot be combined with audio in this chat format (v7)")
    ids = [tokenizer.bos_id]
    for i, turn in enumerate(turns):
        pieces = _joined(turn.parts)
        if not pieces:
            raise VoxkitError(f"message {i} ({turn.role}) has empty content")
        if turn.role != "user" and any(isinstance(p, AudioPart) for p in pieces):
            raise VoxkitError(f"message {i}: audio is only accepted in user messages, not in {turn.role} messages")
        if turn.role == "system":
            ids += [BEGIN_SYSTEM_ID, *tokenizer.encode(str(pieces[0]), bos=False), END_SYSTEM_ID]
        elif turn.role == "assistant":
            ids += [*tokenizer.encode(str(pieces[0]).rstrip(" "), bos=False), tokenizer.eos_id]
        else:
            ids.append(INST_ID)
            for j, piece in enumerate(pieces):
                if isinstance(piece, str):
                    ids += tokenizer.encode(piece, bos=False)
                    continue
                n = audio_tokens(piece)
                if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                    raise VoxkitError(f"message {i}: audio clip {j} maps to {n!r} audio tokens; expected a positive integer")
                ids += [BEGIN_AUDIO_ID, *[AUDIO_ID] * n]
            ids.append(END_INST_ID)
    return ids


def audio_spans(ids: Sequence[int]) -> list[tuple[int, int]]:
    """``(start, length)`` of each run of ``[AUDIO]`` ids that follows a ``[BEGIN_AUDIO]``, in order:
    the positions whose embeddings the audio encoder's outputs replace. ``start`` is the index of
    the first ``[AUDIO]``, one past its ``[BEGIN_AUDIO]``."""
    spans: list[tuple[int, int]] = []
    i, n = 0, len(ids)
    while i < n:
        if ids[i] == BEGIN_AUDIO_ID:
            start = i = i + 1
            while i < n and ids[i] == AUDIO_ID:
                i += 1
            spans.append((start, i - start))
        else:
            i += 1
    return spans


def check_language(language: str | None) -> None:
    """A language hint must be an ISO 639 code (``"en"``, ``"yue"``): the model was trained on
    ``lang:xx`` prompts, and anything else is silently treated as text it never saw."""
    if language is not None and (not isinstance(language, str) or not _LANGUAGE.fullmatch(language)):
        raise VoxkitError(f"language must be a two- or three-letter lowercase ISO 639 code such as 'en', got {language!r}")


def encode_transcription(num_audio_tokens: int, tokenizer: Tokenizer, *, language: str | None) -> list[int]:
    """``<s>[INST][BEGIN_AUDIO][AUDIO]*N[/INST]lang:xx[TRANSCRIBE]``: the transcription prompt.

    As mistral-common's instruct transcription: the clip is a user turn of its own, and the
    optional language hint is the text ``lang:xx`` right after ``[/INST]`` (no space), before the
    ``[TRANSCRIBE]`` marker that asks for a verbatim transcript instead of an answer.
    """
    if isinstance(num_audio_tokens, bool) or not isinstance(num_audio_tokens, int) or num_audio_tokens < 1:
        raise VoxkitError(f"a transcription needs at least one audio token, got {num_audio_tokens!r}")
    check_language(language)
    ids = [tokenizer.bos_id, INST_ID, BEGIN_AUDIO_ID, *[AUDIO_ID] * num_audio_tokens, END_INST_ID]
    if language is not None:
        ids += tokenizer.encode(f"lang:{language}", bos=False)
    ids.append(TRANSCRIBE_ID)
    return ids
