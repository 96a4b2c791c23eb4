"""JSONL manifests (NeMo / moshi-finetune convention) and their validator.

One JSON object per line::

    {"audio": "audio/en/train/en-train-000001.flac", "text": "Hello there.", "language": "en",
     "speaker": "en:m3:p45:g40:r165", "duration": 1.234, "sample_rate": 16000,
     "words": [{"word": "Hello", "start": 0.0, "end": 0.41}, {"word": "there", "start": 0.45, ...}]}

``audio`` may be absolute or relative to the manifest's folder (relative keeps a corpus movable).
``words`` is optional for user data; when present its words, space-joined, must equal
``" ".join(spoken_words(text))`` (edge punctuation stripped) and its times must be monotonic and
inside the audio. The validator reports every bad row with a reason instead of stopping at the first.
"""

from __future__ import annotations

import codecs
import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from voxkit.errors import DataError
from voxkit.fileio import atomic_write

REQUIRED = ("audio", "text", "duration")
# How far a recorded duration (and the last word's end) may be from the audio's. Durations are stored
# rounded to 1 ms, and lossy codecs add or drop up to a frame at the edges (an MP3 frame is 1152
# samples: 72 ms at 16 kHz), so a header's or a decoder's length differs from the encoder's input by
# less than this; a file cut short, or a duration taken from another file, differs by more.
DURATION_TOLERANCE_S = 0.1


def resolve_audio(row: dict, manifest_dir: str) -> str:
    path = str(row["audio"])
    return path if os.path.isabs(path) else os.path.join(manifest_dir, path)


SNIFF_BYTES = 4096  # a manifest's first bytes, read to tell a text file from audio or other binary data


def _binary_reason(path: str, head: bytes) -> str | None:
    """Why a file that starts with ``head`` is no manifest (audio, binary data), or None for text.

    Audio formats are named so that the message can say what to give instead (a user passing
    ``clip.flac`` where the manifest goes is the usual case). Other files are binary when they hold
    a NUL byte or are not UTF-8 at all; text that is merely not JSON, or has a few non-UTF-8 lines,
    is left to the row-by-row report.
    """
    if b"\x00" not in head and head.lstrip()[:1] in (b"{", b""):
        return None  # starts like JSONL
    from voxkit.audio.stream import HEAD_BYTES, audio_container

    kind = audio_container(head[:HEAD_BYTES])
    if kind is not None:
        return (f"{path} is {kind.name} audio, not a JSONL manifest: give the manifest that lists it "
                "(voxkit data manifest DIR writes one for a folder of wav+txt pairs)")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)  # the cut may split a character
        binary = b"\x00" in head
    except UnicodeDecodeError:
        binary = True
    return f"{path} is binary data, not a JSONL manifest (UTF-8 text, one JSON object per line)" if binary else None


