"""Objective quality of speech codecs on a manifest, side by side (``voxkit eval codec``).

Every codec hears the same clips and every score compares its output with the same original at one
common rate (16 kHz), so the columns differ only by the codec. Four signal measures and one
listener-free intelligibility check:

- mel distance and multi-resolution STFT distance: what a codec's training losses look at (lower
  is better; 0 for a perfect copy), defined exactly in :func:`mel_distance` and :func:`mrstft_distance`;
- STOI (short-time objective intelligibility, 0..1) and wideband PESQ (ITU-T P.862.2, MOS-LQO
  about 1.0..4.64): the standard estimates of intelligibility and perceived quality, computed by
  the ``pystoi`` and ``pesq`` packages (the ``codec-eval`` extra);
- WER of an independent recogniser (Whisper tiny.en, the ``peer`` extra) on the resynthesised
  speech, next to its WER on the original: a codec that keeps the words keeps that gap small. The
  recogniser is not voxkit's, whose encoder the codec is distilled toward (DESIGN.md §5), so the
  figure cannot flatter the codec. Texts are scored with ``voxkit eval asr``'s normaliser and WER.

Outputs are compared after trimming both signals to the shorter one: a codec returns audio
aligned with its input (a codec with a known delay removes it, as :mod:`voxkit.codec.peers` does).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.errors import AudioError, VoxkitError

if TYPE_CHECKING:
    import torch

    from voxkit.asr.peer import Peer

EVAL_RATE = ASR_SAMPLE_RATE
"""Every comparison happens at 16 kHz: wideband PESQ is defined there, and the recogniser hears it."""

MEL_N_FFT, MEL_HOP, MEL_BINS = 1024, 256, 80
"""The mel distance's STFT (64 ms Hann window, 16 ms hop at 16 kHz) and its number of mel bands."""

STFT_SIZES: tuple[int, ...] = (512, 1024, 2048)
"""FFT sizes of the multi-resolution STFT distance (hop a quarter of each, Hann window of each size)."""

LOG_FLOOR = 1e-5
"""Magnitudes below this are clamped before the log: silence must not dominate a log distance."""

CODEC_EVAL_HINT = "pip install 'voxkit[codec-eval]'"


class RoundTrip(Protocol):
    """What the evaluation needs of a codec: a column label, a nominal bitrate and one round trip.

    ``roundtrip`` takes mono float32 samples [N] at ``sample_rate`` and returns mono float32 [M]
    with the rate it chose, time-aligned with the input (M close to N at that rate).
    """

    name: str
    bitrate_bps: float

    def roundtrip(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]: ...


class Labelled:
    """Any codec under a chosen column label (voxkit's own codec carries a rate, not a name)."""

    def __init__(self, codec: Any, name: str) -> None:
        self.codec, self.name = codec, name
        self.bitrate_bps = float(codec.bitrate_bps)
        self.semantic_codes: list[Any] = []  # [T] per clip, when the codec exposes its codes

    def roundtrip(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
        if not (hasattr(self.codec, "encode") and hasattr(self.codec, "decode") and hasattr(self.codec, "load")):
            return self.codec.roundtrip(audio, sample_rate)
        wave = self.codec.load(audio, sample_rate)  # [N] at the codec's rate
        codes = self.codec.encode(wave, self.codec.sample_rate)  # [T, 37]
        self.semantic_codes.append(codes[:, 0])
        return self.codec.decode(codes, num_samples=wave.shape[0]), self.codec.sample_rate

    def usage_note(self) -> str | None:
        """How much of the semantic codebook the evaluated clips used (collapse shows as a low perplexity)."""
        if not self.semantic_codes:
            return None
        import torch

        from voxkit.codec.quantizer import codebook_usage

        size = self.codec.model.args.semantic_codebook_size
        usage = codebook_usage(torch.cat(self.semantic_codes), size)
        frames = sum(len(c) for c in self.semantic_codes)
        return (f"{self.name} semantic codes on these clips: perplexity {usage.perplexity:.0f}, {usage.used} of {size} codes used "
                f"({usage.dead} never), {frames} frames")


@dataclass
class ClipScores:
    """One codec on one clip (``codec`` "original": only the recogniser's figures). None = not measured."""

    audio: str
    codec: str
    seconds_in: float
    seconds_out: float | None = None
    mel_distance: float | None = None
    mrstft_distance: float | None = None
    stoi: float | None = None
    pesq_wb: float | None = None
    hypothesis: str | None = None
    errors: int | None = None
    words: int | None = None
    reference: str | None = None


@dataclass
class CodecSummary:
    """One row of the table: means over the clips that have a value, and corpus WER in percent."""

    codec: str
    bitrate_bps: float | None
    mel_distance: float | None
    mrstft_distance: float | None
    stoi: float | None
    pesq_wb: float | None
    wer: float | None
    clips: int
    stoi_missing: int = 0
    pesq_missing: int = 0
    mrstft_missing: int = 0


@dataclass
class CodecEvaluation:
    """The table's rows ("original" first) and every clip's scores, for ``--json``."""

    summaries: list[CodecSummary]
    clips: list[ClipScores]
    recogniser: str | None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"sample_rate": EVAL_RATE, "recogniser": self.recogniser, "notes": self.notes,
                "codecs": [asdict(s) for s in self.summaries], "clips": [asdict(c) for c in self.clips]}


