"""``voxkit data``: build the synthetic corpus, validate manifests, import user data."""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from pathlib import Path

from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.cli.flags import at_least
from voxkit.cli.outputs import InputFolder, input_clash, output_file, output_folder


def _say_planning(args: argparse.Namespace, languages: list[str]) -> None:
    """Planning reads the text sources and draws every sentence and voice before the first line of
    output or the render bar: say so, or a user watches a silent terminal for most of a minute."""
    if not args.quiet:
        print(f"voxkit data: planning {args.hours:g} h of {', '.join(languages)} (text sources, sentences, voices; "
              "this takes up to a minute) ...", file=sys.stderr, flush=True)


def _synth(args: argparse.Namespace) -> int:
    from voxkit.data.synth import MIN_SAMPLE_RATE, build_corpus, load_plan, plan_corpus, save_plan
    from voxkit.data.text import language_spec
    from voxkit.errors import DataError

    if args.plan and args.save_plan:
        raise DataError("--plan and --save-plan exclude each other (save a plan here, render it elsewhere)")
    plans = None
    if args.plan:
        plans, languages, hours, seed = load_plan(args.plan)
        args.languages, args.hours, args.seed = ",".join(languages), hours, seed

    languages = [x.strip() for x in args.languages.split(",") if x.strip()]
    if not languages:
        raise DataError("--languages is empty")
    for lang in languages:
        language_spec(lang)
    # every flag is checked here, before the planning message and the minute of planning
    if not (math.isfinite(args.hours) and args.hours > 0):
        raise DataError(f"--hours must be a positive number of hours, got {args.hours}")
    at_least(args.workers, 0, "--workers", "a number of processes (0: one per core)")
    try:
        rates = tuple(int(x) for x in args.sample_rates.split(","))
    except ValueError:
        raise DataError(f"--sample-rates must be comma-separated integers, got {args.sample_rates!r}") from None
    if any(sr < MIN_SAMPLE_RATE for sr in rates):
        raise DataError(f"--sample-rates must be at least {MIN_SAMPLE_RATE} Hz each, got {args.sample_rates}")
    if args.save_plan:
        output_file(args.save_plan, "--save-plan", holds="the plan")  # before the planning, which takes a while
        _say_planning(args, languages)
        planned = plan_corpus(languages, args.hours, args.seed)
        save_plan(args.save_plan, planned, languages, args.hours, args.seed)
        print(f"plan: {args.save_plan}: {len(planned)} utterances; "
              f"render it with voxkit data synth --plan {shlex.quote(args.save_plan)} --out DIR")
        return 0
    if not args.out:
        raise DataError("--out is required (the corpus folder)")
    output_folder(args.out, "--out")
    workers = args.workers if args.workers > 0 else (os.cpu_count() or 1)
    if plans is None:
        _say_planning(args, languages)
    s = build_corpus(args.out, languages, args.hours, seed=args.seed, workers=workers, sample_rates=rates,
                     fmt=args.format, progress=not args.quiet, plans=plans)
    print(f"corpus: {args.out}")
    print(f"  {s['utterances']} utterances, {s['audio_hours']:.3f} h audio ({s['rendered_now']} rendered now, "
          f"{s['skipped_existing']} already there, {s['rejected']} rejected by alignment)")
    print(f"  wall {s['wall_seconds']:.0f} s with {s['workers']} workers"
          + (f" = {s['hours_per_wall_hour']} h audio per wall-clock hour" if s["hours_per_wall_hour"] else ""))
    print(f"  disk {s['disk_bytes'] / 1e9:.3f} GB ({s['gb_per_audio_hour']} GB per audio hour)")
    print(f"  {'split/lang':<10} {'utts':>6} {'hours':>7} {'speakers':>8} {'sentences':>9}")
    for key, v in s["splits"].items():
        print(f"  {key:<10} {v['utterances']:>6} {v['hours']:>7.3f} {v['speakers']:>8} {v['sentences']:>9}")
    return 0