def iter_manifest(path: str | os.PathLike) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line number, row or None, JSON error or None) for every non-empty line.

    A missing file, a folder, or a binary file (audio given in place of its manifest) raises
    :class:`DataError`; a single line that is not UTF-8 is reported like a line of bad JSON.
    """
    name = os.fspath(path)
    if os.path.isdir(path):
        raise DataError(f"{name} is a folder, not a manifest (voxkit data manifest {name} writes one for wav+txt pairs)")
    if not os.path.isfile(path):
        raise DataError(f"manifest not found: {name}")
    with open(path, "rb") as f:
        reason = _binary_reason(name, f.read(SNIFF_BYTES))
        if reason:
            raise DataError(reason)
        f.seek(0)
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield n, None, "not UTF-8 text"
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                yield n, None, f"invalid JSON: {err.msg}"
                continue
            if not isinstance(row, dict):
                yield n, None, "row is not a JSON object"
                continue
            yield n, row, None


def field_problem(row: dict, required: tuple[str, ...] = REQUIRED, *, words: bool = False, any_text: bool = False) -> str | None:
    """Why ``row`` cannot be read as a manifest row (a missing field, a field of the wrong type), or None.

    Only the shape is checked (no audio is opened), so that every reader can afford it on every row:
    a duration written as text or a ``words`` string would otherwise stop a training run or a data
    command with a Python traceback, possibly hours in, when the loader first meets the row.
    ``words``: also check a ``words`` field when present (readers that use word timings).
    ``any_text``: leave ``text`` to the caller (the evaluations count rows without a usable
    reference and say how many, which one line per row would not).
    """
    missing = [k for k in required if k not in row]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    if "audio" in required and not (isinstance(row["audio"], str) and row["audio"].strip()):
        return f"audio must be the path of a file, got {json.dumps(row['audio'])}"
    if "text" in required and not any_text and not isinstance(row["text"], str):
        return f"text must be a string, got {json.dumps(row['text'])}"
    if "duration" in required and not (_finite_number(row["duration"]) and float(row["duration"]) > 0):
        return f"bad duration {row['duration']!r} (must be a finite positive number of seconds)"
    if words and row.get("words") is not None:
        timed = row["words"]
        if not isinstance(timed, list) or not all(
                isinstance(w, dict) and isinstance(w.get("word"), str) and _finite_number(w.get("start"))
                and _finite_number(w.get("end")) for w in timed):
            return "words must be a list of {\"word\": text, \"start\": seconds, \"end\": seconds}"
    return None


def read_manifest(
    path: str | os.PathLike, *, resolve: bool = True, required: tuple[str, ...] = REQUIRED, words: bool = False,
    any_text: bool = False,
) -> list[dict]:
    """All rows; ``audio`` made absolute when ``resolve``. Raises DataError on a malformed line.

    ``required``: the fields every row must have, checked with their types by :func:`field_problem`
    (training needs durations to batch; scoring a user's own manifest needs only audio and text).
    ``words``: also check the word timings of the rows that have them; ``any_text``: see
    :func:`field_problem`.
    """
    base = os.path.dirname(os.path.abspath(path))
    rows = []
    for n, row, err in iter_manifest(path):
        if err or row is None:
            raise DataError(f"{os.fspath(path)}:{n}: {err}")
        problem = field_problem(row, required, words=words, any_text=any_text)
        if problem:
            hint = f" (voxkit data check {os.fspath(path)} lists every bad row)" if set(REQUIRED) <= set(required) else ""
            raise DataError(f"{os.fspath(path)}:{n}: {problem}{hint}")
        if resolve:
            row = {**row, "audio": resolve_audio(row, base)}
        rows.append(row)
    return rows


def write_manifest(path: str | os.PathLike, rows: Iterable[dict], *, relative_to: str | None = None) -> int:
    """Write rows atomically (:func:`voxkit.fileio.atomic_write`); audio paths made relative to ``relative_to`` if given."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    n = 0

    def write(tmp: Path) -> None:
        nonlocal n
        with open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                if relative_to is not None and os.path.isabs(str(row["audio"])):
                    row = {**row, "audio": os.path.relpath(row["audio"], relative_to)}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1

    atomic_write(path, write)
    return n


@dataclass
class CheckReport:
    """Outcome of :func:`check_manifest`: counts plus (line, reason) for each bad row."""

    path: str
    rows: int = 0
    good: int = 0
    hours: float = 0.0
    problems: list[tuple[int, str]] | None = None

    def __post_init__(self) -> None:
        if self.problems is None:
            self.problems = []


def has_words(text: object) -> bool:
    """Whether ``text`` is a string with a letter or a digit: a transcript of "..." or "" has no
    word to score or to say."""
    return isinstance(text, str) and any(ch.isalnum() for ch in text)


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _finite_number(x: object) -> bool:
    return _number(x) and math.isfinite(float(x))  # type: ignore[arg-type]


def check_row(row: dict, manifest_dir: str, *, decode: bool = False, tolerance: float = DURATION_TOLERANCE_S) -> list[str]:
    """Reasons why ``row`` is unusable (empty list = fine). Never raises for bad data.

    A recorded ``sample_rate`` must be the file's (its header's; decoding does not change it): a
    manifest that claims another rate describes other audio than the file holds. ``decode``: the
    recorded ``duration`` is compared with the decoded samples, not the header (a truncated file's
    header promises audio it does not hold).
    """
    from voxkit.audio.io import audio_info, load_audio
    from voxkit.errors import AudioError

    reasons = []
    for key in REQUIRED:
        if key not in row:
            reasons.append(f"missing field {key!r}")
    if reasons:
        return reasons
    text = row["text"]
    if not has_words(text):
        reasons.append("empty text")
    else:  # both are invisible or look like one odd letter, yet a model would learn them as text
        if "\ufffd" in text:
            reasons.append("text holds U+FFFD replacement characters (a transcript decoded with the wrong encoding)")
        if "\ufeff" in text:
            reasons.append("text holds a byte-order mark (U+FEFF; re-read the transcript as utf-8-sig)")
    dur = row["duration"]
    if not _finite_number(dur) or float(dur) <= 0:
        reasons.append(f"bad duration {dur!r} (must be a finite positive number)")
    if "sample_rate" in row and (not _finite_number(row["sample_rate"]) or row["sample_rate"] <= 0):
        reasons.append(f"bad sample_rate {row['sample_rate']!r}")
    if not (isinstance(row["audio"], str) and row["audio"].strip()):  # it would resolve to a file called "5" or "None"
        return [*reasons, f"audio must be the path of a file, got {json.dumps(row['audio'])}"]
    path = resolve_audio(row, manifest_dir)
    true_dur = None
    decoded = ""
    if not os.path.isfile(path):
        reasons.append(f"audio file missing: {path}")
    else:
        try:
            sr, frames, _ = audio_info(path)
            true_dur = frames / sr if sr else 0.0
            if frames == 0:
                reasons.append(f"audio is empty: {path}")
            elif decode:  # what a reader gets, which a cut file's header overstates
                true_dur, decoded = load_audio(path, sr).shape[-1] / sr, "decoded "
            rate = row.get("sample_rate")
            if sr and _finite_number(rate) and float(rate) > 0 and float(rate) != sr:
                reasons.append(f"sample_rate {rate} does not match the audio ({sr} Hz)")
        except AudioError as err:
            reasons.append(f"unreadable audio: {err}")
    if true_dur and _finite_number(dur) and abs(float(dur) - true_dur) > tolerance:
        reasons.append(f"duration {float(dur):.3f}s does not match the {decoded}audio ({true_dur:.3f}s)")
    words = row.get("words")
    if words is not None and isinstance(text, str):
        reasons += _check_words(words, text, true_dur if true_dur else (float(dur) if _finite_number(dur) else None), tolerance)
    return reasons


def _check_words(words: object, text: str, duration: float | None, tolerance: float) -> list[str]:
    from voxkit.data.text import spoken_words

    if not isinstance(words, list):
        return ["words is not a list"]
    if not all(isinstance(w, dict) and isinstance(w.get("word"), str) and _number(w.get("start")) and _number(w.get("end"))
               for w in words):  # the rule the readers apply (field_problem): times as numbers, not "1.5"
        return ["words entries need a word (text), and start and end (numbers of seconds)"]
    names = [w["word"] for w in words]
    starts = [float(w["start"]) for w in words]
    ends = [float(w["end"]) for w in words]
    reasons = []
    if " ".join(names) != " ".join(spoken_words(text)):
        reasons.append("words do not match the spoken words of text")
    if not all(math.isfinite(x) for x in starts + ends):
        reasons.append("non-finite word time")
        return reasons
    if any(s > e for s, e in zip(starts, ends, strict=True)) or any(e > s2 + 1e-6 for e, s2 in zip(ends[:-1], starts[1:], strict=True)):
        reasons.append("word times are not monotonic")
    if starts and (starts[0] < 0 or (duration is not None and ends[-1] > duration + tolerance)):
        reasons.append("word times fall outside the audio")
    return reasons


def check_manifest(path: str | os.PathLike, *, decode: bool = False) -> CheckReport:
    """Validate every row (fields, numbers, audio present/readable, duration, word timings)."""
    base = os.path.dirname(os.path.abspath(path))
    report = CheckReport(os.fspath(path))
    for n, row, err in iter_manifest(path):
        report.rows += 1
        reasons = [err] if err else check_row(row or {}, base, decode=decode)
        if reasons:
            report.problems.append((n, "; ".join(reasons)))
        else:
            report.good += 1
            report.hours += float(row["duration"]) / 3600  # type: ignore[index]
    return report