def _tensor(audio: np.ndarray) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).double()  # [N] float64: sums over long clips


def _magnitude(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """[N] -> [n_fft/2 + 1, frames] STFT magnitude (Hann window of n_fft, zero padding at both ends)."""
    import torch

    window = torch.hann_window(n_fft, dtype=x.dtype)  # [n_fft]
    spec = torch.stft(x, n_fft, hop, n_fft, window, center=True, pad_mode="constant", return_complex=True)  # [F, T]
    return spec.abs()


@lru_cache(maxsize=4)
def _mel_filters(n_fft: int, n_mels: int, sample_rate: int) -> torch.Tensor:
    import torch
    import torchaudio.functional as AF

    return AF.melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate, norm="slaney",
                              mel_scale="slaney").to(torch.float64)  # [F, n_mels]


def mel_distance(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = EVAL_RATE) -> float:
    """Mean absolute difference of log10 mel magnitude spectrograms of two equally long signals [N].

    Exactly: STFT magnitude |X| with a 1024-point Hann window, hop 256, zero-padded centred frames;
    80 Slaney-scale mel bands (Slaney area normalisation) from 0 Hz to Nyquist; ``M = log10(max(mel, 1e-5))``;
    result ``mean over bands and frames of |M_ref - M_deg|``. At 16 kHz that is 64 ms windows every 16 ms.
    """
    filters = _mel_filters(MEL_N_FFT, MEL_BINS, int(sample_rate))  # [F, 80]
    ref, deg = (filters.T @ _magnitude(_tensor(x), MEL_N_FFT, MEL_HOP) for x in (reference, degraded))  # [80, T] each
    return float((ref.clamp_min(LOG_FLOOR).log10() - deg.clamp_min(LOG_FLOOR).log10()).abs().mean())


