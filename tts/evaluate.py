"""Voice cloning on held-out voices (``voxkit eval tts``): intelligibility and speaker similarity.

Each manifest row is a sentence spoken by a voice. The model hears ANOTHER clip of the same speaker
as its reference (never the row's own audio, nor a clip of the same sentence, so that it cannot copy
the answer) and speaks the row's text in that voice. Two questions, each with its yardstick from
the manifest itself:

- Can the words be understood? WER of an independent recogniser (Whisper tiny.en, the ``peer``
  extra) on the synthesised speech, beside its WER on the manifest's own audio of the same
  sentences (the reference engine's rendering): the gap is what the model costs. Texts are scored
  with ``voxkit eval asr``'s normaliser and WER.
- Does it sound like the reference? Cosine of speaker embeddings (Resemblyzer, the ``tts-eval``
  extra; :mod:`voxkit.tts.speaker_embedding`) of the reference clip and the output, between two
  yardsticks taken with the same reference clips: the CEILING, the cosine of the reference and the
  row's own audio (two different clips of one speaker), and the FLOOR, the mean cosine of the
  reference and the other rows' audio by different speakers. ``position = (similarity - floor) /
  (ceiling - floor)`` says where the output lies: 0 as alike as two different speakers, 1 as alike
  as two clips of one speaker; above 0.5 it is closer to the ceiling than to the floor.

The goals (issue 7/11): WER <= 15 % and position > 0.5. Results are per engine (the rows'
``engine`` field) and overall. The core, :func:`evaluate_tts`, takes the synthesiser, recogniser and
speaker encoder as plain callables and protocols, so it runs without any model.
"""

from __future__ import annotations

import itertools
import math
import os
import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.errors import AudioError, VoxkitError
from voxkit.tts.speaker_embedding import EMBED_RATE, Embedder

if TYPE_CHECKING:
    from voxkit.asr.peer import Peer
    from voxkit.tts.api import Speaker

WER_GOAL = 15.0
"""Intelligibility goal: WER (%) of the independent recogniser on the synthesised speech."""

POSITION_GOAL = 0.5
"""Similarity goal: closer to the ceiling than to the floor."""

NARROW_GAP = 0.05
"""A ceiling less than this above the floor: the encoder barely tells this manifest's speakers apart."""

REFERENCE_S = (3.0, 30.0)
"""Reference lengths chosen first (what the TTS API accepts without a warning); then any of at least 1 s."""

MIN_REFERENCE_S = 1.0

Synthesize = Callable[[str, np.ndarray, int, str | None, str | None], tuple[np.ndarray, int]]
"""``(text, reference audio [N] float32, its rate, language or None, reference transcript or None) -> (audio [M], rate)``."""


@dataclass
class RowScores:
    """One model (or "manifest": the row's own audio) on one row. None = not measured."""

    audio: str
    model: str
    speaker: str
    engine: str
    reference: str
    text: str
    seconds: float | None = None
    hypothesis: str | None = None
    errors: int | None = None
    words: int | None = None
    similarity: float | None = None  # cosine with the reference clip (for "manifest": the ceiling)


@dataclass
class TTSSummary:
    """One table row: a model on one engine's rows (or "all")."""

    model: str
    engine: str
    rows: int
    wer: float | None  # percent, pooled over the rows
    reference_wer: float | None  # the same recogniser on the manifest's own audio of these rows
    similarity: float | None  # mean cosine of reference and output
    floor: float | None  # mean cosine of the same references and other speakers' clips
    ceiling: float | None  # mean cosine of the same references and the rows' own audio
    position: float | None  # (similarity - floor) / (ceiling - floor)
    similarity_missing: int = 0  # outputs without voiced audio to embed

    @property
    def meets_wer(self) -> bool | None:
        return None if self.wer is None else self.wer <= WER_GOAL

    @property
    def meets_similarity(self) -> bool | None:
        """None where there is no position, or where floor and ceiling are too close for one to mean much."""
        if self.position is None or self.ceiling is None or self.floor is None or self.ceiling - self.floor < NARROW_GAP:
            return None
        return self.position > POSITION_GOAL


@dataclass
class TTSEvaluation:
    """The table's rows, every row's scores ("manifest" first), and notes for under the table."""

    summaries: list[TTSSummary]
    rows: list[RowScores]
    recogniser: str | None
    embedder: str | None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"recogniser": self.recogniser, "embedder": self.embedder,
                "goals": {"wer_percent_at_most": WER_GOAL, "position_above": POSITION_GOAL}, "notes": self.notes,
                "summaries": [asdict(s) for s in self.summaries], "rows": [asdict(r) for r in self.rows]}