def _check(args: argparse.Namespace) -> int:
    """Exit 1 if any row (or some manifest, or an empty one) is bad, 2 if no manifest could be read at all."""
    from voxkit.data.manifest import check_manifest
    from voxkit.errors import DataError

    at_least(args.max_report, 0, "--max-report", "a number of bad rows to print (0: only the counts)")
    bad = unreadable = 0
    for path in args.manifests:
        try:
            report = check_manifest(path, decode=args.decode)
        except DataError as err:  # not a manifest at all (missing, a folder, audio or other binary data)
            print(f"voxkit data: error: {err}", file=sys.stderr)
            unreadable += 1
            continue
        if report.rows == 0:  # "0/0 rows ok" with exit 0 passed an empty file that training then refuses
            print(f"{path}: no rows: an empty manifest (nothing to train or evaluate on)", file=sys.stderr)
            bad += 1
            continue
        for line, reason in report.problems[: args.max_report]:
            print(f"{path}:{line}: {reason}")
        if len(report.problems) > args.max_report:
            print(f"{path}: ... {len(report.problems) - args.max_report} more bad rows")
        print(f"{path}: {report.good}/{report.rows} rows ok, {report.hours:.3f} h", file=sys.stderr if report.problems else sys.stdout)
        bad += len(report.problems)
    if unreadable == len(args.manifests):
        return 2
    return 1 if bad or unreadable else 0


