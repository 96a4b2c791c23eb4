"""Build the multilingual synthetic corpus: plan, render in parallel, align words, write manifests.

Word timings come from libespeak-ng's word events (:mod:`voxkit.data.align`).

Layout of a corpus folder::

    audio/<lang>/<split>/<id>.flac     16 kHz mono (``audio24k/...`` too with --sample-rates 16000,24000)
    shards/<chunk>.jsonl               rows written as they are produced (resume reads these)
    render.json                        the sample rates and format every row was rendered with
    train.jsonl dev.jsonl test.jsonl   merged manifests (``train_24k.jsonl``... for other rates)
    summary.json                       sizes per split and language, speakers, throughput, disk

Resumable: utterance ids and their content are a pure function of (languages, hours, seed, splits);
on a re-run an utterance whose newest shard row has its audio files and the plan's text, speaker and
voice is skipped. A folder keeps the sample rates and format it was first rendered with: a re-run
asking for others is refused (:mod:`voxkit.data.resume`).

Plan here, render there (why): planning needs the Debian text sources and faker, rendering only
libespeak-ng. A plan saved with :func:`save_plan` (``voxkit data synth --save-plan``) renders the
same utterances on a machine that has just the library and its data (``scripts/espeak_kit.sh``),
e.g. a GPU box with many cores and no package manager.

Reproducible samples (why chunks render in forked children): libespeak-ng carries some state from
one utterance to the next, so a worker that rendered other chunks before would render a chunk
slightly differently. Each chunk renders in a child forked from its worker's fresh engine, so the
samples depend only on the chunking (``chunk_size``), not on the number of workers or on which one
took the chunk; a crash inside the library costs one utterance, not the build.
"""

from __future__ import annotations

import faulthandler
import gzip
import json
import os
import random
import signal
import time
from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np

from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.data.align import align_words
from voxkit.data.espeak import Voice
from voxkit.data.resume import (
    RenderSettings,
    matches_plan,
    read_shard,
    record_settings,
    reusable_rows,
    row_complete,
    shard_names,
)
from voxkit.errors import DataError

SPLITS: dict[str, float] = {"train": 0.8, "dev": 0.1, "test": 0.1}
VOICE_SPLITS: dict[str, float] = {"train": 0.7, "dev": 0.15, "test": 0.15}


MIN_SAMPLE_RATE = 8000  # Hz: the lowest rate a corpus is rendered at (telephone speech)


@dataclass(frozen=True)
class UttPlan:
    """Everything needed to render one utterance (pure data, picklable)."""

    id: str
    split: str
    language: str
    text: str
    speaker: str
    voice: Voice


# ----------------------------------------------------------------------------------------------
# Rendering

_RESAMPLERS: dict[tuple[int, int], object] = {}


def _resample(wav: np.ndarray, orig: int, target: int) -> np.ndarray:
    """float32 [T] -> float32 [T'] with a cached torchaudio kernel (one per rate pair and process)."""
    if orig == target:
        return wav
    import torch
    import torchaudio

    key = (orig, target)
    if key not in _RESAMPLERS:
        _RESAMPLERS[key] = torchaudio.transforms.Resample(orig, target)
    with torch.no_grad():
        return _RESAMPLERS[key](torch.from_numpy(wav)).numpy()  # [T']


def render(
    text: str, voice: Voice, sample_rates: tuple[int, ...] = (ASR_SAMPLE_RATE,), tail_s: float = 0.25
) -> tuple[dict[int, np.ndarray], list[dict]] | None:
    """Synthesise ``text``; returns ({rate: float32 [T]}, words) or None when alignment fails.

    Trailing silence beyond ``tail_s`` after the last word is cut (espeak adds ~0.5 s).
    """
    from voxkit.data.espeak import get_engine

    engine = get_engine()
    pcm, events = engine.synth(text, voice)  # int16 [T] at engine.sample_rate
    words = align_words(text, pcm, events, engine.sample_rate)
    if words is None:
        return None
    keep = min(pcm.size, int((words[-1]["end"] + tail_s) * engine.sample_rate))
    wav = pcm[:keep].astype(np.float32) / 32768.0  # [T]
    return {sr: _resample(wav, engine.sample_rate, sr) for sr in sample_rates}, words


# ----------------------------------------------------------------------------------------------
# Planning


def _estimate_seconds(text: str, voice: Voice) -> float:
    return len(text) / (19.0 * voice.rate / 175.0) + 0.3


