"""How many substitutions of a recogniser sound like the reference? (espeak-ng phonemes)

Usage: python scripts/error_phonemes.py HYPOTHESES.jsonl [--language en] [--voice en-us]

Reads the file that ``voxkit eval asr --hypotheses`` writes and, per delay, splits the substituted
reference words into those whose espeak-ng phonemes equal the hypothesis's (homophones: only the
surrounding words can tell them apart, so only there can a longer delay help), those one phoneme
apart, and the rest (a wrong spelling of a sound that was heard). Why espeak: the bundled model is
trained on espeak speech, so espeak's own phonemes are what the audio says. Spans are compared
after the WER normalisation (punctuation becomes a space, so "it's" is read as "it s").
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import subprocess
from collections import defaultdict

import jiwer

from voxkit.asr.evaluate import normalize_text


@functools.cache
def phonemes(text: str, voice: str) -> str:
    """espeak-ng's ASCII phonemes of ``text`` without stress marks, pauses or spaces."""
    out = subprocess.run(["espeak-ng", "-q", "-x", "-v", voice, text], capture_output=True, text=True, check=True).stdout
    return "".join(ch for ch in out if ch not in " \n'_,%=:")


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two phoneme strings (short: a row at a time is enough)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def classify(reference: str, hypothesis: str, voice: str) -> dict[str, int]:
    """Counts of reference words: substituted with the same / one-apart / other phonemes."""
    counts = {"same": 0, "one apart": 0, "other": 0, "words": 0}
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return counts
    out = jiwer.process_words(ref, hyp)
    ref_words, hyp_words = out.references[0], out.hypotheses[0]
    counts["words"] = len(ref_words)
    for chunk in out.alignments[0]:
        if chunk.type != "substitute":
            continue
        said = phonemes(" ".join(ref_words[chunk.ref_start_idx : chunk.ref_end_idx]), voice)
        written = phonemes(" ".join(hyp_words[chunk.hyp_start_idx : chunk.hyp_end_idx]), voice)
        distance = 0 if said == written else edit_distance(said, written)
        kind = "same" if distance == 0 else "one apart" if distance == 1 else "other"
        counts[kind] += chunk.ref_end_idx - chunk.ref_start_idx
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("hypotheses", help="JSONL from voxkit eval asr --hypotheses")
    ap.add_argument("--language", default="en", help="only utterances of this language")
    ap.add_argument("--voice", default="en-us", help="espeak-ng voice that phonemises both texts")
    args = ap.parse_args()
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed (bash scripts/setup.sh installs it)")
    totals: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    with open(args.hypotheses, encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if record.get("language") != args.language:
                continue
            for kind, n in classify(record["reference"], record["hypothesis"], args.voice).items():
                totals[record["delay_ms"]][kind] += n
    print("| delay | reference words | substituted | same phonemes | one phoneme apart | two or more apart |")
    print("|---|---|---|---|---|---|")
    for delay, c in sorted(totals.items()):
        subs = c["same"] + c["one apart"] + c["other"]
        cells = [f"{c[k]} ({100 * c[k] / max(1, subs):.1f} %)" for k in ("same", "one apart", "other")]
        print(f"| {delay} ms | {c['words']} | {subs} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
