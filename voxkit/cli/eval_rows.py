"""The manifest checks every ``voxkit eval`` command runs before a model loads.

Why one module: the recogniser, codec and TTS evaluations read the same manifests, and a mistake in
one (a missing clip, a row without text) must read the same way whichever command met it.
"""

from __future__ import annotations

import os


def read_rows(manifest: str) -> tuple[list[dict], list[int]]:
    """The rows (audio and text required) with ``audio`` resolved against the manifest's folder, as
    every command reads a manifest (voxkit.data.manifest), and each row's line number.

    Why: an ``audio`` of null or a number would resolve to a file called "None" or "5" and be
    reported as missing; it is named as what it is, with its line.
    """
    import json

    from voxkit.data.manifest import iter_manifest, read_manifest, resolve_audio
    from voxkit.errors import DataError

    rows = read_manifest(manifest, resolve=False, required=("audio", "text"), any_text=True)
    lines = [n for n, _, _ in iter_manifest(manifest)]  # read_manifest keeps one row per non-empty line, in order
    for n, row in zip(lines, rows, strict=True):
        if not isinstance(row["audio"], str) or not row["audio"].strip():
            raise DataError(f"{manifest}:{n}: audio must be the path of a file, got {json.dumps(row['audio'])}")
    base = os.path.dirname(os.path.abspath(manifest))
    return [{**r, "audio": resolve_audio(r, base)} for r in rows], lines


def check_clips(manifest: str, rows: list[dict], lines: list[int], indices: list[int] | range) -> None:
    """Refuse a run whose clips (rows[i] for i in ``indices``) are missing, unreadable or empty, by their headers.

    Why: the evaluations read each clip as they reach it, so a missing file on row 900 ended the
    run after the 899 before it, naming no line. Headers only: checking costs no decoding (except an
    MP3 without a length tag, whose frames are counted: see :func:`voxkit.audio.io.audio_info`).
    """
    from voxkit.audio.io import audio_info
    from voxkit.errors import AudioError, DataError

    bad: list[str] = []
    for i in indices:
        path = rows[i]["audio"]
        try:
            if not os.path.isfile(path):
                raise AudioError(f"audio {'is a folder' if os.path.isdir(path) else 'file not found'}: {path}")
            if audio_info(path)[1] == 0:
                raise AudioError(f"audio is empty: {path}")
        except AudioError as err:
            bad.append(f"{manifest}:{lines[i]}: {err}")
    if bad:
        more = f" ({len(bad)} of the {len(indices)} clips to evaluate are unusable)" if len(bad) > 1 else ""
        raise DataError(bad[0] + more)


def require_references(manifest: str, rows: list[dict], lines: list[int] | None = None,
                         why: str = "no reference transcript to score against") -> None:
    """Refuse rows whose ``text`` has no word (empty, blank, punctuation only) or is not a string,
    naming the count and the first line.

    The corpus WER skips an empty reference (there are no words to divide by), so such rows would
    vanish from the table while their transcripts still count as errors elsewhere: a 0.0 % beside
    a hypotheses file full of words; a TTS model has nothing to say for "..." and the run stopped
    there, possibly hours in. ``voxkit data check`` rejects the same rows as "empty text".
    ``lines``: each row's line, when the caller has them; ``why``: what the text is for here.
    """
    from voxkit.data.manifest import has_words, iter_manifest
    from voxkit.errors import DataError

    bad = [i for i, r in enumerate(rows) if not has_words(r["text"])]
    if bad:
        lines = lines or [n for n, _, _ in iter_manifest(manifest)]  # read_manifest keeps one row per non-empty line, in order
        raise DataError(f"{manifest}:{lines[bad[0]]}: empty text: {len(bad)} of {len(rows)} rows have {why} "
                        "(give every row its text, or leave those rows out)")
