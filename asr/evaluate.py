"""Word error rate of the recogniser on a manifest, per language and per delay.

Texts are normalised before scoring (case folded, punctuation removed, whitespace collapsed):
the recogniser writes punctuation and case, and WER should measure the words.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from typing import Any


def normalize_text(text: str) -> str:
    kept = [" " if unicodedata.category(ch).startswith(("P", "S")) else ch for ch in unicodedata.normalize("NFC", text.casefold())]
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
    delays_ms: Sequence[int],
    batch_size: int = 32,
    progress: bool = True,
    hypotheses: dict[int, list[str]] | None = None,
) -> dict[int, dict[str, float]]:
    """WER (percent) for each delay (ms) and language, plus "all": {delay: {lang: wer}}.

    ``hypotheses``: when given, filled with each delay's transcripts in the order of ``rows``
    (for error analysis: which utterances a longer delay fixes or breaks).
    """
    from tqdm import tqdm

    from voxkit.asr.session import transcribe_batch
    from voxkit.audio.io import load_audio

    waves = [load_audio(r["audio"], 16000) for r in tqdm(rows, desc="loading audio", disable=not progress)]
    table: dict[int, dict[str, float]] = {}
    for delay_ms in delays_ms:
        results = []
        bar = tqdm(total=len(rows), desc=f"delay {delay_ms} ms", disable=not progress)
        for start in range(0, len(rows), batch_size * 4):
            chunk = waves[start : start + batch_size * 4]
            results.extend(transcribe_batch(model, tokenizer, chunk, delay=delay_ms // 80, batch_size=batch_size))
            bar.update(len(chunk))
        bar.close()
        if hypotheses is not None:
            hypotheses[delay_ms] = [t.text for t in results]
        by_lang: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(rows):
            by_lang[r.get("language", "?")].append(i)
        scores = {lang: 100 * word_error_rate([rows[i]["text"] for i in idx], [results[i].text for i in idx]) for lang, idx in sorted(by_lang.items())}
        scores["all"] = 100 * word_error_rate([r["text"] for r in rows], [t.text for t in results])
        table[delay_ms] = scores
    return table


def format_table(table: dict[int, dict[str, float]]) -> str:
    """Markdown table: one row per language, one column per delay."""
    delays = sorted(table)
    langs = sorted({lang for scores in table.values() for lang in scores} - {"all"}) + ["all"]
    lines = ["| language | " + " | ".join(f"{d} ms" for d in delays) + " |", "|---|" + "---|" * len(delays)]
    for lang in langs:
        cells = [f"{table[d][lang]:.1f}" if lang in table[d] else "-" for d in delays]
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
