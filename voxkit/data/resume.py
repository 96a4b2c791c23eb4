"""What a re-run of ``voxkit data synth`` may reuse from a corpus folder, and what it must refuse.

A corpus folder holds one rendering: one list of sample rates (the first one's files in ``audio/``,
the others' in ``audio<k>k/``) and one file format. The rows of ``shards/*.jsonl`` say which
utterances are done; ``render.json`` says how they were rendered.

Why refuse other settings instead of re-rendering: an utterance's file path depends on its id and
format, not on the rate of ``audio/``, so a re-run at another main rate would overwrite files that
rows of the earlier rendering still name (and a later re-run with the first settings would reuse
them as they are, at the wrong rate). A re-run with other settings would also redo every utterance,
which costs as much as rendering into a new folder. Refusing keeps each folder's files, shard rows,
manifests and ``summary.json`` about one rendering, so their metadata cannot disagree with the audio.

Why the newest row of an id decides: every rendering of an id writes the same file, so only the last
row written for it describes the file on disk. An older row with other text (another seed or plan
rendered in between) names a file that now holds other speech.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from voxkit.errors import AudioError, DataError

if TYPE_CHECKING:
    from voxkit.data.synth import UttPlan

SETTINGS_FILE = "render.json"  # beside shards/: the settings every shard row was rendered with


@dataclass(frozen=True)
class RenderSettings:
    """How a corpus folder's audio is rendered: the sample rates (the first is the main
    manifest's) and the file format."""

    sample_rates: tuple[int, ...]
    fmt: str

    def audio_rel(self, language: str, split: str, utt_id: str, rate: int) -> str:
        """The file of one utterance at one rate, relative to the corpus folder."""
        folder = "audio" if rate == self.sample_rates[0] else f"audio{rate // 1000}k"
        return os.path.join(folder, language, split, f"{utt_id}.{self.fmt}")

    def describe(self) -> str:
        return f"{','.join(map(str, self.sample_rates))} Hz as {self.fmt}"

    def flags(self) -> str:
        return f"--sample-rates {','.join(map(str, self.sample_rates))} --format {self.fmt}"


def read_shard(path: str) -> list[dict]:
    """The rows of one shard; a row cut by an interrupted run ends it (what follows is redone)."""
    rows = []
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break
    return rows


def row_complete(out: str, row: dict) -> bool:
    """A shard row counts as done when every audio file it names exists (rejected rows name none)."""
    return all(os.path.isfile(os.path.join(out, p)) for p in row["_files"])


def shard_names(out: str) -> list[str]:
    """The shard files of ``out`` in the order they were written (new runs take higher numbers)."""
    folder = os.path.join(out, "shards")
    return sorted(f for f in os.listdir(folder) if f.endswith(".jsonl")) if os.path.isdir(folder) else []


def latest_rows(out: str) -> dict[str, dict]:
    """The newest shard row of every utterance id: the one that describes its file on disk now."""
    rows: dict[str, dict] = {}
    for name in shard_names(out):
        for row in read_shard(os.path.join(out, "shards", name)):
            rows[row["id"]] = row
    return rows


def matches_plan(row: dict, plan: UttPlan) -> bool:
    """Whether ``row`` rendered what ``plan`` asks for: same text, speaker and voice.

    The voice (pitch, rate, volume, ...) matters as much as the text: another seed can give an id
    the same sentence and speaker with another loudness. Rows written before rejected rows recorded
    their voice are compared on text and speaker.
    """
    if (row.get("text"), row.get("speaker")) != (plan.text, plan.speaker):
        return False
    return "voice" not in row or row["voice"] == asdict(plan.voice)


def _settings_path(out: str) -> str:
    return os.path.join(out, SETTINGS_FILE)


def record_settings(out: str, settings: RenderSettings) -> None:
    """Write ``render.json``: from now on every finished row of ``out`` is rendered so. Atomically,
    so that a Ctrl-C leaves the old file or the new one, never half of one."""
    from voxkit.fileio import atomic_write

    os.makedirs(out, exist_ok=True)
    text = json.dumps({"sample_rates": list(settings.sample_rates), "format": settings.fmt}) + "\n"
    atomic_write(_settings_path(out), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _recorded_settings(out: str) -> RenderSettings | None:
    try:
        with open(_settings_path(out), encoding="utf-8") as f:
            d = json.load(f)
        return RenderSettings(tuple(int(r) for r in d["sample_rates"]), str(d["format"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise DataError(f"{_settings_path(out)}: unreadable ({err}); delete it to have it inferred from the audio files") from None


def _file_rates(out: str, row: dict) -> tuple[int, ...] | None:
    """The sample rates of a row's files from their headers, or None where one cannot be read."""
    from voxkit.audio.io import audio_rate

    try:
        return tuple(audio_rate(os.path.join(out, p)) for p in row["_files"])
    except AudioError:
        return None


def _inferred_settings(out: str, rendered: list[dict]) -> RenderSettings:
    """The settings of a folder rendered before ``render.json`` existed: those of its first row
    whose files can be read (rates from the headers, format from the extension)."""
    for row in rendered:
        rates = _file_rates(out, row)
        if rates:
            return RenderSettings(rates, os.path.splitext(row["_files"][0])[1].lstrip("."))
    raise DataError(f"{out}: none of its audio files can be read; render into another folder")


def reusable_rows(out: str, settings: RenderSettings) -> dict[str, dict]:
    """The newest row of each id that a build with ``settings`` may keep (the caller matches them to
    its plan); raises :class:`DataError` when ``out`` holds audio rendered with other settings, and
    records ``settings`` (:func:`record_settings`) in a folder that holds no audio yet.

    Rejected rows are kept whatever the settings (alignment runs on the engine's own samples, before
    any resampling). A folder without ``render.json`` (rendered by an older voxkit) has its settings
    inferred, and every row's file headers are checked once, so that files an older re-run wrote at
    another rate are rendered again instead of being listed at the wrong one.
    """
    latest = latest_rows(out)
    done = {i: r for i, r in latest.items() if row_complete(out, r)}
    rendered = [r for r in done.values() if not r.get("rejected")]
    if not rendered:  # a new folder, or one whose earlier run stopped before its first file
        record_settings(out, settings)
        return done
    recorded = _recorded_settings(out)
    legacy = recorded is None
    if recorded is None:
        recorded = _inferred_settings(out, rendered)
    if recorded != settings:
        raise DataError(f"{out} was rendered at {recorded.describe()}: render into another folder, "
                        f"or pass {recorded.flags()} to resume it")
    keep = {}
    for i, row in done.items():
        if not row.get("rejected"):
            expected = [settings.audio_rel(row.get("language", ""), row.get("split", ""), i, sr) for sr in settings.sample_rates]
            if row["_files"] != expected or (legacy and _file_rates(out, row) != settings.sample_rates):
                continue
        keep[i] = row
    return keep