def plan_corpus(languages: list[str], hours: float, seed: int, splits: dict[str, float] = SPLITS) -> list[UttPlan]:
    """Deterministic utterance plan: sentences and speakers drawn per (language, split).

    Sentences are assigned to splits by a hash of their words and voices by a hash of their espeak
    variant, so dev/test hold sentences AND voices never heard in train. Each split's hour budget is
    ``hours * fraction / len(languages)`` per language (estimated from text length and rate).
    """
    from voxkit.data.entities import entity_sentences
    from voxkit.data.text import dedupe, natural_sentences, text_split
    from voxkit.data.voices import speaker_id, speaker_pool, utterance_voice

    if hours <= 0:
        raise DataError(f"--hours must be positive, got {hours}")
    plans: list[UttPlan] = []
    for lang in languages:
        natural = natural_sentences(lang)
        entities = entity_sentences(lang, max(200, len(natural) // 4), seed)
        pool = dedupe(natural + entities)
        by_split: dict[str, list[str]] = defaultdict(list)
        for s in pool:
            by_split[text_split(s, splits)].append(s)
        for split, frac in splits.items():
            sents = sorted(by_split[split])
            if not sents:
                raise DataError(f"no {split} sentences for language {lang!r}")
            rng = random.Random(f"plan-{lang}-{split}-{seed}")
            rng.shuffle(sents)
            budget = hours * 3600.0 * frac / len(languages)
            approx_utts = max(1, int(budget / 4.0))
            n_spk = max(4, min(200, approx_utts // 5)) if split == "train" else max(3, min(24, approx_utts // 3))
            speakers = speaker_pool(lang, split, n_spk, VOICE_SPLITS, seed)
            total, i = 0.0, 0
            while total < budget:
                text = sents[i % len(sents)]
                spk = speakers[rng.randrange(len(speakers))]
                voice = utterance_voice(spk, rng)
                plans.append(UttPlan(f"{lang}-{split}-{i:06d}", split, lang, text, speaker_id(spk, lang), voice))
                total += _estimate_seconds(text, voice)
                i += 1
    return plans


PLAN_FORMAT = "voxkit-synth-plan/1"


def save_plan(path: str, plans: list[UttPlan], languages: list[str], hours: float, seed: int) -> None:
    """Write a plan as gzipped JSON lines: a header line, then one utterance per line."""
    try:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(json.dumps({"format": PLAN_FORMAT, "languages": languages, "hours": hours, "seed": seed}) + "\n")
            for p in plans:
                f.write(json.dumps(asdict(p), ensure_ascii=False) + "\n")
    except OSError as e:
        raise DataError(f"{path}: cannot write the synth plan ({e.strerror or e})") from None


def load_plan(path: str) -> tuple[list[UttPlan], list[str], float, int]:
    """Read :func:`save_plan`'s file: (plans, languages, hours, seed)."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            header = json.loads(f.readline())
            if header.get("format") != PLAN_FORMAT:
                raise DataError(f"{path}: not a voxkit synth plan (format {header.get('format')!r})")
            plans = []
            for line in f:
                d = json.loads(line)
                plans.append(UttPlan(**{**d, "voice": Voice(**d["voice"])}))
    except (OSError, EOFError, json.JSONDecodeError, TypeError, KeyError, AttributeError) as e:
        raise DataError(f"{path}: cannot read the synth plan ({e})") from None
    return plans, header["languages"], float(header["hours"]), int(header["seed"])


# ----------------------------------------------------------------------------------------------
# Execution


def _run_chunk(job: tuple[str, int, list[UttPlan], tuple[int, ...], str]) -> tuple[int, int, int]:
    """Render one chunk into ``shards/<chunk>.jsonl``; returns (done now, skipped, rejected)."""
    from voxkit.audio.write import save_audio

    out, chunk_id, plans, rates, fmt = job
    settings = RenderSettings(rates, fmt)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    shard = os.path.join(out, "shards", f"{chunk_id:05d}.jsonl")
    existing = read_shard(shard)
    have = {r["id"] for r in existing if row_complete(out, r)}
    kept = [r for r in existing if r["id"] in have]
    if len(kept) != len(existing):  # rewrite without broken rows
        with open(shard, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in kept)
    done = rejected = 0
    with open(shard, "a", encoding="utf-8") as f:
        for plan in plans:
            if plan.id in have:
                continue
            result = render(plan.text, plan.voice, rates)
            if result is None:
                rejected += 1
                row = {"id": plan.id, "text": plan.text, "speaker": plan.speaker, "voice": asdict(plan.voice),
                       "rejected": True, "_files": []}
            else:
                audio, words = result
                files = []
                for sr, wav in audio.items():
                    rel = settings.audio_rel(plan.language, plan.split, plan.id, sr)
                    save_audio(os.path.join(out, rel), wav, sr)
                    files.append(rel)
                row = {
                    "id": plan.id, "split": plan.split, "text": plan.text, "language": plan.language,
                    "speaker": plan.speaker, "duration": round(audio[rates[0]].size / rates[0], 3),
                    "words": words, "voice": asdict(plan.voice), "_files": files,
                }
                done += 1
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
    return done, len(have), rejected


_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT}


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the main process, which stops them all (``Pool.terminate``).

    Why: one decision in one place; a worker interrupted somewhere inside the pool's own machinery
    would leave the pool in a state nobody chose. The renderer children forked per chunk restore
    the default, so a Ctrl-C ends the utterance in flight at once.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_chunk_isolated(job: tuple[str, int, list[UttPlan], tuple[int, ...], str]) -> tuple[int, int, int]:
    """:func:`_run_chunk` in a forked child, so that a crash inside libespeak-ng costs one utterance.

    Why: libespeak-ng 1.51 dies with a segmentation fault on a few (text, voice) pairs (e.g. Spanish,
    variant ``rob``, pitch 35, range 80: "con sun-cmd, por ejemplo."). In a pool worker that kills
    the worker, its chunk's result never arrives and the whole build waits forever. Here the child
    dies instead: the shard holds every row it finished (rows are flushed one by one), so the first
    utterance missing from it is the one that crashed; it is recorded as rejected and a new child
    renders the rest. Each child starts from this process's untouched engine state, so a chunk
    renders the same samples whichever worker runs it. Without ``os.fork`` (Windows) the chunk
    runs in-process.
    """
    if not hasattr(os, "fork"):
        return _run_chunk(job)
    from voxkit.data.espeak import adopt_engine_after_fork, get_engine

    out, chunk_id, plans, _, _ = job
    shard = os.path.join(out, "shards", f"{chunk_id:05d}.jsonl")

    def finished() -> dict[str, dict]:
        return {r["id"]: r for r in read_shard(shard) if row_complete(out, r)}

    before = set(finished())
    try:  # import (never run) torch here, so that children do not import it again
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    get_engine()  # initialise once here; children inherit it
    while True:
        pid = os.fork()
        if pid == 0:  # child: render, then leave without running the parent's exit handlers
            code = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)  # a pool worker ignores it (_ignore_sigint)
                faulthandler.disable()  # a crash is reported by the parent, as a rejected row
                adopt_engine_after_fork()
                _run_chunk(job)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status):
            if os.WEXITSTATUS(status) != 0:
                return _run_chunk(job)  # a Python error: raise it here, with its traceback
            break
        if os.WTERMSIG(status) not in _CRASH_SIGNALS:
            raise DataError(f"rendering chunk {chunk_id} was stopped by signal {os.WTERMSIG(status)}")
        rows = finished()
        crashed = next((p for p in plans if p.id not in rows), None)
        if crashed is None:
            break
        with open(shard, "a", encoding="utf-8") as f:
            row = {"id": crashed.id, "text": crashed.text, "speaker": crashed.speaker, "voice": asdict(crashed.voice),
                   "rejected": True, "crashed": os.WTERMSIG(status), "_files": []}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    rows = finished()
    new = [rows[p.id] for p in plans if p.id in rows and p.id not in before]
    rejected = sum(1 for r in new if r.get("rejected"))
    return len(new) - rejected, len(before), rejected


def _disk_usage(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, n)) for n in files)
    return total


def build_corpus(
    out: str,
    languages: list[str],
    hours: float,
    seed: int = 0,
    workers: int = 1,
    sample_rates: tuple[int, ...] = (ASR_SAMPLE_RATE,),
    fmt: str = "flac",
    chunk_size: int = 20,
    progress: bool = True,
    plans: list[UttPlan] | None = None,
) -> dict:
    """Plan (unless ``plans`` is given), render (``workers`` processes), merge manifests, write ``summary.json``."""
    from voxkit.data.manifest import write_manifest

    if fmt not in ("flac", "wav"):
        raise DataError(f"--format must be flac or wav, got {fmt!r}")
    if not sample_rates or any(sr < MIN_SAMPLE_RATE for sr in sample_rates):
        raise DataError(f"bad --sample-rates {sample_rates}")
    sample_rates = tuple(sample_rates)
    if len({sr // 1000 for sr in sample_rates}) != len(sample_rates):  # audio<k>k/ folders would collide
        raise DataError(f"--sample-rates must differ by 1 kHz at least, got {','.join(map(str, sample_rates))}")
    settings = RenderSettings(sample_rates, fmt)
    # Resume: the newest row of each id whose audio exists is done when it rendered what the plan
    # asks for; a folder rendered at other rates or in another format is refused before planning
    # (voxkit.data.resume says why). New work goes to new shard numbers, so a changed chunking never
    # mixes old and new rows in one file.
    reusable = reusable_rows(out, settings)
    t0 = time.time()
    if plans is None:
        plans = plan_corpus(languages, hours, seed)
    plan_s = time.time() - t0
    os.makedirs(os.path.join(out, "shards"), exist_ok=True)
    todo = [p for p in plans if not (p.id in reusable and matches_plan(reusable[p.id], p))]
    first = max((int(f.split(".")[0]) for f in shard_names(out)), default=-1) + 1
    jobs = [(out, first + k, todo[i : i + chunk_size], tuple(sample_rates), fmt) for k, i in enumerate(range(0, len(todo), chunk_size))]
    done, skipped, rejected = 0, len(plans) - len(todo), 0
    from tqdm import tqdm

    bar = tqdm(total=len(plans), initial=skipped, unit="utt", desc="synth", disable=not progress)
    if workers <= 1:
        results = map(_run_chunk_isolated, jobs)
        pool = None
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers, initializer=_ignore_sigint)
        results = pool.imap_unordered(_run_chunk_isolated, jobs)
    try:
        for d, s, r in results:
            done, skipped, rejected = done + d, skipped + s, rejected + r
            bar.update(d + s + r)
    except BaseException:
        # Ctrl-C or a failed chunk: close() + join() would first render every queued chunk (and a
        # Ctrl-C that reached the workers too left the command hanging there). The shards keep every
        # finished row: running the command again resumes.
        if pool is not None:
            pool.terminate()
        raise
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    synth_s = time.time() - t0
    record_settings(out, settings)  # every row is now rendered with them (older folders: checked above)
    by_plan = {p.id: p for p in plans}
    by_id = {i: r for i, r in reusable_rows(out, settings).items() if i in by_plan and matches_plan(r, by_plan[i])}
    rejected_total = sum(1 for r in by_id.values() if r.get("rejected"))
    rows = sorted((r for r in by_id.values() if not r.get("rejected")), key=lambda r: r["id"])
    summary: dict = {"languages": languages, "hours_requested": hours, "seed": seed, "sample_rates": list(sample_rates), "format": fmt}
    for k, sr in enumerate(sample_rates):
        suffix = "" if k == 0 else f"_{sr // 1000}k"
        for split in SPLITS:
            split_rows = [
                {"audio": r["_files"][k], "text": r["text"], "language": r["language"], "speaker": r["speaker"],
                 "duration": r["duration"], "sample_rate": sr, "words": r["words"], "id": r["id"]}
                for r in rows if r["split"] == split
            ]
            write_manifest(os.path.join(out, f"{split}{suffix}.jsonl"), split_rows, relative_to=out)
    stats: dict = {}
    for split in SPLITS:
        for lang in languages:
            sel = [r for r in rows if r["split"] == split and r["language"] == lang]
            stats[f"{split}/{lang}"] = {
                "utterances": len(sel), "hours": round(sum(r["duration"] for r in sel) / 3600, 4),
                "speakers": len({r["speaker"] for r in sel}), "sentences": len({r["text"] for r in sel}),
            }
    audio_hours = sum(r["duration"] for r in rows) / 3600
    todo_ids = {p.id for p in todo}
    rendered_hours = sum(r["duration"] for r in rows if r["id"] in todo_ids) / 3600  # throughput: this run's work only
    disk = _disk_usage(out)
    summary.update({
        "splits": stats, "utterances": len(rows), "rejected": rejected_total, "rendered_now": done, "skipped_existing": skipped,
        "audio_hours": round(audio_hours, 4), "wall_seconds": round(synth_s, 1), "plan_seconds": round(plan_s, 1), "workers": workers,
        "rendered_hours": round(rendered_hours, 4),
        "hours_per_wall_hour": round(rendered_hours / (synth_s / 3600), 1) if done and synth_s > 0 else None,
        "disk_bytes": disk, "gb_per_audio_hour": round(disk / 1e9 / audio_hours, 4) if audio_hours else None,
    })
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
    return summary
