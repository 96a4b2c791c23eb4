"""Long training streams: several utterances of one language joined with silences of varied length.

Why: the streaming recogniser attends over a sliding window (750 encoder frames, 15 s; 512 decoder
steps, 41 s), but single utterances are shorter than that window, so training never crosses its
boundary and never sees a long silence; at inference it then fails after ~15 s of continuous audio.
:class:`ChainedDataset` turns a fraction of each epoch's items into chains several windows long,
with pauses (some of them long) between utterances and silence before the first, so the window
boundary falls at random places and the model learns to emit nothing while nobody speaks.

A chain is one recording: its rows are loaded without augmentation, joined, and augmented once
(one room, one noise, one channel for the whole stream). :class:`Chain` is the recipe's
``[tasks.asr.chain]`` table.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from voxkit.data.dataset import ManifestDataset


def _seconds(name: str, value: tuple[float, ...], *, positive: bool = False) -> tuple[float, float]:
    """A (low, high) pair of seconds from a recipe list: two finite numbers, 0 <= low <= high (0 < low if ``positive``)."""
    pair = tuple(value)
    numbers = len(pair) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)
    lo, hi = (float(pair[0]), float(pair[1])) if numbers else (math.nan, math.nan)
    if not (math.isfinite(lo) and math.isfinite(hi) and (lo > 0 if positive else lo >= 0) and lo <= hi):
        bound = "0 < low" if positive else "0 <= low"
        raise ValueError(f"{name} must be [low, high] in seconds with {bound} <= high, got {list(value)}")
    return lo, hi


@dataclass
class Chain:
    """How often items are chains, how long, and the silences inside them (all times in seconds).

    A chain grows until it reaches a target drawn from ``seconds`` and never past ``seconds[1]``
    (unless its first row alone is longer), so the batch sampler's budget still bounds it.
    """

    p: float = 0.5  # chance that an item is a chain (drawn as each item begins; otherwise one row)
    seconds: tuple[float, float] = (20.0, 60.0)  # target length of a chain, drawn uniformly
    pause: tuple[float, float] = (0.05, 1.5)  # silence between two utterances
    p_long_pause: float = 0.15  # chance that a pause is long instead
    long_pause: tuple[float, float] = (3.0, 20.0)  # a long silence: the model must stay quiet and not drift
    lead: tuple[float, float] = (0.0, 2.0)  # silence before a chain's first utterance

    def __post_init__(self) -> None:
        for name in ("p", "p_long_pause"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
            setattr(self, name, float(value))
        self.seconds = _seconds("seconds", self.seconds, positive=True)
        for name in ("pause", "long_pause", "lead"):
            setattr(self, name, _seconds(name, getattr(self, name)))


@dataclass(frozen=True)
class Planned:
    """One item of an epoch: base rows in playing order and the silence before each, in samples.

    ``gaps[0]`` is the lead (0 for a single row); ``gaps[k]`` the pause between rows k-1 and k.
    """

    rows: tuple[int, ...]
    gaps: tuple[int, ...]


@dataclass
class _Growing:
    """A chain still being filled while the epoch's rows are dealt out."""

    target: float
    rows: list[int] = dataclasses.field(default_factory=list)
    gaps: list[int] = dataclasses.field(default_factory=list)
    speech: list[float] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def add(self, row: int, duration: float, gap: int, sample_rate: int) -> None:
        self.rows.append(row)
        self.gaps.append(gap)
        self.speech.append(duration)
        self.seconds += gap / sample_rate + duration

    def done(self) -> bool:
        return self.seconds >= self.target and (len(self.rows) >= 2 or self.speech[0] >= self.target)

    def planned(self) -> Planned:
        """The finished item; a lone row short of the target is a plain single item (no lead)."""
        if len(self.rows) == 1 and self.speech[0] < self.target:
            return Planned((self.rows[0],), (0,))
        return Planned(tuple(self.rows), tuple(self.gaps))


