"""English speech from the Festival synthesiser, with word timings from its utterance structure.

Why a third engine: Festival's diphone voices (kal, ked) and its HTS statistical voice (slt) are
made differently from espeak-ng's formant voices and Flite's clustergen voices, so a model trained
on all of them hears more kinds of synthetic speech, and one of them can be held out.

Word timings: Festival keeps every word of an utterance in its Word relation; a Scheme script
prints each word with the start of its first segment and the end of its last (``word_end``). Words
belong to the written tokens they were read from; an utterance is rejected when Festival read a
token as words that do not spell it (digits, abbreviations), as the Flite renderer does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np

from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.data.flite import printed_groups
from voxkit.data.text import token_spans
from voxkit.errors import DataError

# Voice name -> (Debian package, Scheme voice function, licence of the voice and its data).
_FESTIVAL_LICENCE = "Festival/CSTR free licence (use, modify, redistribute, commercial included; keep notices)"
VOICES: dict[str, tuple[str, str, str]] = {
    "kal": ("festvox-kallpc16k", "voice_kal_diphone", _FESTIVAL_LICENCE + "; voice (c) 1998 Alan W Black and Kevin Lenzo"),
    "ked": ("festvox-kdlpc16k", "voice_ked_diphone", _FESTIVAL_LICENCE + "; voice (c) 1997 CSTR, University of Edinburgh"),
    "slt_hts": ("festvox-us-slt-hts", "voice_cmu_us_slt_arctic_hts",
                "CMU ARCTIC/EST licence (free, commercial included; keep notices) + BSD-3-Clause (HTS files)"),
}
FIXED_RATE: frozenset[str] = frozenset({"slt_hts"})  # HTS voices take their durations from their own model


@dataclass(frozen=True)
class FestivalVoice:
    """A Festival voice with a duration stretch (>1 speaks slower)."""

    name: str
    stretch: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in VOICES:
            raise DataError(f"unknown Festival voice {self.name!r}; use one of {', '.join(VOICES)}")
        if self.name in FIXED_RATE and self.stretch != 1.0:
            raise DataError(f"Festival voice {self.name} ignores Duration_Stretch; use stretch 1.0")

    @property
    def speaker(self) -> str:
        """Manifest speaker id, e.g. ``festival:kal:s1.10``."""
        return f"festival:{self.name}:s{self.stretch:.2f}"

    @property
    def licence(self) -> str:
        return VOICES[self.name][2]


def festival_binary() -> str:
    """Path of the ``festival`` program; DataError with the install hint when it is missing."""
    path = shutil.which("festival")
    if path is None:
        raise DataError("festival is not installed (bash scripts/setup.sh installs it: scripts/apt-packages.txt)")
    return path


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _script(text: str, voice: FestivalVoice, wav_path: str) -> str:
    """Scheme that synthesises ``text``, saves 16 kHz audio and prints ``W name start end`` per word."""
    return f"""
({VOICES[voice.name][1]})
(Parameter.set 'Duration_Stretch {voice.stretch})
(set! utt (utt.synth (Utterance Text {_scheme_string(text)})))
(utt.wave.resample utt {ASR_SAMPLE_RATE})
(utt.save.wave utt {_scheme_string(wav_path)} 'riff)
(mapcar (lambda (w) (format t "W %s %f %f\\n" (item.name w)
  (item.feat w "R:SylStructure.daughter1.daughter1.segment_start") (item.feat w "word_end")))
  (utt.relation.items utt 'Word))
"""


def parse_words(out: str) -> list[tuple[str, float, float]]:
    """The script's output -> [(word, start s, end s)] in spoken order."""
    words = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "W":
            words.append((parts[1], float(parts[2]), float(parts[3])))
    return words


def render_festival(text: str, voice: FestivalVoice, tail_s: float = 0.25) -> tuple[np.ndarray, list[dict]] | None:
    """Synthesise ``text``; (float32 [T] at 16 kHz, words with start/end) or None when untimeable."""
    import soundfile as sf

    spans = token_spans(text)
    if not spans:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = os.path.join(tmp, "u.wav")
        script = os.path.join(tmp, "u.scm")
        with open(script, "w", encoding="utf-8") as f:
            f.write(_script(text, voice, wav_path))
        # Festival works on bytes and may split a multi-byte character: decode leniently, the word check rejects it.
        done = subprocess.run([festival_binary(), "--batch", script], capture_output=True, timeout=120,
                              encoding="utf-8", errors="replace")
        if done.returncode != 0 or not os.path.exists(wav_path):
            raise DataError(f"festival failed with voice {voice.name} (is {VOICES[voice.name][0]} installed?): "
                            f"{(done.stderr or done.stdout).strip()[:200]}")
        wav, rate = sf.read(wav_path, dtype="float32")  # [T]
    if rate != ASR_SAMPLE_RATE:
        raise DataError(f"festival wrote {rate} Hz audio, expected {ASR_SAMPLE_RATE}")
    printed = parse_words(done.stdout)
    groups = printed_groups([w for _, _, w in spans], [w for w, _, _ in printed])
    if groups is None:
        return None  # Festival read the text as other words (digits, abbreviations)
    words, i = [], 0
    for (_, _, word), n in zip(spans, groups, strict=True):
        start, end = printed[i][1], printed[i + n - 1][2]
        words.append({"word": word, "start": round(start, 3), "end": round(end, 3)})
        i += n
    keep = min(wav.size, int((words[-1]["end"] + tail_s) * rate))
    return wav[:keep], words