# ----------------------------------------------------------------------------- references


def choose_references(rows: Sequence[dict[str, Any]], seed: int = 0) -> tuple[list[tuple[int, int]], list[str]]:
    """(row index, reference index) for every row that can be evaluated, and notes on the rows that cannot.

    A reference is another clip of the same ``speaker`` (a different audio file with a different
    text), drawn with ``random.Random(seed)`` among those of 3-30 s, else among those of at least
    1 s. Rows without a speaker, whose speaker has no other clip, whose speaker's other clips all
    say the same sentence, or whose candidates are all shorter than 1 s (or unreadable) are skipped
    and counted: voxkit's TTS refuses a reference under 1 s, so choosing one would end the whole run
    at that row instead of leaving the row out with a note.
    """
    by_speaker: dict[str, list[int]] = defaultdict(list)
    unnamed = 0
    for i, row in enumerate(rows):
        speaker = row.get("speaker")
        if speaker is None or str(speaker) == "":
            unnamed += 1
        else:
            by_speaker[str(speaker)].append(i)
    rng = random.Random(seed)
    durations: dict[int, float] = {}
    pairs: list[tuple[int, int]] = []
    alone: set[str] = set()
    lonely_rows = same_text = too_short = 0
    for i, row in enumerate(rows):
        speaker = row.get("speaker")
        if speaker is None or str(speaker) == "":
            continue
        path, words = os.path.abspath(str(row["audio"])), _words(row["text"])
        files = [j for j in by_speaker[str(speaker)] if os.path.abspath(str(rows[j]["audio"])) != path]
        others = [j for j in files if _words(rows[j]["text"]) != words]
        if not others:
            if files:
                same_text += 1
            else:
                alone.add(str(speaker))
                lonely_rows += 1
            continue
        for j in others:
            if j not in durations:
                durations[j] = _duration(rows[j])
        tiers = ([j for j in others if REFERENCE_S[0] <= durations[j] <= REFERENCE_S[1]],
                 [j for j in others if durations[j] >= MIN_REFERENCE_S])
        tier = next((t for t in tiers if t), None)
        if tier is None:
            too_short += 1
            continue
        pairs.append((i, rng.choice(tier)))
    notes = []
    if unnamed:
        notes.append(f"skipped {unnamed} row(s) without a speaker field (a reference must be another clip of the same speaker)")
    if lonely_rows:
        notes.append(f"skipped {lonely_rows} row(s) of {len(alone)} speaker(s) with no other clip to use as the reference")
    if same_text:
        notes.append(f"skipped {same_text} row(s) whose speaker's other clips all say the same sentence (a reference must say "
                     "another one, so that the model cannot copy it)")
    if too_short:
        notes.append(f"skipped {too_short} row(s) whose speaker's other clips are all shorter than {MIN_REFERENCE_S:g} s or "
                     "unreadable (too little voice to clone from)")
    return pairs, notes


def _words(text: Any) -> str:
    from voxkit.asr.evaluate import normalize_text

    return normalize_text(str(text))


def _duration(row: dict[str, Any]) -> float:
    """Seconds of a row's audio: its ``duration`` field, else the file's header (0 when unreadable: chosen last)."""
    value = row.get("duration")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    from voxkit.audio.io import audio_info

    try:
        rate, frames, _ = audio_info(str(row["audio"]))
    except AudioError:
        return 0.0
    return frames / rate if rate else 0.0


# ----------------------------------------------------------------------------- evaluation