class ChainedDataset(Dataset):
    """``base``'s rows, a fraction ``chain.p`` of them joined into long same-language chains each epoch.

    Per epoch (:meth:`set_epoch`, deterministic from (base.seed, epoch)) the rows are shuffled and
    dealt out in that order: a row starts a chain with probability ``p``, and the following rows of
    the same language join it, with a drawn pause before each, until the chain reaches its drawn
    target. Every row is used exactly once per epoch. Chains of different languages grow side by
    side; those still short of their target at the end of the epoch are kept as they are.

    Items have the keys of :class:`ManifestDataset` items. ``text`` is the rows' texts joined with
    a space, ``words`` their words shifted by each row's offset, ``speaker`` the distinct speakers
    joined with "+" (one speaker for a single row), ``id`` "<first id>+<more rows>" (a single row
    keeps its id). Every item, single or chained, goes through the same path: rows loaded without
    augmentation, joined, then ``base.augmented`` once with the generator of (seed, epoch, first
    row). A single item is therefore ``base[row]`` (word times clipped to the row's audio, which
    changes nothing for a valid row), and a chain sounds like one recording.

    ``durations`` is planned from the manifest's durations plus the silences; it equals the
    returned length whenever a row's audio has its manifest duration (speed changes aside).
    """

    def __init__(self, base: ManifestDataset, chain: Chain) -> None:
        self.base = base
        self.chain = chain
        self.sample_rate = base.sample_rate
        self._seconds = [float(r["duration"]) for r in base.rows]
        self._languages = [str(r.get("language", "")) for r in base.rows]
        self.epoch = 0
        self.plan: list[Planned] = []
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Re-deal the rows into this epoch's items (and let the base seed its augmentation by it)."""
        self.epoch = epoch
        self.base.set_epoch(epoch)
        self.plan = self._deal(random.Random(f"chain-{self.base.seed}-{epoch}"))

    def __len__(self) -> int:
        return len(self.plan)

    @property
    def durations(self) -> list[float]:
        """Each item's planned length in seconds, silences included (what the batch sampler budgets)."""
        sr = self.sample_rate
        return [sum(self._seconds[r] for r in p.rows) + sum(p.gaps) / sr for p in self.plan]

    def _gap(self, rng: random.Random, span: tuple[float, float]) -> int:
        return round(rng.uniform(*span) * self.sample_rate)

    def _deal(self, rng: random.Random) -> list[Planned]:
        """The epoch's items, from one shuffled pass over the rows (each row lands in exactly one item)."""
        cfg, sr = self.chain, self.sample_rate
        order = list(range(len(self._seconds)))
        rng.shuffle(order)
        items: list[Planned] = []
        growing: dict[str, _Growing] = {}  # the open chain of each language
        for row in order:
            language, seconds = self._languages[row], self._seconds[row]
            open_chain = growing.get(language)
            if open_chain is not None:
                span = cfg.long_pause if rng.random() < cfg.p_long_pause else cfg.pause
                gap = self._gap(rng, span)
                if open_chain.seconds + gap / sr + seconds <= cfg.seconds[1]:
                    open_chain.add(row, seconds, gap, sr)
                    if open_chain.done():
                        items.append(growing.pop(language).planned())
                    continue
                items.append(growing.pop(language).planned())  # full: this row begins afresh
            if rng.random() < cfg.p:
                started = _Growing(target=rng.uniform(*cfg.seconds))
                started.add(row, seconds, self._gap(rng, cfg.lead), sr)
                if started.done():
                    items.append(started.planned())
                else:
                    growing[language] = started
            else:
                items.append(Planned((row,), (0,)))
        items.extend(g.planned() for g in growing.values())  # short of their targets at the epoch's end
        return items

    def __getitem__(self, index: int) -> dict:
        plan = self.plan[index]
        return self.base.augmented(self.join(plan), plan.rows[0])

    def join(self, plan: Planned) -> dict:
        """``plan``'s rows, un-augmented, laid end to end after their silences, as one item.

        Word times move by each row's offset and are clipped to the row's own audio, so they stay
        inside the stream and in order even when a manifest's times overrun a row's end slightly.
        """
        sr = self.sample_rate
        parts = [self.base.load(r) for r in plan.rows]
        lengths = torch.tensor([p["audio"].numel() for p in parts])  # [N]
        ends = torch.cumsum(torch.tensor(plan.gaps) + lengths, 0)  # [N]
        starts = ends - lengths  # [N]
        words: list[dict] = []
        for part, start, end in zip(parts, starts.tolist(), ends.tolist(), strict=True):
            offset, limit = start / sr, (end - start) / sr
            for w in part["words"]:
                begin = min(max(float(w["start"]), 0.0), limit)
                words.append({**w, "start": offset + begin, "end": offset + min(max(float(w["end"]), begin), limit)})
        if len(parts) == 1 and plan.gaps[0] == 0:
            return {**parts[0], "words": words}
        audio = torch.zeros(int(ends[-1]), dtype=parts[0]["audio"].dtype)  # [T]
        for part, start, end in zip(parts, starts.tolist(), ends.tolist(), strict=True):
            audio[start:end] = part["audio"]
        return {
            "audio": audio,
            "text": " ".join(p["text"] for p in parts),
            "language": parts[0]["language"],
            "speaker": "+".join(dict.fromkeys(p["speaker"] for p in parts)),
            "words": words,
            "duration": audio.numel() / sr,
            "id": f"{parts[0]['id']}+{len(parts) - 1}",
        }