def mrstft_distance(reference: np.ndarray, degraded: np.ndarray) -> float:
    """Multi-resolution STFT distance of two equally long signals [N], as in codec training losses.

    For each FFT size n in :data:`STFT_SIZES` (512, 1024, 2048; Hann window n, hop n/4), with
    magnitudes R (reference) and D (degraded): spectral convergence ``||R - D||_F / ||R||_F`` plus
    log-magnitude distance ``mean |ln max(R, 1e-5) - ln max(D, 1e-5)|``; the result is the mean of
    (SC + LM) over the sizes. Spectral convergence weighs loud parts, the log term quiet ones.
    """
    ref, deg = _tensor(reference), _tensor(degraded)  # [N], [N]
    terms = []
    for n_fft in STFT_SIZES:
        r, d = _magnitude(ref, n_fft, n_fft // 4), _magnitude(deg, n_fft, n_fft // 4)  # [F, T] each
        convergence = (r - d).norm() / r.norm().clamp_min(1e-12)
        log_distance = (r.clamp_min(LOG_FLOOR).log() - d.clamp_min(LOG_FLOOR).log()).abs().mean()
        terms.append(float(convergence + log_distance))
    return sum(terms) / len(terms)


def stoi_score(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = EVAL_RATE) -> float | None:
    """STOI (pystoi, classic not extended; it resamples to its own 10 kHz), or None on a clip it cannot score.

    pystoi drops silent frames first and, with fewer than 30 left, warns and returns 1e-5; that is
    no score, and is counted as missing rather than averaged in as "unintelligible". A digitally
    silent reference is no score either (pystoi returns 0 for it), nor is a clip shorter than 30
    frames (0.4 s), which pystoi cannot even frame below 26 ms.
    """
    from pystoi import stoi
    from pystoi.stoi import FS, N_FRAME, N

    if not np.any(reference):  # no speech to be intelligible: pystoi would return 0 ("unintelligible")
        return None
    if len(reference) * FS / sample_rate < N_FRAME + (N - 1) * N_FRAME // 2:  # under N frames even before silence is
        return None  # dropped; under one frame pystoi raises instead of warning (numpy AxisError)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(stoi(reference.astype(np.float64), degraded.astype(np.float64), int(sample_rate), extended=False))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        return None
    return value


def pesq_wideband(reference: np.ndarray, degraded: np.ndarray) -> float | None:
    """Wideband PESQ (P.862.2 MOS-LQO) at 16 kHz, or None where pesq finds no speech or too little audio."""
    from pesq import PesqError, pesq

    if not np.any(reference):  # pesq scales both by their joint peak: a silent reference would be 0/0
        return None
    try:
        return float(pesq(EVAL_RATE, reference.astype(np.float32), degraded.astype(np.float32), "wb"))
    except PesqError:  # NoUtterancesError, BufferTooShortError: a clip it cannot score
        return None


def compare(reference: np.ndarray, degraded: np.ndarray) -> dict[str, float | None]:
    """All four signal measures of ``degraded`` against ``reference`` (both [N] at 16 kHz, trimmed to the shorter);
    None for a measure that cannot score the pair (see each one)."""
    n = min(len(reference), len(degraded))
    ref, deg = reference[:n], degraded[:n]  # [n], [n]
    # spectral convergence divides by the reference's energy: against digital silence it is not
    # defined, and its 1e-12 floor would give ~1e10, a figure that swamps every other clip's mean
    mrstft = mrstft_distance(ref, deg) if np.any(ref) else None
    return {"mel_distance": mel_distance(ref, deg), "mrstft_distance": mrstft,
            "stoi": stoi_score(ref, deg), "pesq_wb": pesq_wideband(ref, deg)}


def require_metrics() -> None:
    """Fail before any audio is read when the quality packages are missing."""
    try:
        import pesq  # noqa: F401
        import pystoi  # noqa: F401
    except ImportError as err:
        raise VoxkitError(f"voxkit eval codec needs the codec-eval extra ({err.name} is missing): {CODEC_EVAL_HINT}") from None


def load_peers(names: Sequence[str], model_given: bool = False) -> list[RoundTrip]:
    """The peer codecs called ``names``, their tools checked; one that is missing names what to install
    and, as not every user wants every peer, how to run without it (``model_given``: --model was given)."""
    from voxkit.codec.peers import load_peer_codec

    loaded: list[RoundTrip] = []
    missing: list[tuple[str, VoxkitError]] = []
    for name in names:
        try:
            loaded.append(load_peer_codec(name))
        except VoxkitError as err:
            missing.append((name, err))
    if missing:
        others = ",".join(c.name for c in loaded)
        without = f"--peers {others}" if others else "--no-peers" + ("" if model_given else " with --model DIR")
        raise VoxkitError(f"{missing[0][1]}; or score without {', '.join(n for n, _ in missing)}: {without}")
    return loaded


DEFAULT_RECOGNISER = "whisper-tiny.en"


def load_recogniser(choice: str | None, threads: int = 0) -> tuple[Peer | None, str | None]:
    """(recogniser or None, note for the table or None).

    ``choice`` None means "Whisper tiny.en if installed": without the ``peer`` extra the WER
    columns read "-" and the note says why, since quality scores alone are still worth having.
    A recogniser named explicitly must load (a :class:`VoxkitError` otherwise: the user asked
    for WER); "none" turns WER off without a note.
    """
    from voxkit.asr.peer import load_peer

    if choice == "none":
        return None, None
    try:
        return load_peer(choice or DEFAULT_RECOGNISER, threads=threads), None
    except VoxkitError as err:
        reason = str(err).replace("--peer ", "--asr ", 1)  # the peer's message names eval asr's flag
        if choice is not None:
            raise VoxkitError(reason) from None
        return None, f"WER columns are '-': {reason} (--asr none: no WER, no note)"


def _to_eval_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    import torch

    from voxkit.audio.io import resample

    return resample(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), int(sample_rate), EVAL_RATE).numpy()  # [N']