def evaluate_tts(
    rows: Sequence[dict[str, Any]],
    synthesize: Synthesize | Mapping[str, Synthesize],
    recogniser: Peer | None,
    embedder: Embedder | None,
    *,
    limit: int | None = None,
    seed: int = 0,
    reference_text: bool = False,
    progress: bool = True,
    notes: Sequence[str] = (),
) -> TTSEvaluation:
    """Clone every evaluable row's voice from another clip of its speaker and score the result.

    ``rows``: manifest rows (audio, text, speaker; engine and language if known) — all of them are
    the pool references are drawn from; ``limit``: only the first N evaluable rows are synthesised.
    ``synthesize``: one synthesiser, or {model name: synthesiser} to compare several on the same
    rows and references. ``recogniser`` (None: WER columns "-") hears 16 kHz audio; ``embedder``
    (None: similarity columns "-") embeds 16 kHz audio. ``reference_text``: hand the synthesiser
    the reference clip's transcript as well. One pass over the rows (a tqdm bar on stderr).
    """
    from tqdm import tqdm

    models = dict(synthesize) if isinstance(synthesize, Mapping) else {"model": synthesize}
    if not models or "manifest" in models:
        raise VoxkitError(f"model names must be given and not 'manifest': {', '.join(models) or 'none'}")
    pairs, skipped = choose_references(rows, seed)
    if limit is not None:
        pairs = pairs[:limit]
    if not pairs:
        why = "; ".join(skipped) or "the manifest is empty"
        raise VoxkitError(f"no rows to evaluate: {why}")
    named = any(rows[i].get("engine") for i, _ in pairs)
    embeddings: dict[str, np.ndarray | None] = {}  # clip path -> embedding
    scores: list[RowScores] = []
    for i, j in tqdm(pairs, desc="tts eval", unit="row", disable=not progress):
        row, ref = rows[i], rows[j]
        audio, ref_path = str(row["audio"]), str(ref["audio"])
        engine = str(row.get("engine") or ("unknown" if named else "all"))
        base = dict(speaker=str(row["speaker"]), engine=engine, reference=ref_path, text=str(row["text"]))
        own = _load_at(audio, ASR_SAMPLE_RATE)  # [N] at 16 kHz
        reference, ref_rate = _load_native(ref_path)  # [R] at its own rate
        manifest = RowScores(audio, "manifest", seconds=len(own) / ASR_SAMPLE_RATE, **base)
        if embedder is not None:
            if ref_path not in embeddings:
                embeddings[ref_path] = embedder.embed(_resampled(reference, ref_rate, EMBED_RATE))
            if audio not in embeddings:
                embeddings[audio] = embedder.embed(own)
            manifest.similarity = _cosine(embeddings[ref_path], embeddings[audio])
        _transcribe(recogniser, own, manifest)
        scores.append(manifest)
        for name, synth in models.items():
            try:
                out, rate = synth(base["text"], reference.copy(), ref_rate, row.get("language"),
                                  str(ref["text"]) if reference_text else None)
            except VoxkitError as err:
                raise VoxkitError(f"{name} on {audio} (reference {ref_path}): {err}") from None
            out, rate = _checked(name, audio, out, rate)
            speech = _resampled(out, rate, ASR_SAMPLE_RATE)  # [M] at 16 kHz
            result = RowScores(audio, name, seconds=len(out) / rate, **base)
            if embedder is not None:
                result.similarity = _cosine(embeddings[ref_path], embedder.embed(_resampled(out, rate, EMBED_RATE)))
            _transcribe(recogniser, speech, result)
            scores.append(result)
    floors = _floors([s for s in scores if s.model == "manifest"], embeddings) if embedder is not None else {}
    summaries = summarise(scores, list(models), floors)
    notes = [*notes, *skipped, *_caveats(rows, pairs, summaries, recogniser), *_digit_note(scores, list(models))]
    return TTSEvaluation(summaries, scores, recogniser.name if recogniser is not None else None,
                         embedder.name if embedder is not None else None, notes)


def _load_at(path: str, rate: int) -> np.ndarray:
    """A manifest clip as float32 mono [N] at ``rate``."""
    from voxkit.audio.io import load_audio

    return load_audio(path, rate).numpy()


def _load_native(path: str) -> tuple[np.ndarray, int]:
    """A reference clip at its own rate (the synthesiser resamples it to what it needs)."""
    from voxkit.audio.io import audio_rate

    rate = audio_rate(path) if os.path.isfile(path) else ASR_SAMPLE_RATE  # a missing file: load_audio says so
    return _load_at(path, rate), rate


def _resampled(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target or audio.size == 0:
        return audio
    import torch

    from voxkit.audio.io import resample

    return resample(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), rate, target).numpy()  # [N']


def _checked(name: str, audio: str, out: Any, rate: Any) -> tuple[np.ndarray, int]:
    """A synthesiser's output as float32 [M] at an int rate; empty output is kept (it is scored, as silence)."""
    from voxkit.audio.io import array_to_mono

    if not isinstance(rate, (int, float, np.number)) or isinstance(rate, bool) or rate <= 0 or int(rate) != rate:
        raise VoxkitError(f"{name} returned an invalid sample rate {rate!r} for {audio}")
    if np.size(out) == 0:
        return np.zeros(0, dtype=np.float32), int(rate)
    try:
        return array_to_mono(out), int(rate)
    except AudioError as err:
        raise AudioError(f"{name} returned unusable audio for {audio}: {err}") from None


