"""Turn a user's folder of recordings into manifest rows.

Three layouts are recognised, per folder, so a mixed tree works:

* LibriSpeech: ``<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` with lines ``<utt-id> TEXT``
  next to ``<utt-id>.flac``; the speaker id is the top folder.
* CMU Sphinx: a ``transcription`` (or ``*.transcription``) file with lines ``<s> TEXT </s> (utt-id)``
  next to ``<utt-id>.wav``: the layout of Debian's ``pocketsphinx-testdata`` clips (real read
  speech, used as a dev set); the speaker is the folder's name.
* Pairs: ``name.wav`` (or .flac/.ogg/.mp3) next to ``name.txt`` (or ``name.lab``) holding the
  transcript; the speaker is the parent folder's name (``--speaker-from parent``) or empty.

Files that cannot be used (no transcript, empty transcript, unreadable audio) are returned as
(path, reason) instead of aborting the import.
"""

from __future__ import annotations

import os

from voxkit.errors import DataError

AUDIO_EXTS = (".wav", ".flac", ".ogg", ".mp3")


def _row(path: str, text: str, language: str, speaker: str) -> tuple[dict | None, str | None]:
    from voxkit.audio.io import audio_info
    from voxkit.errors import AudioError

    text = " ".join(text.split())
    if not text:
        return None, "empty transcript"
    try:
        sr, frames, _ = audio_info(path)
    except AudioError as err:
        return None, str(err)
    if frames == 0:
        return None, "empty audio"
    return {"audio": os.path.abspath(path), "text": text, "language": language, "speaker": speaker,
            "duration": round(frames / sr, 3), "sample_rate": sr}, None


def sphinx_transcripts(path: str) -> list[tuple[str, str]]:
    """(utt-id, text) per line of a Sphinx ``transcription`` file; ``<s>``-style markers dropped."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line.endswith(")") or "(" not in line:
                continue
            body, _, utt = line[:-1].rpartition("(")
            words = [w for w in body.split() if not (w.startswith("<") and w.endswith(">"))]
            out.append((utt.strip(), " ".join(words)))
    return out


def _is_sphinx_transcription(name: str) -> bool:
    return name == "transcription" or name.endswith(".transcription")


def import_directory(root: str, *, language: str = "en", speaker_from: str = "auto") -> tuple[list[dict], list[tuple[str, str]]]:
    """Scan ``root``; returns (rows sorted by audio path, skipped (path, reason) list)."""
    if not os.path.isdir(root):
        raise DataError(f"not a directory: {root}")
    rows: list[dict] = []
    skipped: list[tuple[str, str]] = []
    root = os.path.abspath(root)
    for folder, _, files in sorted(os.walk(root)):
        names = set(files)
        used: set[str] = set()
        for trans in sorted(f for f in files if f.endswith(".trans.txt")):
            rel = os.path.relpath(folder, root).split(os.sep)
            speaker = rel[0] if speaker_from != "none" and rel[0] != "." else ""
            with open(os.path.join(folder, trans), encoding="utf-8", errors="replace") as f:
                for line in f:
                    parts = line.strip().split(None, 1)
                    if not parts:
                        continue
                    utt = parts[0]
                    audio = next((utt + e for e in AUDIO_EXTS if utt + e in names), None)
                    if audio is None:
                        skipped.append((os.path.join(folder, utt), "audio file missing for transcript line"))
                        continue
                    used.add(audio)
                    row, why = _row(os.path.join(folder, audio), parts[1] if len(parts) > 1 else "", language, speaker)
                    if row:
                        row["speaker"] = speaker or utt.split("-")[0]
                        rows.append(row)
                    else:
                        skipped.append((os.path.join(folder, audio), why or "unusable"))
        for trans in sorted(f for f in files if _is_sphinx_transcription(f)):
            speaker = os.path.basename(folder) if speaker_from != "none" else ""
            for utt, text in sphinx_transcripts(os.path.join(folder, trans)):
                audio = next((utt + e for e in AUDIO_EXTS if os.path.isfile(os.path.join(folder, utt + e))), None)
                if audio is None:
                    skipped.append((os.path.join(folder, utt), "audio file missing for transcript line"))
                    continue
                used.add(audio)
                row, why = _row(os.path.join(folder, audio), text, language, speaker)
                if row:
                    rows.append(row)
                else:
                    skipped.append((os.path.join(folder, audio), why or "unusable"))
        for name in sorted(names - used):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in AUDIO_EXTS:
                continue
            path = os.path.join(folder, name)
            txt = next((stem + e for e in (".txt", ".lab") if stem + e in names), None)
            if txt is None:
                skipped.append((path, "no transcript (.txt/.lab) next to it"))
                continue
            with open(os.path.join(folder, txt), encoding="utf-8", errors="replace") as f:
                text = f.read()
            speaker = os.path.basename(folder) if speaker_from in ("auto", "parent") and folder != root else ""
            row, why = _row(path, text, language, speaker)
            if row:
                rows.append(row)
            else:
                skipped.append((path, why or "unusable"))
    if not rows and not skipped:
        raise DataError(f"no audio files ({', '.join(AUDIO_EXTS)}) found under {root}")
    rows.sort(key=lambda r: r["audio"])
    return rows, skipped
