"""Synthetic "speakers": espeak-ng voice variant × pitch × pitch range × speaking rate.

A speaker is the tuple of settings that stays fixed for all of its utterances; its id is a stable
readable string (``en:f3:p62:g40:r160``) so that manifests, splits and results can name it. Loudness
(espeak volume) varies per utterance and is not part of the identity — a real speaker is not a new
person when they speak louder.

Held-out voices: the variant set is partitioned into train / dev / test by a hash of the variant
name, so dev and test speakers use timbres (variant files) that never occur in train — not merely a
new pitch of a known variant.
"""

from __future__ import annotations

import random
from dataclasses import replace

from voxkit.data.espeak import Voice
from voxkit.data.text import SPLIT_SALT, language_spec, pick_split, stable_fraction

# Variants that sound like a person (no whisper/robot/demonic/announcer effects), by espeak file name.
VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "klatt4", "klatt6", "adam", "Alex", "Andy", "Annie", "antonio",
    "aunty", "belinda", "benjamin", "caleb", "david", "Denis", "edward", "Gene", "grandma",
    "grandpa", "Henrique", "Hugo", "iven", "iven2", "john", "linda", "Marco", "max", "michel",
    "Mike", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "shelby", "steph",
    "travis", "victor", "zac",
)
PITCHES = (25, 35, 45, 55, 65, 75)
RANGES = (20, 40, 60, 80)
RATES = (135, 150, 165, 180, 195, 210)


def variant_split(variant: str, fractions: dict[str, float]) -> str:
    """Held-out assignment of a voice variant: the same in every language and plan (SPLIT_SALT)."""
    return pick_split(stable_fraction(variant, f"voice{SPLIT_SALT}"), fractions)


def speaker_id(voice: Voice, lang: str) -> str:
    return f"{lang}:{voice.variant or 'default'}:p{voice.pitch}:g{voice.range}:r{voice.rate}"


def speaker_pool(lang: str, split: str, count: int, fractions: dict[str, float], seed: int) -> list[Voice]:
    """``count`` distinct speakers for ``lang`` whose variants belong to ``split`` (deterministic)."""
    spec = language_spec(lang)
    variants = [v for v in VARIANTS if variant_split(v, fractions) == split]
    if not variants:  # tiny fractions: fall back to one variant per split, still disjoint
        variants = [VARIANTS[list(fractions).index(split) % len(VARIANTS)]]
    rng = random.Random(f"speakers-{lang}-{split}-{seed}")
    combos = {(v, p, g, r) for v in variants for p in PITCHES for g in RANGES for r in RATES}
    ordered = sorted(combos)
    rng.shuffle(ordered)
    # Round-robin over variants so that a small pool still covers every held-out timbre.
    by_variant: dict[str, list[tuple[str, int, int, int]]] = {}
    for c in ordered:
        by_variant.setdefault(c[0], []).append(c)
    picked: list[tuple[str, int, int, int]] = []
    while len(picked) < count and any(by_variant.values()):
        for v in variants:
            if by_variant.get(v) and len(picked) < count:
                picked.append(by_variant[v].pop())
    return [Voice(spec.espeak, v, pitch=p, range=g, rate=r) for v, p, g, r in picked]


def utterance_voice(speaker: Voice, rng: random.Random) -> Voice:
    """Per-utterance variation of one speaker: loudness only (identity settings stay fixed)."""
    return replace(speaker, volume=rng.randint(60, 140))


# Held out of training (docs/data.md): one whole engine, and some voices of each engine that is trained on.
# Piper is the held-out engine: its neural voice is the closest to a person, and its licence chain
# (fine-tuned from a voice trained on non-commercial data) keeps it out of a redistributed model anyway.
HELD_OUT_ENGINE = "piper"
HELD_OUT_VOICES: dict[str, frozenset[str]] = {"flite": frozenset({"rms"}), "festival": frozenset({"ked"})}


def held_out(engine: str, voice: str) -> bool:
    """Whether utterances of this engine's voice must stay out of training corpora."""
    return engine == HELD_OUT_ENGINE or voice in HELD_OUT_VOICES.get(engine, frozenset())
