"""English speech from a second synthesiser (CMU Flite), with word timings from its segment durations.

Why a second engine: a recogniser trained on espeak-ng alone learns espeak's formant voice, not
speech (the bundled model scores ~100 % WER on Flite's voices, docs/asr.md). Flite's clustergen
and diphone voices (slt, awb, rms, kal16) sound different enough that holding one out measures
whether a model hears words rather than one synthesiser.

Word timings: ``flite -psdur`` prints every segment with its end time. The segments are split into
words by each word's own phones, read from a second call that speaks the words as separate
sentences (each ends in a pause). An utterance whose word phones do not add up to the sentence's
segments (a post-lexical rule changed a count), or whose words Flite normalised differently from
:func:`voxkit.data.text.token_spans` (digits, abbreviations), is rejected, as the espeak aligner
rejects what it cannot time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np

from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.data.text import token_spans
from voxkit.errors import DataError

VOICES: tuple[str, ...] = ("slt", "awb", "rms", "kal16")  # the 16 kHz voices Debian's flite ships
# Every voice Debian's flite ships is under CMU Flite's own free licence (debian/copyright of libflite1).
LICENCE = "CMU Flite licence (BSD-style: use, modify, redistribute, commercial included; keep notices)"


@dataclass(frozen=True)
class FliteVoice:
    """A Flite voice with its pitch target (Hz, None = the voice's own) and duration stretch."""

    name: str
    f0_mean: float | None = None
    stretch: float = 1.0

    @property
    def speaker(self) -> str:
        """Manifest speaker id, e.g. ``flite:slt:f180:s1.10``."""
        f0 = "f-" if self.f0_mean is None else f"f{self.f0_mean:.0f}"
        return f"flite:{self.name}:{f0}:s{self.stretch:.2f}"

    @property
    def licence(self) -> str:
        return LICENCE

    def options(self) -> list[str]:
        opts = ["-voice", self.name, "--setf", f"duration_stretch={self.stretch}"]
        if self.f0_mean is not None:
            opts += ["--setf", f"int_f0_target_mean={self.f0_mean}"]
        return opts


def flite_binary() -> str:
    """Path of the ``flite`` program; DataError with the install hint when it is missing."""
    path = shutil.which("flite")
    if path is None:
        raise DataError("flite is not installed (bash scripts/setup.sh installs it: scripts/apt-packages.txt)")
    return path


def _run(args: list[str]) -> str:
    # Flite works on bytes and may split a multi-byte character: decode leniently, the word check rejects it.
    done = subprocess.run([flite_binary(), *args], capture_output=True, timeout=120, encoding="utf-8", errors="replace")
    if done.returncode != 0:
        raise DataError(f"flite failed: {done.stderr.strip()[:200]}")
    return done.stdout


def _normal(word: str) -> str:
    """How Flite prints a word: lower case, apostrophes and hyphens dropped."""
    return re.sub(r"[^a-z]", "", word.lower())


def printed_groups(written: list[str], printed: list[str]) -> list[int] | None:
    """How many printed words spell each written word, or None when they do not spell the text.

    Synthesisers print "they'll" as "they" "'ll" and "fifty-one" as "fifty" "one"; digits and
    abbreviations come out as other words, which do not match. Festival's renderer uses this too.
    """
    counts, i = [], 0
    for word in written:
        target, got, start = _normal(word), "", i
        while i < len(printed) and len(got) < len(target):
            got += _normal(printed[i])
            i += 1
        if got != target:
            return None
        counts.append(i - start)
    return counts if i == len(printed) else None


def _matches(written: list[str], printed: list[str]) -> bool:
    """Whether Flite's printed words spell the written ones, a written word taking one or more."""
    return printed_groups(written, printed) is not None


def word_phones(words: list[str], voice: FliteVoice) -> list[list[str]] | None:
    """Each word's phones as Flite says it alone (one call for all); None if a word has none."""
    out = _run([*voice.options(), "-ps", "-o", "none", "-t", ". ".join(words) + "."])
    groups = [g.split() for g in out.split("pau")]
    groups = [g for g in groups if g]
    return groups if len(groups) == len(words) else None


def parse_segments(psdur: str) -> list[tuple[str, float]]:
    """``flite -psdur`` output -> [(phone, end time in s)]."""
    segs = []
    for item in psdur.split():
        phone, _, end = item.rpartition(":")
        segs.append((phone, float(end)))
    return segs


def split_words(segments: list[tuple[str, float]], phones: list[list[str]]) -> list[tuple[float, float]] | None:
    """(start, end) per word: consecutive non-pause segments, as many as the word's phones.

    None when the counts disagree (a post-lexical rule added or removed a phone).
    """
    starts = [0.0] + [end for _, end in segments[:-1]]
    spoken = [(start, end) for (phone, end), start in zip(segments, starts, strict=True) if phone != "pau"]
    if sum(len(p) for p in phones) != len(spoken):
        return None
    times, i = [], 0
    for p in phones:
        times.append((spoken[i][0], spoken[i + len(p) - 1][1]))
        i += len(p)
    return times


def render_flite(text: str, voice: FliteVoice, tail_s: float = 0.25) -> tuple[np.ndarray, list[dict]] | None:
    """Synthesise ``text``; (float32 [T] at 16 kHz, words with start/end) or None when untimeable."""
    import soundfile as sf

    spans = token_spans(text)
    if not spans:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = os.path.join(tmp, "u.wav")
        printed = _run([*voice.options(), "-pr", "Word", "-o", "none", "-t", text]).split()
        if not _matches([w for _, _, w in spans], printed):
            return None  # Flite read the text as other words (digits, abbreviations)
        segments = parse_segments(_run([*voice.options(), "-psdur", "-o", wav_path, "-t", text]))
        wav, rate = sf.read(wav_path, dtype="float32")  # [T]
    if rate != ASR_SAMPLE_RATE:
        raise DataError(f"flite voice {voice.name} speaks at {rate} Hz; use one of {', '.join(VOICES)}")
    phones = word_phones([w for _, _, w in spans], voice)
    times = split_words(segments, phones) if phones is not None else None
    if times is None:
        return None
    words = [{"word": w, "start": round(s, 3), "end": round(e, 3)} for (_, _, w), (s, e) in zip(spans, times, strict=True)]
    keep = min(wav.size, int((words[-1]["end"] + tail_s) * rate))
    return wav[:keep], words
