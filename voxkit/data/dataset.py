"""Torch Dataset / sampler / collate over JSONL manifests.

* :class:`ManifestDataset` decodes an item at the requested rate (soundfile + torchaudio resample),
  optionally loudness-normalises and augments it — deterministically from (seed, epoch, index), so
  results do not depend on which DataLoader worker handles an item. :meth:`ManifestDataset.load`
  gives a row without augmentation, for wrappers that join rows first (:mod:`voxkit.data.chain`).
* :class:`DurationBucketSampler` batches utterances of similar length up to a total number of
  seconds (less padding than fixed-size batches), shuffles deterministically by (seed, epoch), and
  splits batches over ``world_size`` ranks like DistributedSampler.
* :func:`collate` pads audio to the longest item and returns lengths.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import torch
from torch.utils.data import Dataset, Sampler

from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.data.augment import Augment, rms_normalize
from voxkit.data.manifest import read_manifest


class ManifestDataset(Dataset):
    """Items: {"audio": float32 [T], "text", "language", "speaker", "words", "duration", "id"}.

    ``allow_eval_only``: accept rows marked ``eval_only`` (a dev set read for validation); a
    training set never passes it, so such a manifest cannot end up in the gradient.
    """

    def __init__(
        self,
        manifests: str | os.PathLike | Sequence[str | os.PathLike],
        sample_rate: int = ASR_SAMPLE_RATE,
        *,
        min_duration: float = 0.0,
        max_duration: float = math.inf,
        normalize_db: float | None = -23.0,
        augment: Augment | None = None,
        seed: int = 0,
        allow_eval_only: bool = False,
    ) -> None:
        paths = [manifests] if isinstance(manifests, (str, os.PathLike)) else list(manifests)
        rows = [r for p in paths for r in _read_rows(p, allow_eval_only)]
        self.read = len(rows)  # before the duration filter: a task reports what it left out
        self.rows = [r for r in rows if min_duration <= float(r["duration"]) <= max_duration]
        self.sample_rate = sample_rate
        self.normalize_db = normalize_db
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def durations(self) -> list[float]:
        return [float(r["duration"]) for r in self.rows]

    def load(self, index: int) -> dict:
        """Row ``index`` decoded at ``sample_rate`` and loudness-normalised, not augmented.

        Separate from :meth:`__getitem__` so that a wrapper (:class:`voxkit.data.chain.ChainedDataset`)
        can join several rows first and augment the joined stream once, as one recording.
        """
        from voxkit.audio.io import load_audio

        row = self.rows[index]
        wav = load_audio(row["audio"], self.sample_rate)  # [T]
        if self.normalize_db is not None:
            wav = rms_normalize(wav, self.normalize_db)
        return {
            "audio": wav,
            "text": row["text"],
            "language": row.get("language", ""),
            "speaker": row.get("speaker", ""),
            "words": [dict(w) for w in row.get("words") or []],
            "duration": wav.numel() / self.sample_rate,
            "id": row.get("id", os.path.basename(row["audio"])),
        }

    def augmented(self, item: dict, index: int) -> dict:
        """``item`` through ``augment`` with the generator of (seed, epoch, ``index``); as is without one.

        The generator depends on nothing but that triple, so an item is the same in every worker
        process. Speed changes scale the word times by 1 / factor; ``duration`` follows the audio.
        """
        if self.augment is None:
            return item
        g = torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) & 0x7FFF_FFFF_FFFF)
        wav, factor = self.augment(item["audio"], self.sample_rate, g)  # [T / factor]
        words = item["words"]
        if factor != 1.0:
            words = [{**w, "start": w["start"] / factor, "end": w["end"] / factor} for w in words]
        return {**item, "audio": wav, "words": words, "duration": wav.numel() / self.sample_rate}

    def __getitem__(self, index: int) -> dict:
        return self.augmented(self.load(index), index)


def _read_rows(path: str | os.PathLike, allow_eval_only: bool) -> list[dict]:
    """A manifest's rows; rows marked ``eval_only`` (real speech kept as a dev set) are refused unless allowed.

    A dev set that leaks into training makes its WER meaningless without any visible sign, so the
    mark is checked where every training manifest is read rather than trusted to the recipe.
    """
    from voxkit.errors import DataError

    rows = read_manifest(path, words=True)  # a malformed row stops here, not in a loader hours later
    marked = sum(1 for r in rows if r.get("eval_only"))
    if marked and not allow_eval_only:
        raise DataError(f"{os.fspath(path)}: {marked} row(s) are marked eval_only (an evaluation set); "
                        "it may be scored (voxkit eval asr) or used as a dev set, never trained on")
    return rows


class DurationBucketSampler(Sampler[list[int]]):
    """Batches of indices whose durations sum to at most ``max_seconds`` (padded length counted).

    Items are sorted by duration inside shuffled pools of ``bucket_size`` batches' worth, so batches
    hold similar lengths but their order is random. Deterministic by (seed, epoch); with
    ``world_size`` > 1 each rank takes every world_size-th batch (the batch list is padded by
    repetition so all ranks get the same count, as DistributedSampler does).
    """

    def __init__(
        self,
        durations: Sequence[float],
        max_seconds: float,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pool_batches: int = 50,
        drop_last: bool = False,
        max_items: int | None = None,
    ) -> None:
        if max_seconds <= 0:
            raise ValueError("max_seconds must be positive")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.durations = [float(d) for d in durations]
        self.max_seconds = max_seconds
        self.shuffle, self.seed, self.rank, self.world_size = shuffle, seed, rank, world_size
        self.pool_batches, self.drop_last, self.max_items = pool_batches, drop_last, max_items
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = random.Random(f"{self.seed}-{self.epoch}")
        order = list(range(len(self.durations)))
        if self.shuffle:
            rng.shuffle(order)
        mean = max(1e-3, sum(self.durations) / max(1, len(self.durations)))
        pool = max(1, int(self.pool_batches * self.max_seconds / mean))
        batches: list[list[int]] = []
        for p in range(0, len(order), pool):
            chunk = sorted(order[p : p + pool], key=lambda i: self.durations[i])
            cur: list[int] = []
            longest = 0.0
            for i in chunk:
                d = self.durations[i]
                too_many = self.max_items is not None and len(cur) >= self.max_items
                if cur and (max(longest, d) * (len(cur) + 1) > self.max_seconds or too_many):
                    batches.append(cur)
                    cur, longest = [], 0.0
                cur.append(i)
                longest = max(longest, d)
            if cur:
                batches.append(cur)
        if self.shuffle:
            rng.shuffle(batches)
        if self.world_size > 1:
            if self.drop_last:
                batches = batches[: len(batches) - len(batches) % self.world_size]
            elif batches:
                need = -len(batches) % self.world_size
                batches = batches + batches[:need]
            batches = batches[self.rank :: self.world_size]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


def collate(items: list[dict]) -> dict:
    """Pad audio to the longest item: {"audio": [B, T], "audio_lengths": [B], lists for the rest}."""
    lengths = torch.tensor([it["audio"].numel() for it in items], dtype=torch.long)  # [B]
    audio = torch.zeros(len(items), int(lengths.max()) if items else 0)  # [B, T]
    for b, it in enumerate(items):
        audio[b, : it["audio"].numel()] = it["audio"]
    out = {"audio": audio, "audio_lengths": lengths}
    for key in ("text", "language", "speaker", "words", "duration", "id"):
        out[key] = [it[key] for it in items]
    return out


class TimedDataset(Protocol):
    """What :func:`make_loader` batches: items by index and each item's length in seconds, known before loading."""

    @property
    def durations(self) -> list[float]: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict: ...


def make_loader(
    dataset: TimedDataset, max_seconds: float, *, seed: int = 0, rank: int = 0, world_size: int = 1,
    num_workers: int = 0, shuffle: bool = True, collate_fn: Callable[[list[dict]], Any] = collate, pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """DataLoader with duration bucketing; call ``loader.batch_sampler.set_epoch(e)`` each epoch.

    ``collate_fn`` runs in the worker processes, so a task can build its whole batch there (a big
    GPU batch costs tens of milliseconds of tokenising and padding that the main process would
    otherwise spend between optimizer steps).
    """
    sampler = DurationBucketSampler(dataset.durations, max_seconds, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size)
    # Not persistent: a task builds one loader per epoch, so keeping its workers alive after the
    # epoch would only leave idle processes behind.
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_fn, num_workers=num_workers,
                                       pin_memory=pin_memory)
