"""Turn a user's folder of recordings into manifest rows.

Three layouts are recognised, per folder, so a mixed tree works:

* LibriSpeech: ``<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` with lines ``<utt-id> TEXT``
  next to ``<utt-id>.flac``; the speaker id is the top folder.
* CMU Sphinx: a ``transcription`` (or ``*.transcription``) file with lines ``<s> TEXT </s> (utt-id)``
  next to ``<utt-id>.wav``: the layout of Debian's ``pocketsphinx-testdata`` clips (real read
  speech, used as a dev set); the speaker is the folder's name.
* Pairs: ``name.wav`` (or .flac/.ogg/.mp3/.opus/.oga/.aiff/.aif) next to ``name.txt`` (or
  ``name.lab``) holding the transcript; the speaker is the parent folder's name (``--speaker-from
  parent``) or empty.

Transcripts are read as UTF-8, a leading byte-order mark dropped (Windows editors write one), and
extensions match in any case (``F.FLAC`` next to ``F.TXT``). Files that cannot be used (no
transcript, empty transcript, a transcript that is not UTF-8, unreadable audio) are returned as
(path, reason) instead of aborting the import; so are recordings in a format voxkit cannot decode
(``.m4a``, ``.aac``, ``.webm``, ...), with the ffmpeg command that converts them, since a user who
sees fewer rows than recordings and no reason cannot tell why. A transcript in another encoding is skipped, not
guessed at: decoding it anyway imports ``caf\\ufffd`` silently, and wrong text is worse than none.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable

from voxkit.errors import DataError

AUDIO_EXTS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".oga", ".aiff", ".aif")  # what libsndfile decodes
# recordings libsndfile cannot decode (phone voice memos, browser and video captures): skipped, with a hint
UNDECODABLE_EXTS = (".m4a", ".m4b", ".aac", ".mp4", ".3gp", ".amr", ".webm", ".mka", ".wma", ".ac3", ".wv", ".ape")
TEXT_EXTS = (".txt", ".lab")
LIBRISPEECH_SUFFIX = ".trans.txt"
MISSING_AUDIO = "audio file missing for transcript line"


def _not_utf8(data: bytes, err: UnicodeDecodeError) -> str:
    """The reason a transcript is refused, with the first bad byte so that the user can find it."""
    return f"not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); save it as UTF-8"


def read_transcript(path: str) -> tuple[str | None, str | None]:
    """(text, None), or (None, reason) when the file is not UTF-8; a leading BOM is dropped."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as err:
        return None, _not_utf8(data, err)


def _transcript_lines(path: str) -> list[tuple[int, str, str | None]]:
    """(line number, text, None), or (line number, damaged text, reason) for a line that is not UTF-8.

    Lines are decoded one by one so that one bad line (a name typed in another encoding) costs that
    clip only; the damaged text is still returned because its utterance id names the clip to skip.
    """
    out = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if n == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            try:
                out.append((n, raw.decode("utf-8"), None))
            except UnicodeDecodeError as err:
                reason = f"line {n} of {os.path.basename(path)} is " + _not_utf8(raw, err)
                out.append((n, raw.decode("utf-8", errors="replace"), reason))
    return out


def _row(path: str, text: str, language: str, speaker: str) -> tuple[dict | None, str | None]:
    from voxkit.audio.io import audio_info
    from voxkit.errors import AudioError

    text = " ".join(text.replace("\ufeff", "").split())  # a BOM left inside by joining files is invisible noise
    if not text:
        return None, "empty transcript"
    if "\ufffd" in text:  # `voxkit data check` refuses such rows, so they are not written in the first place
        return None, "transcript holds U+FFFD replacement characters (text damaged by an earlier wrong decoding)"
    try:
        sr, frames, _ = audio_info(path)
    except AudioError as err:
        return None, str(err)
    if frames == 0:
        return None, "empty audio"
    return {"audio": os.path.abspath(path), "text": text, "language": language, "speaker": speaker,
            "duration": round(frames / sr, 3), "sample_rate": sr}, None


def _undecodable(path: str, has_transcript: bool) -> str:
    """Why an audio file of :data:`UNDECODABLE_EXTS` is skipped, with the ffmpeg command that writes a
    WAV beside it (which the next import picks up), quoted so that it runs as pasted."""
    from voxkit.audio.io import to_wav_command

    kind = os.path.splitext(path)[1][1:].upper()
    reason = f"{kind} audio, a format voxkit cannot decode; convert it first: {to_wav_command(path, beside=True)}"
    return reason if has_transcript else f"{reason} (and write its transcript to a .txt next to it)"


def _sphinx_line(line: str) -> tuple[str, str] | None:
    """(utt-id, text) of a line ``<s> TEXT </s> (utt-id)``, or None for a line without an id."""
    line = line.strip()
    if not line.endswith(")") or "(" not in line:
        return None
    body, _, utt = line[:-1].rpartition("(")
    words = [w for w in body.split() if not (w.startswith("<") and w.endswith(">"))]
    return utt.strip(), " ".join(words)


def _librispeech_line(line: str) -> tuple[str, str] | None:
    """(utt-id, text) of a line ``<utt-id> TEXT``, or None for a blank line."""
    parts = line.strip().split(None, 1)
    return (parts[0], parts[1] if len(parts) > 1 else "") if parts else None


