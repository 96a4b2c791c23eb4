"""Render the sentences of an English manifest again with Flite voices (voxkit.data.flite).

Usage:
  python scripts/flite_corpus.py SOURCE.jsonl OUT --split train --voices slt,awb,kal16 --hours 4
  python scripts/flite_corpus.py data/asr_en/test.jsonl data/flite_rms --split test --voices rms

Why from a manifest: the sentences keep the split they had (a test sentence is never rendered
into a training corpus), so a model trained on espeak and Flite is scored on unseen sentences,
and, with a voice held out of ``--voices`` for training, on an unseen synthesiser voice.
Each utterance gets one voice with a random pitch target and speaking-rate stretch (seeded).
Writes OUT/audio/<split>/<id>.wav and OUT/<split>.jsonl (the corpus manifest format).
"""

from __future__ import annotations

import argparse
import os
import random
from multiprocessing import Pool

from tqdm import tqdm

from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.audio.io import save_audio
from voxkit.data.flite import VOICES, FliteVoice, render_flite
from voxkit.data.manifest import read_manifest, write_manifest

# Pitch targets (Hz) that keep each voice natural: slt is a female voice, the others male.
F0_RANGE: dict[str, tuple[float, float]] = {"slt": (150.0, 230.0), "awb": (85.0, 150.0), "rms": (85.0, 150.0), "kal16": (85.0, 150.0)}
STRETCH = (0.85, 1.2)


def _render(job: tuple[int, str, FliteVoice, str, str]) -> dict | None:
    index, text, voice, out, split = job
    rendered = render_flite(text, voice)
    if rendered is None:
        return None
    wav, words = rendered
    uid = f"flite-{split}-{index:06d}"
    rel = os.path.join("audio", split, uid + ".wav")
    save_audio(os.path.join(out, rel), wav, ASR_SAMPLE_RATE)
    return {"audio": rel, "text": text, "language": "en", "speaker": voice.speaker, "duration": round(wav.size / ASR_SAMPLE_RATE, 3),
            "sample_rate": ASR_SAMPLE_RATE, "words": words, "id": uid}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", help="manifest whose English sentences are rendered")
    ap.add_argument("out", help="corpus folder")
    ap.add_argument("--split", default="train")
    ap.add_argument("--voices", default="slt,awb,kal16", help=f"comma-separated, of {', '.join(VOICES)}")
    ap.add_argument("--hours", type=float, default=None, help="stop after this much audio (default: every sentence)")
    ap.add_argument("--max-utterances", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    voices = args.voices.split(",")
    if unknown := [v for v in voices if v not in VOICES]:
        raise SystemExit(f"unknown voice(s) {', '.join(unknown)}; Flite's 16 kHz voices are {', '.join(VOICES)}")
    rows = [r for r in read_manifest(args.source) if r.get("language") == "en"]
    rng = random.Random(args.seed)
    rng.shuffle(rows)
    if args.max_utterances:
        rows = rows[: args.max_utterances]
    jobs = []
    for i, row in enumerate(rows):
        name = voices[rng.randrange(len(voices))]
        voice = FliteVoice(name, round(rng.uniform(*F0_RANGE[name])), round(rng.uniform(*STRETCH), 2))
        jobs.append((i, row["text"], voice, args.out, args.split))
    kept: list[dict] = []
    seconds, budget = 0.0, (args.hours * 3600 if args.hours else float("inf"))
    with Pool(args.workers) as pool, tqdm(total=min(budget, sum(r["duration"] for r in rows) * 1.2), unit="s", desc="rendering") as bar:
        for row in pool.imap(_render, jobs, chunksize=8):
            if row is None:
                continue
            kept.append(row)
            seconds += row["duration"]
            bar.update(row["duration"])
            if seconds >= budget:
                pool.terminate()
                break
    write_manifest(os.path.join(args.out, f"{args.split}.jsonl"), kept)
    skipped = len(jobs) - len(kept)
    print(f"{len(kept)} utterances, {seconds / 3600:.2f} h, {skipped} not rendered or not needed -> {args.out}/{args.split}.jsonl")


if __name__ == "__main__":
    main()
