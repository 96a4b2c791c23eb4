"""Word error rate of the recogniser on a manifest, per language and per delay.

Texts are normalised before scoring (case folded, punctuation removed, whitespace collapsed):
the recogniser writes punctuation and case, and WER should measure the words.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from voxkit.asr.options import RecognizerOptions
    from voxkit.asr.peer import Peer
    from voxkit.asr.segments import Segmenting


_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")  # 69,451 -> 69451
_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b")  # 11th -> eleventh
_DIGITS = re.compile(r"\d+(?:\.\d+)?")


def spell_digits(text: str) -> str:
    """Numbers written in digits as English words, so that "69,451" and "sixty-nine thousand four
    hundred and fifty-one" are the same words to the WER.

    Why: the synthetic references spell every number (the corpus is made for a recogniser that
    writes what is said), while a peer such as Whisper writes digits, so the same correct
    transcript counted one error per digit group against the peer. English for every language:
    identical digits on both sides stay identical, so no match is lost elsewhere.
    """
    if not any(ch.isdigit() for ch in text):
        return text
    from num2words import num2words

    text = _THOUSANDS.sub("", text)
    text = _ORDINAL.sub(lambda m: " " + num2words(int(m.group(1)), to="ordinal") + " ", text)
    return _DIGITS.sub(lambda m: " " + num2words(float(m.group(0)) if "." in m.group(0) else int(m.group(0))) + " ", text)


def normalize_text(text: str) -> str:
    """Casefolded words without punctuation or symbols, digits spelled (:func:`spell_digits`)."""
    text = spell_digits(unicodedata.normalize("NFC", text.casefold()))
    kept = [" " if unicodedata.category(ch).startswith(("P", "S")) else ch for ch in text]
    return " ".join("".join(kept).split())


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus-level WER (total edits / total reference words) after normalisation."""
    import jiwer

    refs = [normalize_text(r) for r in references]
    hyps = [normalize_text(h) for h in hypotheses]
    pairs = [(r, h) for r, h in zip(refs, hyps, strict=True) if r]
    if not pairs:
        return 0.0
    out = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
    errors = out.substitutions + out.deletions + out.insertions
    return errors / max(1, sum(len(r.split()) for r, _ in pairs))


def evaluate_manifest(
    model: Any,
    tokenizer: Any,
    rows: Sequence[dict[str, Any]],
    delays: Sequence[RecognizerOptions],
    batch_size: int = 32,
    progress: bool = True,
    hypotheses: dict[int, list[str]] | None = None,
    snr_db: float | None = None,
    waves: Sequence[torch.Tensor] | None = None,
    segmenting: Segmenting | None = None,
    boost: bool = False,
) -> dict[int, dict[str, float]]:
    """WER (percent) for each delay and language, plus "all": {delay in ms: {lang: wer}}.

    ``delays`` arrive validated (:class:`~voxkit.asr.options.RecognizerOptions`, built where the
    user typed them), so a bad one fails before minutes of audio are loaded.

    ``hypotheses``: when given, filled with each delay's transcripts in the order of ``rows``
    (for error analysis: which utterances a longer delay fixes or breaks).
    ``snr_db``: when given, white noise at this signal-to-noise ratio is added to every utterance
    (seeded by its position, so every delay and every run hears the same noise). Clean synthetic
    speech leaves little for look-ahead to resolve; noise measures how a model uses it when the
    sounds alone are ambiguous.
    ``waves``: the rows' audio already loaded by :func:`load_waves` (shared with a peer's run);
    ``snr_db`` is then ignored, the noise being already in them.
    ``segmenting``: cut long audio at pauses as ``voxkit transcribe`` does (asr/segments.py);
    None (the default here) hands the model each utterance whole, which measures the model itself.
    ``boost``: raise quiet input as ``voxkit transcribe`` does (asr/level.py); off by default here
    for the same reason.
    """
    from tqdm import tqdm

    from voxkit.asr.segments import transcribe_segmented
    from voxkit.errors import VoxkitError

    if batch_size < 1:  # range() would stop at a zero step with a message that names no option
        raise VoxkitError(f"batch_size must be at least 1, got {batch_size}")
    if waves is None:
        waves = load_waves(rows, snr_db=snr_db, progress=progress)
    table: dict[int, dict[str, float]] = {}
    for options in delays:
        delay_ms = options.delay_ms
        results = []
        bar = tqdm(total=len(rows), desc=f"delay {delay_ms} ms", disable=not progress)
        for start in range(0, len(rows), batch_size * 4):
            chunk = waves[start : start + batch_size * 4]
            results.extend(transcribe_segmented(model, tokenizer, chunk, options.delay_steps, segmenting, batch_size=batch_size,
                                                boost=boost))
            bar.update(len(chunk))
        bar.close()
        if hypotheses is not None:
            hypotheses[delay_ms] = [t.text for t in results]
        table[delay_ms] = scores_by_language(rows, [t.text for t in results])
    return table