def sphinx_transcripts(path: str) -> list[tuple[str, str]]:
    """(utt-id, text) per line of a Sphinx ``transcription`` file; ``<s>``-style markers dropped.

    A line that is not UTF-8 raises :class:`DataError` naming it rather than returning damaged text.
    """
    out = []
    for _, line, bad in _transcript_lines(path):
        if bad:
            raise DataError(f"{path}: {bad}")
        parsed = _sphinx_line(line)
        if parsed:
            out.append(parsed)
    return out


def _is_sphinx_transcription(name: str) -> bool:
    return name == "transcription" or name.endswith(".transcription")


def _by_stem(files: list[str], exts: tuple[str, ...]) -> dict[str, str]:
    """(stem + lower-case extension) -> file name, for one folder's files with an extension in ``exts``.

    Built once per folder: a scan per clip would be quadratic in a folder of thousands of pairs.
    Where ``F.txt`` and ``F.TXT`` both exist, the lower-case spelling wins.
    """
    index: dict[str, str] = {}
    def upper_last(name: str) -> tuple[bool, str]:
        ext = os.path.splitext(name)[1]
        return ext != ext.lower(), name

    for name in sorted(files, key=upper_last):
        stem, ext = os.path.splitext(name)
        if ext.lower() in exts:
            index.setdefault(stem + ext.lower(), name)
    return index


def _pick(index: dict[str, str], stem: str, exts: tuple[str, ...]) -> str | None:
    return next((index[stem + e] for e in exts if stem + e in index), None)


def import_directory(root: str, *, language: str = "en", speaker_from: str = "auto") -> tuple[list[dict], list[tuple[str, str]]]:
    """Scan ``root``; returns (rows sorted by audio path, skipped (path, reason) list)."""
    if not os.path.isdir(root):
        raise DataError(f"not a directory: {root}")
    rows: list[dict] = []
    skipped: list[tuple[str, str]] = []
    root = os.path.abspath(root)
    for folder, _, files in sorted(os.walk(root)):
        audio_of = _by_stem(files, AUDIO_EXTS)
        used: set[str] = set()
        listings: list[tuple[str, Callable[[str], tuple[str, str] | None], str]] = []
        rel = os.path.relpath(folder, root).split(os.sep)
        top = rel[0] if speaker_from != "none" and rel[0] != "." else ""
        listings += [(t, _librispeech_line, top) for t in sorted(files) if t.lower().endswith(LIBRISPEECH_SUFFIX)]
        here = os.path.basename(folder) if speaker_from != "none" else ""
        listings += [(t, _sphinx_line, here) for t in sorted(files) if _is_sphinx_transcription(t)]
        for trans, parse, speaker in listings:
            for n, line, bad in _transcript_lines(os.path.join(folder, trans)):
                parsed = parse(line)
                if parsed is None:
                    continue
                utt, text = parsed
                audio = _pick(audio_of, utt, AUDIO_EXTS) or next(  # a Sphinx id may name a sub-folder
                    (utt + e for e in AUDIO_EXTS if os.path.dirname(utt) and os.path.isfile(os.path.join(folder, utt + e))), None)
                if audio is None:
                    skipped.append((f"{os.path.join(folder, trans)}:{n}", bad) if bad else (os.path.join(folder, utt), MISSING_AUDIO))
                    continue
                used.add(audio)
                path = os.path.join(folder, audio)
                row, why = (None, bad) if bad else _row(path, text, language, speaker)
                if row is None:
                    skipped.append((path, why or "unusable"))
                    continue
                if parse is _librispeech_line:
                    row["speaker"] = speaker or ("" if speaker_from == "none" else utt.split("-")[0])
                rows.append(row)
        text_of = _by_stem(files, TEXT_EXTS)
        for name in sorted(f for f in files if os.path.splitext(f)[1].lower() in AUDIO_EXTS and f not in used):
            path = os.path.join(folder, name)
            txt = _pick(text_of, os.path.splitext(name)[0], TEXT_EXTS)
            if txt is None:
                skipped.append((path, "no transcript (.txt/.lab) next to it"))
                continue
            text, why = read_transcript(os.path.join(folder, txt))
            speaker = os.path.basename(folder) if speaker_from in ("auto", "parent") and folder != root else ""
            row, why = (None, f"transcript {txt} is {why}") if text is None else _row(path, text, language, speaker)
            if row:
                rows.append(row)
            else:
                skipped.append((path, why or "unusable"))
        for name in sorted(f for f in files if os.path.splitext(f)[1].lower() in UNDECODABLE_EXTS):
            stem = os.path.splitext(name)[0]
            if _pick(audio_of, stem, AUDIO_EXTS) is None:  # else it was converted already: the copy is imported
                path = os.path.join(folder, name)
                skipped.append((path, _undecodable(path, _pick(text_of, stem, TEXT_EXTS) is not None)))
    if not rows and not skipped:
        raise DataError(f"no audio files ({', '.join(AUDIO_EXTS)}) found under {root}")
    rows.sort(key=lambda r: r["audio"])
    return rows, skipped
