"""Render the sentences of an English manifest again with another synthesiser: Flite, Festival or Piper.

Usage:
  python scripts/engine_corpus.py SOURCE.jsonl OUT --engine flite --split train --voices slt,awb,kal16 --hours 4
  python scripts/engine_corpus.py SOURCE.jsonl OUT --engine festival --split train --hours 1
  python scripts/engine_corpus.py data/asr_en/test.jsonl data/piper_test --engine piper --split test
  python scripts/engine_corpus.py data/plans/en.jsonl.gz data/flite_train --engine flite --split train --hours 0.7

SOURCE is a manifest or a plan saved by ``voxkit data synth --save-plan`` (its rows of --split).

Why from a manifest: the sentences keep the split they had (a test sentence is never rendered
into a training corpus), so a model trained on espeak and these engines is scored on unseen
sentences, and, with a voice or a whole engine held out of training, on an unseen synthesiser.
Held-out voices and the held-out engine (voxkit.data.voices) are refused for the train split.
Each utterance gets one voice with a random speaking-rate stretch (and, for Flite, a random pitch
target), seeded. Every row records its engine, voice and the voice's licence.
Writes OUT/audio/<split>/<id>.wav and OUT/<split>.jsonl (the corpus manifest format).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import Pool
from typing import Any

from tqdm import tqdm

from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.audio.write import save_audio
from voxkit.data import festival, flite, piper
from voxkit.data.manifest import read_manifest, write_manifest
from voxkit.data.voices import held_out
from voxkit.errors import VoxkitError

STRETCH = (0.85, 1.2)
# Flite pitch targets (Hz) that keep each voice natural: slt is a female voice, the others male.
F0_RANGE: dict[str, tuple[float, float]] = {"slt": (150.0, 230.0), "awb": (85.0, 150.0), "rms": (85.0, 150.0), "kal16": (85.0, 150.0)}


@dataclass(frozen=True)
class Engine:
    """What the script needs of an engine: its voices, how to vary one, how to render."""

    voices: tuple[str, ...]
    make: Callable[[str, random.Random], Any]
    render: Callable[[str, Any], Any]


def _flite_voice(name: str, rng: random.Random) -> flite.FliteVoice:
    return flite.FliteVoice(name, round(rng.uniform(*F0_RANGE[name])), round(rng.uniform(*STRETCH), 2))


def _festival_voice(name: str, rng: random.Random) -> festival.FestivalVoice:
    stretch = round(rng.uniform(*STRETCH), 2)
    return festival.FestivalVoice(name, 1.0 if name in festival.FIXED_RATE else stretch)


def _piper_voice(name: str, rng: random.Random) -> piper.PiperVoiceSpec:
    return piper.PiperVoiceSpec(name, round(rng.uniform(*STRETCH), 2))


ENGINES: dict[str, Engine] = {
    "flite": Engine(flite.VOICES, _flite_voice, flite.render_flite),
    "festival": Engine(tuple(festival.VOICES), _festival_voice, festival.render_festival),
    "piper": Engine(tuple(piper.VOICES), _piper_voice, piper.render_piper),
}


def _render(job: tuple[str, int, str, Any, str, str]) -> dict | None:
    engine, index, text, voice, out, split = job
    rendered = ENGINES[engine].render(text, voice)
    if rendered is None:
        return None
    wav, words = rendered
    uid = f"{engine}-{split}-{index:06d}"
    rel = os.path.join("audio", split, uid + ".wav")
    save_audio(os.path.join(out, rel), wav, ASR_SAMPLE_RATE)
    return {"audio": rel, "text": text, "language": "en", "speaker": voice.speaker, "duration": round(wav.size / ASR_SAMPLE_RATE, 3),
            "sample_rate": ASR_SAMPLE_RATE, "words": words, "id": uid, "engine": engine, "voice": voice.name, "licence": voice.licence}


def _source_rows(source: str, split: str) -> list[dict]:
    """A manifest's rows, or the ``split`` rows of a ``voxkit data synth --save-plan`` file.

    A plan has no audio yet: its rows get an estimated duration (0.4 s per word), which only sizes
    the progress bar. Only the plan's rows of the rendered split are used, so a sentence keeps its split.
    """
    if not source.endswith(".jsonl.gz"):
        return read_manifest(source)
    import gzip
    import json

    with gzip.open(source, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [{**r, "duration": 0.4 * len(r["text"].split())} for r in rows if "text" in r and r.get("split") == split]


def main() -> None:
    try:
        _main()
    except VoxkitError as e:  # an engine or voice that is not installed: one line, not a traceback
        raise SystemExit(f"error: {e}") from None


def _main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", help="manifest whose English sentences are rendered")
    ap.add_argument("out", help="corpus folder")
    ap.add_argument("--engine", choices=sorted(ENGINES), default="flite")
    ap.add_argument("--split", default="train")
    ap.add_argument("--voices", default=None,
                    help="comma-separated voices of the engine (default: those not held out; all of them for other splits)")
    ap.add_argument("--hours", type=float, default=None, help="stop after this much audio (default: every sentence)")
    ap.add_argument("--max-utterances", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    engine = ENGINES[args.engine]
    train = args.split == "train"
    voices = args.voices.split(",") if args.voices else [v for v in engine.voices if not (train and held_out(args.engine, v))]
    if unknown := [v for v in voices if v not in engine.voices]:
        raise SystemExit(f"unknown voice(s) {', '.join(unknown)}; {args.engine}'s voices are {', '.join(engine.voices)}")
    if not voices:
        raise SystemExit(f"{args.engine} is the held-out engine (docs/data.md); render it into a dev or test split")
    if train and (kept_out := [v for v in voices if held_out(args.engine, v)]):
        raise SystemExit(f"{args.engine} voice(s) {', '.join(kept_out)} are held out of training (docs/data.md); "
                         "render them into a dev or test split")
    rows = [r for r in _source_rows(args.source, args.split) if r.get("language") == "en"]
    rng = random.Random(args.seed)
    rng.shuffle(rows)
    if args.max_utterances:
        rows = rows[: args.max_utterances]
    jobs = [(args.engine, i, row["text"], engine.make(voices[rng.randrange(len(voices))], rng), args.out, args.split)
            for i, row in enumerate(rows)]
    kept: list[dict] = []
    seconds, budget = 0.0, (args.hours * 3600 if args.hours else float("inf"))
    # One worker renders in this process: no pool to start, and a voice loaded once stays loaded.
    pool = Pool(args.workers) if args.workers > 1 else None
    total = min(budget, sum(r["duration"] for r in rows) * 1.2)
    with contextlib.ExitStack() as stack, tqdm(total=total, unit="s", desc="rendering") as bar:
        if pool is not None:
            stack.enter_context(pool)
        for row in pool.imap(_render, jobs, chunksize=8) if pool is not None else map(_render, jobs):
            if row is None:
                continue
            kept.append(row)
            seconds += row["duration"]
            bar.update(row["duration"])
            if seconds >= budget:
                break
    write_manifest(os.path.join(args.out, f"{args.split}.jsonl"), kept)
    skipped = len(jobs) - len(kept)
    print(f"{len(kept)} utterances, {seconds / 3600:.2f} h, {skipped} not rendered or not needed -> {args.out}/{args.split}.jsonl")


if __name__ == "__main__":
    main()