def load_waves(rows: Sequence[dict[str, Any]], snr_db: float | None = None, progress: bool = True) -> list[torch.Tensor]:
    """Each row's audio as [T] at ``ASR_SAMPLE_RATE``, with seeded white noise at ``snr_db`` when given."""
    from tqdm import tqdm

    from voxkit.audio.constants import ASR_SAMPLE_RATE
    from voxkit.audio.io import load_audio

    waves = [load_audio(r["audio"], ASR_SAMPLE_RATE) for r in tqdm(rows, desc="loading audio", disable=not progress)]
    if snr_db is not None:
        waves = [with_noise(w, snr_db, seed=i) for i, w in enumerate(waves)]
    return waves


def language_of(row: dict[str, Any]) -> str:
    """The row's language as the tables name it: its code as text, "?" where the row has none.

    Why: a manifest written by hand may say ``"language": 5`` or ``null``; grouping by the raw
    values put a number beside a string in one sort, which failed after the whole evaluation.
    """
    lang = row.get("language")
    return "?" if lang is None or lang == "" else str(lang)


def scores_by_language(rows: Sequence[dict[str, Any]], hypotheses: Sequence[str]) -> dict[str, float]:
    """WER (percent) of ``hypotheses`` against the rows' texts, per language plus "all"."""
    by_lang: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_lang[language_of(r)].append(i)
    scores = {
        lang: 100 * word_error_rate([rows[i]["text"] for i in idx], [hypotheses[i] for i in idx])
        for lang, idx in sorted(by_lang.items())
    }
    scores["all"] = 100 * word_error_rate([r["text"] for r in rows], hypotheses)
    return scores


def evaluate_peer(
    peer: Peer, rows: Sequence[dict[str, Any]], waves: Sequence[torch.Tensor], progress: bool = True,
    own_languages: bool = False,
) -> tuple[dict[str, float], list[str | None]]:
    """A peer recogniser's (WER in percent per language plus "all", transcripts in row order).

    Same audio (``waves`` from :func:`load_waves`) and same normaliser as voxkit's figures, so the
    two columns differ only by the recogniser. ``own_languages``: a peer made for some languages
    (Whisper tiny.en: English) hears only the rows in those languages or without one (their
    transcript is None elsewhere): its English words for a Spanish clip would be a WER near 100 %
    that says nothing about the clip, and would pull its "all" figure with it. Its "all" is then
    over the rows it heard, and absent when it heard none.
    """
    from tqdm import tqdm

    spoken = getattr(peer, "languages", None) if own_languages else None
    heard = [i for i, r in enumerate(rows) if spoken is None or language_of(r) in (*spoken, "?")]
    texts: list[str | None] = [None] * len(rows)
    for i in tqdm(heard, desc=peer.name, disable=not progress):
        texts[i] = peer.transcribe(waves[i])
    if not heard:
        return {}, texts
    return scores_by_language([rows[i] for i in heard], [texts[i] for i in heard]), texts


def with_noise(wave: torch.Tensor, snr_db: float, seed: int) -> torch.Tensor:
    """[T] -> [T]: ``wave`` plus white noise at ``snr_db``, clipped to [-1, 1]."""
    import torch

    from voxkit.data.augment import add_noise

    return add_noise(wave, snr_db, torch.Generator().manual_seed(seed)).clamp(-1.0, 1.0)


FLOOR_SEED = 1 << 32
"""Where the noise floor's seeds start: away from ``with_noise``'s (0, 1, ...), whose noise would
otherwise be the same sequence, scaled."""


def with_floor(wave: torch.Tensor, dbfs: float, seed: int, colour: str = "white") -> torch.Tensor:
    """[T] -> [T]: ``wave`` over seeded noise of ``colour`` (white, pink, brown) whose RMS is ``dbfs``
    below full scale, clipped to [-1, 1].

    Why beside :func:`with_noise`: noise at an SNR is scaled to the speech and, added to each
    utterance, leaves the pauses between utterances silent. A microphone's noise floor has one
    level wherever it is, and the pause cutter (asr/segments.py) sees it in every pause.
    """
    import torch

    from voxkit.data.channel import coloured_noise

    noise = coloured_noise(wave.numel(), colour, torch.Generator().manual_seed(seed), wave.dtype)  # [T]
    return noise.reshape(wave.shape).mul_(10 ** (dbfs / 20)).add_(wave).clamp_(-1.0, 1.0)  # in place: an hour is 230 MB