def _load_original(path: str) -> tuple[np.ndarray, int]:
    """A clip at its own rate (a codec gets the recording as it is and resamples to what it needs)."""
    from voxkit.audio.io import audio_rate, load_audio

    if not isinstance(path, str) or not path:
        raise AudioError(f"manifest row has no usable audio path: {path!r}")
    rate = audio_rate(path) if os.path.isfile(path) else EVAL_RATE  # a missing file: load_audio says so
    return load_audio(path, rate).numpy(), rate  # [N] float32


def _checked_output(codec: RoundTrip, path: str, out: Any, rate: Any) -> tuple[np.ndarray, int]:
    """A codec's return value as float32 [M] at an int rate; what cannot be scored is a clear error."""
    from voxkit.audio.io import array_to_mono

    try:
        audio = array_to_mono(out)  # [M] float32
    except AudioError as err:
        raise AudioError(f"{codec.name} returned unusable audio for {path}: {err}") from None
    if not isinstance(rate, (int, float, np.number)) or rate <= 0 or int(rate) != rate:
        raise VoxkitError(f"{codec.name} returned an invalid sample rate {rate!r} for {path}")
    return audio, int(rate)


def evaluate_codecs(
    rows: Sequence[dict[str, Any]],
    codecs: Sequence[RoundTrip],
    recogniser: Peer | None = None,
    progress: bool = True,
    notes: Sequence[str] = (),
) -> CodecEvaluation:
    """Round-trip every clip of ``rows`` (manifest rows with ``audio`` and ``text``) through every codec and score it.

    One pass over the clips (a tqdm bar on stderr), every codec per clip, so each clip is read once
    and a long run shows progress per clip. ``recogniser``: transcribes the original and every
    codec's output at 16 kHz for the WER column (None: WER columns "-"). ``notes`` are carried
    into the result (printed under the table).
    """
    import torch
    from tqdm import tqdm

    require_metrics()
    if not rows:
        raise VoxkitError("no clips to evaluate")
    names = [c.name for c in codecs]
    if len(set(names)) != len(names) or "original" in names:
        raise VoxkitError(f"codec names must be distinct and not 'original': {', '.join(names)}")
    clips: list[ClipScores] = []
    for row in tqdm(rows, desc="codec eval", unit="clip", disable=not progress):
        audio, rate = _load_original(row["audio"])  # [N] at the clip's rate
        reference = _to_eval_rate(audio, rate)  # [N16]
        seconds = len(audio) / rate
        original = ClipScores(row["audio"], "original", seconds, seconds_out=seconds)
        clips.append(original)
        if recogniser is not None:
            _transcribe(recogniser, torch.from_numpy(reference), str(row["text"]), original)
        for codec in codecs:
            out, out_rate = _checked_output(codec, row["audio"], *codec.roundtrip(audio.copy(), rate))
            degraded = _to_eval_rate(out, out_rate)  # [M16]
            scores = ClipScores(row["audio"], codec.name, seconds, seconds_out=len(out) / out_rate, **compare(reference, degraded))
            if recogniser is not None:
                _transcribe(recogniser, torch.from_numpy(degraded), str(row["text"]), scores)
            clips.append(scores)
    bitrates = {c.name: c.bitrate_bps for c in codecs}
    summaries = [summarise(name, [c for c in clips if c.codec == name], bitrates.get(name)) for name in ["original", *names]]
    notes = [*notes, *_language_notes(rows, recogniser)]
    return CodecEvaluation(summaries, clips, recogniser.name if recogniser is not None else None, notes)