def _manifest(args: argparse.Namespace) -> int:
    from voxkit.data.importer import AUDIO_EXTS, TEXT_EXTS, import_directory
    from voxkit.data.manifest import write_manifest
    from voxkit.errors import DataError

    if not os.path.isdir(args.dir):  # before the output check, which would make the missing folder
        raise DataError(f"{args.dir} is a file, not a folder of recordings" if os.path.exists(args.dir)
                        else f"folder not found: {args.dir}")
    out = args.out or os.path.join(args.dir, "manifest.jsonl")
    # before the scan, which reads every file; the recordings and transcripts it reads are not outputs
    output_file(out, "--out", inputs=[InputFolder(args.dir, (*AUDIO_EXTS, *TEXT_EXTS, "transcription"))], holds="the manifest")
    rows, skipped = import_directory(args.dir, language=args.language, speaker_from=args.speaker_from)
    stamp = {k: v for k, v in (("source", args.source), ("licence", args.licence)) if v}
    if args.eval_only:
        stamp["eval_only"] = True  # voxkit.data.dataset refuses to train on such rows
    rows = [{**r, **stamp} for r in rows]
    n = write_manifest(out, rows, relative_to=os.path.dirname(os.path.abspath(out)) if args.relative else None)
    for path, reason in skipped[:20]:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    hours = sum(r["duration"] for r in rows) / 3600
    print(f"{out}: {n} rows, {hours:.3f} h" + (f", {len(skipped)} skipped" if skipped else ""))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="build, check and import speech corpora")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(), 1)[1])

    s = sub.add_parser("synth", help="synthesise a multilingual corpus with exact word timings (espeak-ng)")
    s.add_argument("--out", help="corpus folder (re-running resumes)")
    s.add_argument("--hours", type=float, default=1.0, help="total hours of audio (approximate; default 1)")
    s.add_argument("--languages", default="en,fr,es,de,it,pt,nl,pl",
                   help="comma-separated language codes (default: all eight, en,fr,es,de,it,pt,nl,pl)")
    s.add_argument("--seed", type=int, default=0,
                   help="seed of the sentences and voices (default 0); the held-out splits do not depend on it")
    s.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    s.add_argument("--sample-rates", default=str(ASR_SAMPLE_RATE), help="comma-separated, first is the main manifest's rate")
    s.add_argument("--format", default="flac", choices=("flac", "wav"), help="audio files (default flac)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--save-plan", metavar="FILE", help="only plan (text sources + faker needed) and write the plan to FILE")
    s.add_argument("--plan", metavar="FILE", help="render a plan saved with --save-plan (needs only libespeak-ng); "
                   "the plan's languages, hours and seed replace --languages/--hours/--seed")
    s.set_defaults(func=_synth)

    c = sub.add_parser("check", help="validate manifests and report bad rows with reasons")
    c.add_argument("manifests", nargs="+", metavar="MANIFEST")
    c.add_argument("--decode", action="store_true", help="decode every file (slower; header-only otherwise)")
    c.add_argument("--max-report", type=int, default=50, help="bad rows printed per manifest (default 50; 0: counts only)")
    c.set_defaults(func=_check)

    m = sub.add_parser("manifest", help="write a manifest for wav+txt pairs, a LibriSpeech-style tree or Sphinx test data")
    m.add_argument("dir", help="folder of audio files (wav/flac/ogg/mp3) with same-name .txt or .lab transcripts, "
                   "a LibriSpeech-style tree or Sphinx test data")
    m.add_argument("--out", help="manifest path (default DIR/manifest.jsonl)")
    m.add_argument("--language", default="en", help="language code stored in every row (default en)")
    m.add_argument("--speaker-from", default="auto", choices=("auto", "parent", "none"),
                   help="speaker id: LibriSpeech speaker folder / parent folder name / none")
    m.add_argument("--relative", action="store_true", help="store audio paths relative to the manifest")
    m.add_argument("--eval-only", action="store_true",
                   help="mark every row eval_only: evaluation may read the manifest, training refuses it (a dev set of real speech)")
    m.add_argument("--source", default=None, help="where the recordings come from, stored in every row")
    m.add_argument("--licence", default=None, help="the recordings' licence, stored in every row")
    m.set_defaults(func=_manifest)

    v = sub.add_parser("vocab", help="carve a compact Tekken vocabulary for a small model out of manifests")
    v.add_argument("manifests", nargs="+")
    v.add_argument("--out", required=True, help="folder that receives vocab_subset.json")
    v.add_argument("--max-pieces", type=int, default=6000, help="most frequent Tekken pieces to keep (default 6000)")
    v.add_argument("--min-count", type=int, default=2, help="drop pieces seen fewer times (default 2)")
    v.set_defaults(func=_vocab)

    h = sub.add_parser("chat", help="instruction examples for the audio-chat model, built from manifests")
    h.add_argument("manifests", nargs="+", metavar="MANIFEST")
    h.add_argument("--out", required=True, help="instruction file to write (JSON lines)")
    h.add_argument("--per-row", type=int, default=1, help="examples drawn per manifest row (default 1)")
    h.add_argument("--seed", type=int, default=0, help="seed of the examples drawn and of the spoken questions (default 0)")
    h.add_argument("--kinds", default=None, help="weights, e.g. transcribe=3,nth_word=1 (default: every kind, voxkit's weights)")
    h.add_argument("--spoken-questions", type=int, default=0, metavar="N",
                   help="also render N spoken questions with espeak-ng (into OUT's folder/questions) and ask them")
    h.set_defaults(func=_chat)

    t = sub.add_parser("tts", help="encode manifests into codec frames: a TTS training corpus")
    t.add_argument("manifests", nargs="+", metavar="MANIFEST")
    t.add_argument("--codec", required=True, metavar="DIR", help="codec folder the TTS model will speak through")
    t.add_argument("--out", required=True, help="corpus folder to write (codes.safetensors + index.jsonl)")
    t.add_argument("--limit", type=int, default=None, help="at most N clips per manifest")
    t.add_argument("--max-seconds", type=float, default=20.0, help="skip clips longer than this (default 20)")
    t.set_defaults(func=_tts)


def _tts(args: argparse.Namespace) -> int:
    from voxkit.errors import DataError
    from voxkit.tts.corpus import CODES_FILE, INDEX_FILE, encode_manifests

    at_least(args.limit, 1, "--limit", "a number of clips per manifest")  # before the codec loads
    if not (math.isfinite(args.max_seconds) and args.max_seconds > 0):
        raise DataError(f"--max-seconds must be a positive number of seconds, got {args.max_seconds}")
    # the encoder makes it once every clip is encoded; into the codec folder, its codes would be read as weights
    output_folder(args.out, "--out", make=False, inputs=[args.codec])
    for name in (CODES_FILE, INDEX_FILE, "codec.json"):
        which = input_clash(Path(args.out) / name, args.manifests)
        if which is not None:
            raise DataError(f"--out {args.out}: its {name} is {which}: write to another folder")
    if not os.path.isdir(args.codec):  # before the codec loader, whose message would not name the flag
        raise DataError(f"--codec {args.codec}: no such folder (the codec model folder the TTS model will speak through)")
    from voxkit.cli.folders import wrong_model
    from voxkit.errors import CheckpointError

    try:
        n = encode_manifests(args.manifests, args.codec, args.out, limit=args.limit, max_seconds=args.max_seconds)
    except CheckpointError as err:  # the codec's loader: a TTS folder given for its codec is named as one
        raise DataError(wrong_model(args.codec, "a codec folder", err, "--codec")) from None
    print(f"{args.out}: {n} clips encoded")
    return 0


