"""Word timings of an espeak rendering, from libespeak-ng's word events.

Why they are exact: each word's START is the audio sample libespeak-ng reports in its word event —
where the synthesiser began producing that word (pauses before a word belong to the previous gap,
verified empirically). A word's END is the last non-silent sample before the next word's start (or
before the end of the audio): the segment [start_i, start_{i+1}) is scanned in 5 ms frames and
trailing frames below -40 dB of the utterance's loudest frame are cut. So pauses at commas and
sentence ends are gaps between words, not part of them. The one estimate: a word espeak merged
into its neighbour's event (English "do not") starts at an interpolated sample
(:func:`_fill_merged`; median error 33 ms, docs/data.md).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from voxkit.data.text import token_spans

_FRAME_S = 0.005
_SILENCE_DB = -40.0


def align_words(text: str, wav: np.ndarray, events: list, sample_rate: int) -> list[dict] | None:
    """Word timings in seconds for ``text`` from espeak word events; None if they do not cover it.

    ``wav`` int16 [T] as rendered, ``events`` :class:`voxkit.data.espeak.WordEvent` list. Each
    event is attached to the spoken word whose character span contains its text position; the first
    event of a word gives its start. Words that espeak merged into the previous word's event
    (English "do not", "of a", "such as") are placed by :func:`_fill_merged`; anything else without
    an event, or a non-monotonic event order, rejects the utterance (the caller drops it).
    """
    spans = token_spans(text)
    if not spans or wav.size == 0:
        return None
    starts: list[int | None] = [None] * len(spans)
    extra: dict[int, list[int]] = defaultdict(list)  # word -> samples of its further events
    tok = 0
    for ev in events:
        pos = ev.char_start
        while tok < len(spans) and pos >= spans[tok][1]:
            tok += 1
        if tok == len(spans):
            break
        if spans[tok][0] <= pos < spans[tok][1]:
            if starts[tok] is None:
                starts[tok] = ev.sample
            else:
                extra[tok].append(ev.sample)
    if not _fill_merged(starts, spans, extra):
        return None
    sample_starts = np.asarray(starts, dtype=np.int64)  # [W]
    if (np.diff(sample_starts) < 0).any() or sample_starts[-1] >= wav.size:
        return None
    frame = max(1, int(round(_FRAME_S * sample_rate)))
    n_frames = wav.size // frame
    x = wav[: n_frames * frame].astype(np.float32).reshape(n_frames, frame)  # [F, frame]
    rms = np.sqrt((x * x).mean(axis=1))  # [F]
    loud = rms > max(float(rms.max()) * 10 ** (_SILENCE_DB / 20), 1.0)  # [F] bool
    bounds = np.append(sample_starts, n_frames * frame)  # [W + 1]
    words = []
    for i, (_, _, word) in enumerate(spans):
        f0, f1 = int(bounds[i]) // frame, max(int(bounds[i]) // frame + 1, int(bounds[i + 1]) // frame)
        voiced = np.flatnonzero(loud[f0:f1])
        if voiced.size == 0:
            return None
        start = max(int(bounds[i]), (f0 + int(voiced[0])) * frame)
        end = min(int(bounds[i + 1]), (f0 + int(voiced[-1]) + 1) * frame)
        words.append({"word": word, "start": round(start / sample_rate, 3), "end": round(end / sample_rate, 3)})
    return words


_MAX_MERGED = 2  # at most this many words in a row may lack their own event


def _fill_merged(starts: list[int | None], spans: list[tuple[int, int, str]], extra: dict[int, list[int]]) -> bool:
    """Give words without an event a start inside the merged phrase they belong to; in place.

    espeak speaks an unstressed function word together with its neighbour and reports one event
    for both ("do not" -> one event at "do"), sometimes followed by a second event whose text
    position still points into the first word ("such as" -> events at "such" and "uch"). A run of
    at most ``_MAX_MERGED`` event-less words after a word that has one takes, in order, that
    word's further events (espeak's own timing), then a start interpolated by character position
    between the phrase's start and the next word's. Returns False (reject the utterance) for a
    first or last word without an event or a longer run.
    """
    i = 0
    while i < len(starts):
        if starts[i] is not None:
            i += 1
            continue
        j = i
        while j < len(starts) and starts[j] is None:
            j += 1
        if i == 0 or j == len(starts) or j - i > _MAX_MERGED:
            return False
        lo, hi = starts[i - 1], starts[j]
        assert lo is not None and hi is not None
        inner = sorted(x for x in extra.get(i - 1, []) if lo < x < hi)
        c0, c1 = spans[i - 1][0], spans[j][0]
        for k in range(i, j):
            if inner:
                starts[k] = inner.pop(0)
            else:
                prev = starts[k - 1]
                assert prev is not None
                starts[k] = max(prev + 1, lo + (hi - lo) * (spans[k][0] - c0) // (c1 - c0))
        i = j
    return True