def _cosine(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    if a is None or b is None:
        return None
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / norm) if norm > 0 else None


def _transcribe(recogniser: Peer | None, wave: np.ndarray, into: RowScores) -> None:
    """Fill ``into``'s hypothesis and word counts, normalised as ``voxkit eval asr`` does (empty audio: heard nothing)."""
    if recogniser is None:
        return
    import torch

    from voxkit.asr.evaluate import utterance_errors

    into.hypothesis = recogniser.transcribe(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))) if wave.size else ""
    into.errors, into.words = utterance_errors(into.text, into.hypothesis)


def _floors(evaluated: Sequence[RowScores], embeddings: Mapping[str, np.ndarray | None]) -> dict[str, dict[str, float]]:
    """{group: {row audio: mean cosine of its reference and the group's evaluated clips by other speakers}}.

    Groups: "all" and each engine. The other speakers' clips are the evaluated rows' own audio, so
    the floor uses the same references, and clips of the same kind, as the ceiling.
    """
    refs = [embeddings.get(r.reference) for r in evaluated]
    owns = [embeddings.get(r.audio) for r in evaluated]
    out: dict[str, dict[str, float]] = {}
    for group in {"all", *(r.engine for r in evaluated)}:
        members = [k for k, r in enumerate(evaluated) if group == "all" or r.engine == group]
        floors = out.setdefault(group, {})
        for k in members:
            values = [c for m in members
                      if evaluated[m].speaker != evaluated[k].speaker and (c := _cosine(refs[k], owns[m])) is not None]
            if values:
                floors[evaluated[k].audio] = sum(values) / len(values)
    return out


def summarise(scores: Sequence[RowScores], models: Sequence[str], floors: Mapping[str, Mapping[str, float]]) -> list[TTSSummary]:
    """One summary per model and engine, then per model over all rows ("all"; alone when there is one engine)."""
    from voxkit.asr.evaluate import word_error_rate

    engines = sorted({s.engine for s in scores})
    groups = engines + (["all"] if len(engines) > 1 else [])
    manifest = {s.audio: s for s in scores if s.model == "manifest"}
    out = []
    for model in models:
        for group in groups:
            mine = [s for s in scores if s.model == model and (group == "all" or s.engine == group)]
            own = [manifest[s.audio] for s in mine]

            def wer(clips: Sequence[RowScores]) -> float | None:
                heard = [(c.text, c.hypothesis) for c in clips if c.hypothesis is not None]
                return 100 * word_error_rate(*zip(*heard, strict=True)) if heard and len(heard) == len(clips) else None

            sims = [s.similarity for s in mine if s.similarity is not None]
            ceilings = [c.similarity for c in own if c.similarity is not None]
            floor_of = floors.get(group, {})
            group_floors = [floor_of[s.audio] for s in mine if s.audio in floor_of]
            sim, ceiling, floor = _mean(sims), _mean(ceilings), _mean(group_floors)
            position = None
            if None not in (sim, ceiling, floor) and ceiling > floor:  # type: ignore[operator]
                position = (sim - floor) / (ceiling - floor)  # type: ignore[operator]
            missing = len(mine) - len(sims) if ceilings else 0
            out.append(TTSSummary(model, group if len(engines) > 1 else engines[0], len(mine), wer(mine), wer(own),
                                  sim, floor, ceiling, position, missing))
    return out


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _caveats(rows: Sequence[dict[str, Any]], pairs: Sequence[tuple[int, int]], summaries: Sequence[TTSSummary],
             recogniser: Peer | None) -> list[str]:
    notes = []
    languages = sorted({str(rows[i].get("language")) for i, _ in pairs if rows[i].get("language") not in (None, "en")})
    if recogniser is not None and recogniser.name.endswith(".en") and languages:
        notes.append(f"{recogniser.name} is an English recogniser: WER on rows in {', '.join(languages)} says little")
    seen = set()
    for s in summaries:
        if s.similarity_missing:
            notes.append(f"{s.model} ({s.engine}): {s.similarity_missing} of {s.rows} outputs had no voiced audio to embed; "
                         "its similarity is the mean over the rest")
        if s.floor is None and s.ceiling is not None and s.engine not in seen:
            notes.append(f"{s.engine}: one speaker only, so no floor (it needs two different speakers)")
        elif s.floor is not None and s.ceiling is not None and s.ceiling <= s.floor and s.engine not in seen:
            notes.append(f"{s.engine}: ceiling {s.ceiling:.3f} is not above floor {s.floor:.3f}: the encoder finds two clips of "
                         "one speaker no more alike than clips of two, so there is no position")
        elif s.floor is not None and s.ceiling is not None and s.ceiling - s.floor < NARROW_GAP and s.engine not in seen:
            notes.append(f"{s.engine}: ceiling {s.ceiling:.3f} and floor {s.floor:.3f} differ by less than {NARROW_GAP}: the encoder "
                         "barely tells these speakers apart, so the position says little")
        seen.add(s.engine)
    return notes


