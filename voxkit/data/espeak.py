"""A minimal ctypes binding to libespeak-ng that returns audio together with its word events.

Why ctypes rather than the ``espeak-ng`` command: the command line can write a wav but cannot tell
where each word starts. The library's synth callback reports, for every word, its position in the
input text and the audio sample at which the synthesiser started producing it, so word timings are
*taken from the synthesiser* instead of being estimated by an aligner.

libespeak-ng keeps global state and is not thread-safe: use one :class:`Espeak` per process (the
corpus builder runs one worker process per core, each initialising the library itself).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass

import numpy as np

from voxkit.errors import DataError

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_SENTENCE = 2
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "punctuation": 5, "wordgap": 7}


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class WordEvent:
    """One word as espeak saw it: character span in the input text and the sample where it starts."""

    char_start: int  # 0-based index into the Python str passed to synth()
    char_len: int
    sample: int  # index into the returned waveform (at :attr:`Espeak.sample_rate`)


@dataclass(frozen=True)
class Voice:
    """Everything that makes an espeak rendering sound like one particular "speaker"."""

    language: str  # espeak voice name, e.g. "en-us", "pt-br"
    variant: str = ""  # espeak variant file, e.g. "m3", "f2", "klatt4"; "" = the language default
    pitch: int = 50  # 0..100
    range: int = 50  # pitch range 0..100 (monotone .. lively)
    rate: int = 175  # words per minute, 80..450
    volume: int = 100  # 0..200
    wordgap: int = 0  # extra pause between words, units of 10 ms

    @property
    def espeak_name(self) -> str:
        return f"{self.language}+{self.variant}" if self.variant else self.language


def _find_library() -> str:
    for name in (os.environ.get("VOXKIT_ESPEAK_LIB"), ctypes.util.find_library("espeak-ng"), "libespeak-ng.so.1"):
        if not name:
            continue
        try:
            ctypes.CDLL(name)
            return name
        except OSError:
            continue
    raise DataError(
        "libespeak-ng is not installed; install it with `apt-get install espeak-ng libespeak-ng1` "
        "(scripts/setup.sh does this from scripts/apt-packages.txt)"
    )


class Espeak:
    """Synchronous espeak-ng synthesiser for the current process.

    Audio arrives through the callback in chunks; events carry ``sample`` counted from the start of
    the current synth call (verified empirically — see tests/test_data_espeak.py), so one call per
    utterance gives word starts directly as indices into the concatenated waveform.
    """

    _instance_pid: int | None = None

    def __init__(self, data_path: str | None = None) -> None:
        self._lib = ctypes.CDLL(_find_library())
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        path = data_path.encode() if data_path else None
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 200, path, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise DataError("libespeak-ng failed to initialise (espeak-ng-data missing?)")
        self.sample_rate: int = int(rate)
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int]] = []
        self._cb = _CALLBACK(self._on_audio)  # keep a reference: ctypes must not collect it
        lib.espeak_SetSynthCallback(self._cb)
        self._voice: Voice | None = None

    def _on_audio(self, wav, numsamples: int, events) -> int:  # noqa: ANN001 (ctypes pointers)
        if numsamples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        i = 0
        while True:
            ev = events[i]
            if ev.type == _EVENT_LIST_TERMINATED:
                break
            if ev.type == _EVENT_WORD:
                self._events.append((ev.text_position, ev.length, ev.audio_position, ev.sample))
            i += 1
        return 0

    def set_voice(self, voice: Voice) -> None:
        """Select the voice; a no-op when it is already selected (SetVoiceByName reloads files)."""
        if voice == self._voice:
            return
        new_voice = self._voice is None or (voice.language, voice.variant) != (self._voice.language, self._voice.variant)
        if new_voice and self._lib.espeak_SetVoiceByName(voice.espeak_name.encode()) != 0:
            raise DataError(f"espeak-ng has no voice {voice.espeak_name!r}")
        for key in ("rate", "volume", "pitch", "range", "wordgap"):
            self._lib.espeak_SetParameter(_PARAM[key], int(getattr(voice, key)), 0)
        self._lib.espeak_SetParameter(_PARAM["punctuation"], 0, 0)
        self._voice = voice

    def synth(self, text: str, voice: Voice | None = None) -> tuple[np.ndarray, list[WordEvent]]:
        """Render ``text``; returns int16 samples [T] at :attr:`sample_rate` and the word events.

        espeak's ``text_position`` is a 1-based *character* offset (not a byte offset, even for
        UTF-8 input with multi-byte letters); it is converted to a 0-based index into ``text``.
        """
        if voice is not None:
            self.set_voice(voice)
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data, len(data))
        err = self._lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise DataError(f"espeak_Synth failed with code {err} for {text[:40]!r}")
        wav = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)  # [T]
        events = [WordEvent(pos - 1, length, sample) for pos, length, _ms, sample in self._events]
        return wav, events


_PROCESS_ENGINE: tuple[int, Espeak] | None = None


def adopt_engine_after_fork() -> None:
    """In a child of ``os.fork()``: keep using the parent's initialised engine.

    Why: a forked child that renders and exits starts from the parent's engine state, so each
    forked render is independent of what other children rendered before it, and the child skips
    re-initialising the library. libespeak-ng in synchronous mode runs no threads, so its state
    is safe to fork.
    """
    global _PROCESS_ENGINE
    if _PROCESS_ENGINE is not None:
        _PROCESS_ENGINE = (os.getpid(), _PROCESS_ENGINE[1])


def get_engine() -> Espeak:
    """The process-wide engine, created on first use (and re-created after a fork)."""
    global _PROCESS_ENGINE
    if _PROCESS_ENGINE is None or _PROCESS_ENGINE[0] != os.getpid():
        _PROCESS_ENGINE = (os.getpid(), Espeak())
    return _PROCESS_ENGINE[1]