def _language_notes(rows: Sequence[dict[str, Any]], recogniser: Peer | None) -> list[str]:
    """A line under the table when the recogniser is made for other languages than some rows'.

    Why: Whisper tiny.en writes English words for French speech, so the WER columns of such rows
    measure the recogniser, not the codec (``voxkit eval tts`` says the same of its WER column).
    """
    spoken = getattr(recogniser, "languages", None)
    if recogniser is None or spoken is None:
        return []
    others = sorted({str(r["language"]) for r in rows if r.get("language") not in (None, "", *spoken)})
    if not others:
        return []
    return [f"{recogniser.name} is made for {', '.join(spoken)}: its WER on the rows in {', '.join(others)} says little"]


def _transcribe(recogniser: Peer, wave: torch.Tensor, text: str, into: ClipScores) -> None:
    """Fill ``into``'s hypothesis and word counts, normalised as ``voxkit eval asr`` does."""
    from voxkit.asr.evaluate import utterance_errors

    into.reference, into.hypothesis = text, recogniser.transcribe(wave.float())  # wave: [N16] float32 mono at 16 kHz
    into.errors, into.words = utterance_errors(text, into.hypothesis)


def summarise(codec: str, clips: Sequence[ClipScores], bitrate_bps: float | None = None) -> CodecSummary:
    """Means over the clips that have each value; WER (percent) pooled over the corpus by ``voxkit eval asr``'s own
    :func:`~voxkit.asr.evaluate.word_error_rate` (total edits / total reference words), None unless every clip was heard."""
    from voxkit.asr.evaluate import word_error_rate

    def mean(key: str) -> tuple[float | None, int]:
        values = [getattr(c, key) for c in clips if getattr(c, key) is not None]
        return (sum(values) / len(values) if values else None), len(clips) - len(values)

    heard = [(c.reference, c.hypothesis) for c in clips if c.reference is not None and c.hypothesis is not None]
    wer = 100 * word_error_rate(*zip(*heard, strict=True)) if heard and len(heard) == len(clips) else None
    mel, _ = mean("mel_distance")
    mr, mr_missing = mean("mrstft_distance")
    stoi, stoi_missing = mean("stoi")
    pesq, pesq_missing = mean("pesq_wb")
    measured = codec != "original"
    return CodecSummary(codec, bitrate_bps, mel, mr, stoi, pesq, wer, len(clips),
                        stoi_missing if measured else 0, pesq_missing if measured else 0, mr_missing if measured else 0)


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def format_table(result: CodecEvaluation) -> str:
    """Markdown table, one row per codec ("original" first: its WER is the recogniser's own floor),
    then one line per note and per measure that left clips unscored (means are over the scored ones)."""
    lines = ["| codec | kbps | mel dist | MR-STFT dist | STOI | PESQ-wb | WER % |", "|---|---|---|---|---|---|---|"]
    for s in result.summaries:
        kbps = "-" if s.bitrate_bps is None else f"{s.bitrate_bps / 1000:.3g}"
        cells = [s.codec, kbps, _cell(s.mel_distance, 3), _cell(s.mrstft_distance, 3), _cell(s.stoi, 3),
                 _cell(s.pesq_wb, 2), _cell(s.wer, 1)]
        lines.append("| " + " | ".join(cells) + " |")
    extra = list(result.notes)
    unscored: dict[tuple[str, int, int, str], list[str]] = {}  # one line for the codecs that miss the same clips' count
    for s in result.summaries:
        for what, missing, why in (("MR-STFT dist", s.mrstft_missing, "the original is digital silence"),
                                   ("STOI", s.stoi_missing, "too short or no speech found"),
                                   ("PESQ-wb", s.pesq_missing, "too short or no speech found")):
            if missing:
                unscored.setdefault((what, missing, s.clips, why), []).append(s.codec)
    for (what, missing, clips, why), names in unscored.items():
        rest = "the mean is over the rest" if missing < clips else "no mean"
        extra.append(f"{', '.join(names)}: {what} could not score {missing} of {clips} clips ({why}); {rest}")
    return "\n".join(lines + ([""] + extra if extra else []))