def _digit_note(scores: Sequence[RowScores], models: Sequence[str]) -> list[str]:
    """WER without the rows whose manifest audio the recogniser transcribed with digits.

    Manifest texts spell numbers out ("in nineteen oh-one") while Whisper writes digits ("in
    1901"); ``voxkit eval asr``'s normaliser, shared here, does not reconcile the two, so those
    rows count formatting as word errors, for the manifest's audio and the model alike.
    """
    from voxkit.asr.evaluate import word_error_rate

    manifest = [s for s in scores if s.model == "manifest" and s.hypothesis is not None]
    digits = {s.audio for s in manifest if any(ch.isdigit() for ch in s.hypothesis or "")}
    if not digits or len(digits) == len(manifest):
        return []

    def wer(model: str) -> float | None:
        kept = [(s.text, s.hypothesis) for s in scores if s.model == model and s.audio not in digits and s.hypothesis is not None]
        return 100 * word_error_rate(*zip(*kept, strict=True)) if kept else None

    rest = ", ".join(f"{m} {_cell(wer(m), 1)} %" for m in models)
    return [f"the recogniser wrote digits for {len(digits)} of {len(manifest)} rows' manifest audio, whose texts spell numbers "
            f"out (scored as word errors); without those rows, WER: {rest}, manifest audio {_cell(wer('manifest'), 1)} %"]


# ----------------------------------------------------------------------------- table


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _verdict(ok: bool | None, unmeasured: str = "not measured") -> str:
    return unmeasured if ok is None else ("met" if ok else "NOT met")


def format_table(result: TTSEvaluation) -> str:
    """Markdown table (one row per model and engine), the goals with each model's verdict, then the notes."""
    lines = ["| model | engine | rows | WER % | WER % of manifest audio | similarity | floor | ceiling | position |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in result.summaries:
        cells = [s.model, s.engine, str(s.rows), _cell(s.wer, 1), _cell(s.reference_wer, 1), _cell(s.similarity, 3),
                 _cell(s.floor, 3), _cell(s.ceiling, 3), _cell(s.position, 2)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "similarity: cosine of speaker embeddings of the reference clip and the output; floor: of the same reference and "
              "other speakers' clips; ceiling: of the same reference and the row's own audio (another clip of its speaker); "
              "position = (similarity - floor) / (ceiling - floor).", ""]
    overall = [s for s in result.summaries if s.engine == "all"] or result.summaries
    for s in overall:
        wer = f"{_cell(s.wer, 1)} %"
        position = _cell(s.position, 2)
        lines.append(f"Goals for {s.model}: WER <= {WER_GOAL:g} %: {wer}, {_verdict(s.meets_wer)}; similarity closer to the ceiling "
                     f"than to the floor (position > {POSITION_GOAL:g}): {position}, "
                     f"{_verdict(s.meets_similarity, 'not judged' if s.position is not None else 'not measured')}")
    if result.notes:
        lines += [""] + result.notes
    return "\n".join(lines)


# ----------------------------------------------------------------------------- voxkit's TTS


def speaker_synthesizer(speaker: Speaker, *, steps: int = 7, cfg: float = 1.2, seed: int = 0) -> Synthesize:
    """:class:`~voxkit.tts.api.Speaker` as a :data:`Synthesize`: the reference is prepared like any
    voice (checked, trimmed to the model's window) and the n-th call samples with seed ``seed + n``,
    so a run is repeatable and its rows do not share noise."""
    calls = itertools.count()

    def synthesize(text: str, reference: np.ndarray, rate: int, language: str | None,
                   reference_text: str | None) -> tuple[np.ndarray, int]:
        voice = speaker.prepare_voice(reference, rate, reference_text=reference_text)
        return speaker.speak(text, voice=voice, language=language, steps=steps, cfg=cfg, seed=seed + next(calls))

    return synthesize