def format_table(table: dict[int, dict[str, float]], peer: tuple[str, dict[str, float]] | None = None) -> str:
    """Markdown table: one row per language, one column per delay, then the peer's column (name, scores) if given."""
    delays = sorted(table)
    langs = sorted({lang for scores in table.values() for lang in scores} - {"all"}) + ["all"]
    head = [f"{d} ms" for d in delays] + ([f"peer {peer[0]} (offline)"] if peer else [])
    lines = ["| language | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for lang in langs:
        cells = [f"{table[d][lang]:.1f}" if lang in table[d] else "-" for d in delays]
        if peer:
            cells.append(f"{peer[1][lang]:.1f}" if lang in peer[1] else "-")
        lines.append(f"| {lang} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def utterance_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, reference words) of one utterance after normalisation."""
    import jiwer

    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return len(hyp.split()), 0
    out = jiwer.process_words(ref, hyp)
    return out.substitutions + out.deletions + out.insertions, len(ref.split())


def delay_differences(
    errors: dict[int, Sequence[int]],
    words: Sequence[int],
    languages: Sequence[str],
    samples: int = 2000,
    seed: int = 0,
) -> dict[tuple[int, int], dict[str, tuple[float, float, float]]]:
    """Change in WER (points) from each delay to the next longer one, with a 95 % interval.

    ``errors[delay][i]`` and ``words[i]`` are utterance i's word edits and reference words. Two
    delays' WERs on the same files differ by much less than either one's sampling error, so the
    interval comes from a paired bootstrap: the same resampled utterances score both delays.
    A change whose interval excludes 0 is one that another draw of sentences would also show.
    Returns {(shorter, longer): {language or "all": (change, low, high)}}.
    """
    import torch

    delays = sorted(errors)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, lang in enumerate(languages):
        groups[lang].append(i)
    groups = dict(sorted(groups.items()))
    groups["all"] = list(range(len(languages)))
    edits = torch.tensor([list(errors[d]) for d in delays], dtype=torch.float64)  # [D, N]
    counts = torch.tensor(list(words), dtype=torch.float64)  # [N]
    out: dict[tuple[int, int], dict[str, tuple[float, float, float]]] = {pair: {} for pair in pairwise(delays)}
    for lang, idx in groups.items():
        index = torch.tensor(idx)
        # each group draws from the same seed: a group's interval does not depend on which other
        # languages the manifest holds, and a one-language manifest's row equals its "all" row
        wer = bootstrap_wers(edits, counts, index, samples, torch.Generator().manual_seed(seed))  # [D, S]
        point = 100 * edits[:, index].sum(1) / counts[index].sum().clamp_min(1)  # [D]
        for k, (a, b) in enumerate(pairwise(delays)):
            change = wer[k + 1] - wer[k]  # [S]
            low, high = torch.quantile(change, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
            out[(a, b)][lang] = (float(point[k + 1] - point[k]), low, high)
    return out


def bootstrap_wers(
    edits: torch.Tensor, counts: torch.Tensor, index: torch.Tensor, samples: int, generator: torch.Generator
) -> torch.Tensor:
    """WER (%) of several systems on ``samples`` resamples of the utterances in ``index``: [D, S].

    ``edits`` [D, N] holds each system's word edits per utterance, ``counts`` [N] the reference
    words. Every resample scores all systems on the same utterances (a paired bootstrap), so the
    difference between two rows is the sampling spread of a difference, not of two WERs.
    """
    import torch

    n = index.numel()
    block = max(1, 4_000_000 // max(1, n))  # resamples per draw: bounded memory on large manifests
    parts = []
    for start in range(0, samples, block):
        draws = index[torch.randint(n, (min(block, samples - start), n), generator=generator)]  # [s, n] utterance ids
        total = counts[draws].sum(1).clamp_min(1)  # [s]
        parts.append(100 * edits[:, draws].sum(2) / total)  # [D, s]
    return torch.cat(parts, dim=1)  # [D, S]


def paired_change(
    base: Sequence[int],
    other: Sequence[int],
    words: Sequence[int],
    samples: int = 2000,
    seed: int = 0,
    groups: Sequence[int] | None = None,
) -> tuple[float, float, float]:
    """Change in WER (points) from ``base`` to ``other`` (word edits per utterance, same
    utterances), with its 95 % paired-bootstrap interval: (change, low, high).

    ``groups`` names the source of each row when rows repeat a source (a long-form stream that
    cycles a short manifest hears each utterance several times): rows of one source are resampled
    together (a cluster bootstrap), because a repeat is not new evidence, and treating repeats as
    independent would narrow the interval as if the manifest were longer than it is."""
    import torch

    edits = torch.tensor([list(base), list(other)], dtype=torch.float64)  # [2, N]
    counts = torch.tensor(list(words), dtype=torch.float64)  # [N]
    if groups is not None:
        if len(groups) != counts.numel():
            raise ValueError(f"groups has {len(groups)} entries for {counts.numel()} rows")
        _, inverse = torch.unique(torch.tensor(list(groups), dtype=torch.long), return_inverse=True)  # [N] cluster ids
        clusters = int(inverse.max()) + 1 if inverse.numel() else 0
        edits = torch.zeros(2, clusters, dtype=torch.float64).index_add_(1, inverse, edits)  # [2, G]
        counts = torch.zeros(clusters, dtype=torch.float64).index_add_(0, inverse, counts)  # [G]
    wer = bootstrap_wers(edits, counts, torch.arange(counts.numel()), samples, torch.Generator().manual_seed(seed))  # [2, S]
    low, high = torch.quantile(wer[1] - wer[0], torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    point = 100 * (edits[1].sum() - edits[0].sum()) / counts.sum().clamp_min(1)
    return float(point), low, high


def format_differences(diffs: dict[tuple[int, int], dict[str, tuple[float, float, float]]]) -> str:
    """Markdown table: one row per language, one column per pair of neighbouring delays."""
    pairs = sorted(diffs)
    langs = sorted({lang for cells in diffs.values() for lang in cells} - {"all"}) + ["all"]
    lines = ["| language | " + " | ".join(f"{a} → {b} ms" for a, b in pairs) + " |", "|---|" + "---|" * len(pairs)]
    for lang in langs:
        cells = []
        for pair in pairs:
            change, low, high = diffs[pair][lang]
            cells.append(f"{change:+.1f} [{low:+.1f}, {high:+.1f}]")
        lines.append(f"| {lang} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_tables(
    rows: Sequence[dict[str, Any]], table: dict[int, dict[str, float]], hypotheses: dict[int, list[str]],
    peer: tuple[str, dict[str, float]] | None = None,
) -> tuple[str, dict[tuple[int, int], dict[str, tuple[float, float, float]]] | None]:
    """The printed report of ``eval asr``: the WER table, then (for two delays or more) the change
    from each delay to the next with its paired-bootstrap interval; and those changes, for JSON."""
    text = format_table(table, peer=peer)
    if len(hypotheses) < 2:
        return text, None
    counts = {d: [utterance_errors(r["text"], h) for r, h in zip(rows, hyps, strict=True)] for d, hyps in hypotheses.items()}
    diffs = delay_differences({d: [e for e, _ in c] for d, c in counts.items()}, [w for _, w in next(iter(counts.values()))],
                              [language_of(r) for r in rows])
    text += ("\n\nChange in WER (points) from each delay to the next, with a 95 % paired-bootstrap interval"
             " over utterances (an interval that excludes 0 is a real change):\n\n" + format_differences(diffs))
    return text, diffs


def scores_json(
    rows: Sequence[dict[str, Any]],
    table: dict[int, dict[str, float]],
    peer: tuple[str, dict[str, float]] | None = None,
    diffs: dict[tuple[int, int], dict[str, tuple[float, float, float]]] | None = None,
    peer_texts: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """The numbers of :func:`format_table` and :func:`format_differences`, unrounded, for a script.

    Why one function beside the tables: the printed figures are these numbers rounded, so a
    reader of the JSON and a reader of the table see the same evaluation (the JSON also counts
    the utterances of each language, which the table leaves out).
    """
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[language_of(r)] += 1
    counts = dict(sorted(counts.items()))
    counts["all"] = len(rows)
    changes = [
        {"from_ms": a, "to_ms": b, "language": lang, "change": change, "low": low, "high": high}
        for (a, b), cells in sorted((diffs or {}).items())
        for lang, (change, low, high) in cells.items()
    ]
    return {
        "utterances": counts,
        "delays": [{"delay_ms": d, "wer": table[d]} for d in sorted(table)],
        "peer": {"name": peer[0], "offline": True, "wer": peer[1],
                 "utterances": sum(t is not None for t in peer_texts) if peer_texts is not None else None} if peer else None,
        "changes": changes,
    }


def hypotheses_jsonl(
    rows: Sequence[dict[str, Any]], hypotheses: dict[int, list[str]], peers: dict[str, list[str | None]] | None = None
) -> str:
    """One record per (delay, row); a peer's records carry ``"peer": name`` and ``"delay_ms": null`` (it is offline)."""
    import json

    runs: list[tuple[dict, list[str]]] = [({"delay_ms": d}, texts) for d, texts in hypotheses.items()]
    runs += [({"delay_ms": None, "peer": name}, texts) for name, texts in (peers or {}).items()]
    lines = []
    for tag, texts in runs:
        for row, hyp in zip(rows, texts, strict=True):
            if hyp is None:  # a row the peer does not hear (evaluate_peer)
                continue
            errors, words = utterance_errors(row["text"], hyp)
            record = {"audio": row["audio"], "language": language_of(row), **tag,
                      "reference": row["text"], "hypothesis": hyp, "errors": errors, "words": words}
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    return "".join(lines)