def _vocab(args: argparse.Namespace) -> int:
    """Words are tokenised one by one, as the streaming recogniser's text stream does."""

    from voxkit.data.manifest import read_manifest
    from voxkit.errors import VoxkitError
    from voxkit.subset_tokenizer import SUBSET_FILE, SubsetTokenizer
    from voxkit.tokenizer import TekkenTokenizer

    at_least(args.max_pieces, 1, "--max-pieces", "a number of pieces")
    at_least(args.min_count, 1, "--min-count", "a number of occurrences")
    output_folder(args.out, "--out")
    output_file(Path(args.out) / SUBSET_FILE, "--out", inputs=args.manifests, holds="the vocabulary")
    words = [w["word"] for m in args.manifests for r in read_manifest(m, words=True) for w in (r.get("words") or [])]
    if not words:
        raise VoxkitError("the manifests hold no word-aligned rows")
    subset = SubsetTokenizer.from_texts(TekkenTokenizer.shipped(), words, args.max_pieces, args.min_count)
    subset.save(args.out)
    print(f"{args.out}/vocab_subset.json: vocab_size {subset.vocab_size} ({len(words)} words read)")
    return 0


def _chat(args: argparse.Namespace) -> int:
    from voxkit.chat.instructions import KINDS, build_examples, render_spoken_questions, write_examples
    from voxkit.data.manifest import read_manifest
    from voxkit.errors import VoxkitError

    kinds = None
    if args.kinds:
        kinds = {}
        for item in args.kinds.split(","):
            name, _, weight = item.partition("=")
            if name not in KINDS:
                raise VoxkitError(f"unknown instruction kind {name!r} (known: {', '.join(sorted(KINDS))})")
            try:
                kinds[name] = float(weight or 1.0)
            except ValueError:
                raise VoxkitError(f"--kinds: {item!r} is not NAME=WEIGHT") from None
    at_least(args.per_row, 1, "--per-row", "a number of examples per row")
    at_least(args.spoken_questions, 0, "--spoken-questions", "a number of questions (0: none)")
    output_file(args.out, "--out", inputs=args.manifests, holds="the instruction file")
    questions = Path(args.out).parent / "questions"
    if args.spoken_questions and (which := input_clash(questions / "questions.jsonl", args.manifests)) is not None:
        raise VoxkitError(f"--spoken-questions writes {questions / 'questions.jsonl'}, which is {which}: "
                          "give --out in another folder")
    rows = [r for m in args.manifests for r in read_manifest(m, words=True)]
    if not rows and not args.spoken_questions:  # an empty instruction file would only fail later, in training
        raise VoxkitError(f"no rows in {', '.join(args.manifests)}: nothing to make instructions from")
    if args.spoken_questions:
        rows += render_spoken_questions(questions, args.spoken_questions, seed=args.seed)
    examples = build_examples(rows, kinds=kinds, seed=args.seed, per_row=args.per_row)
    if not examples:  # e.g. --kinds spoken_question=1 without --spoken-questions: no row has an answer
        wanted = sorted(k for k, w in kinds.items() if w > 0) if kinds else sorted(KINDS)
        raise VoxkitError(f"no instruction examples from {len(rows)} rows: none fits the kinds {', '.join(wanted)} "
                          "(spoken_question needs --spoken-questions N, language a known language code, "
                          "the word kinds rows with text)")
    n = write_examples(args.out, examples)
    counts: dict[str, int] = {}
    for e in examples:
        counts[e.kind] = counts.get(e.kind, 0) + 1
    print(f"{args.out}: {n} examples from {len(rows)} rows (" + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")")
    return 0
