"""``voxkit eval asr MANIFEST``: WER of a recogniser per language and delay, as a table (voxkit.cli.eval_asr).
``voxkit eval codec MANIFEST``: objective quality of a speech codec beside classical codecs, as a table.
``voxkit eval tts MANIFEST``: voice cloning on held-out voices: WER of an independent recogniser and speaker similarity."""

from __future__ import annotations

import argparse
import math
import os
import sys

from voxkit.asr.peer import PEERS
from voxkit.audio.constants import STEP_MS
from voxkit.cli.eval_asr import DELAYS, run_asr
from voxkit.cli.eval_rows import check_clips, read_rows, require_references
from voxkit.cli.flags import at_least
from voxkit.cli.folders import wrong_model
from voxkit.cli.outputs import model_inputs, output_file, write_text

SEEDS = 2**64
"""Seeds torch accepts: 0 .. 2^64 - 1."""

CODEC_PEERS = "codec2-2400,codec2-3200,opus-6000"
"""The peers of ``eval codec`` (voxkit.codec.peers.PEER_CODECS, named here so that --help imports no codec code)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="evaluate models on a manifest")
    sub = p.add_subparsers(dest="eval_kind", metavar="KIND", required=True)
    a = sub.add_parser("asr", help="word error rate of a recogniser, per language and delay")
    a.add_argument("manifest", help="JSONL manifest with audio and text")
    a.add_argument("--model", default=None, help="recogniser folder (default: the bundled model)")
    a.add_argument("--delays", default=None, help=f"comma-separated delays in ms (multiples of {STEP_MS}; default {DELAYS})")
    a.add_argument("--languages", default=None, help="only these languages (comma-separated)")
    a.add_argument("--max-utterances", type=int, default=None, help="evaluate a seeded random subset of this size")
    a.add_argument("--snr", type=float, default=None, metavar="DB",
                   help="add white noise at this signal-to-noise ratio in dB (same noise at every delay; robustness check)")
    a.add_argument("--noise-floor", type=float, default=None, metavar="DBFS",
                   help="add white noise at this level (dB below full scale, e.g. -50) under everything, pauses included: "
                        "a microphone's noise floor, which the pause cutter hears (with --long-form: through the stream)")
    a.add_argument("--noise-colour", default="white", choices=("white", "pink", "brown"),
                   help="the --noise-floor's spectrum: white (hiss), pink (a room, a fan) or brown (a rumble)")
    a.add_argument("--batch-size", type=int, default=32,
                   help="streams decoded in lock-step (32: ~1.4x faster than 8 on 2 cores, same result)")
    a.add_argument("--threads", type=int, default=None)
    a.add_argument("--output", default=None, help="also write the table (markdown) to this file")
    a.add_argument("--hypotheses", default=None, metavar="FILE",
                   help="also write every transcript as JSONL (audio, language, delay_ms, reference, hypothesis, errors, words)")
    a.add_argument("--json", default=None, metavar="OUT",
                   help="also write the numbers of the printed tables, unrounded, as JSON (with --long-form: its minutes)")
    a.add_argument("--peer", default=None, choices=tuple(PEERS),
                   help="also score this reference recogniser on the same clips and normaliser (needs the peer extra)")
    a.add_argument("--long-form", type=float, default=None, metavar="MINUTES",
                   help="join the utterances (with pauses) into ONE stream of this many minutes and print WER per minute "
                        "beside the same utterances alone, with resident memory, the change per ten minutes with its 95 %% "
                        "interval, and the utterances alone again behind 20 ms of silence as a yardstick of a minute's "
                        "noise (one delay: --delays if it names one, else the model's)")
    a.add_argument("--no-segment", action="store_true",
                   help="hand the model each stream whole instead of cutting long audio at pauses (what transcribe does)")
    a.add_argument("--no-boost", action="store_true",
                   help="hand the model each clip's level as it is instead of raising quiet input (what transcribe does)")
    a.add_argument("--gain", type=float, default=None, metavar="DB",
                   help="scale every clip by this many dB before anything else (e.g. -30: a quiet microphone), "
                        "for the recogniser and the peer alike")
    a.add_argument("--quiet", action="store_true", help="no progress bars (they go to stderr, also into a log)")
    a.set_defaults(func=run_asr)
    c = sub.add_parser("codec", help="objective quality of a speech codec beside classical codecs (Codec2, Opus)")
    c.add_argument("manifest", help="JSONL manifest with audio and text")
    c.add_argument("--model", default=None, metavar="DIR", help="voxkit codec folder (default: none; only the peers are scored)")
    c.add_argument("--peers", default=CODEC_PEERS,
                   help=f"comma-separated classical codecs scored on the same clips (default and choices: {CODEC_PEERS})")
    c.add_argument("--no-peers", action="store_true", help="score the --model codec alone")
    c.add_argument("--asr", default=None, choices=(*PEERS, "none"),
                   help="independent recogniser for the WER column (default: whisper-tiny.en when the peer extra is "
                        "installed, else no WER; named explicitly it must load; none: no WER, and rows need no text)")
    c.add_argument("--limit", type=int, default=None, metavar="N", help="only the manifest's first N clips")
    c.add_argument("--json", default=None, metavar="OUT", help="also write per-clip and per-codec numbers as JSON")
    c.add_argument("--quiet", action="store_true", help="no progress bar (it goes to stderr)")
    c.set_defaults(func=run_codec)
    h = sub.add_parser("chat", help="audio-chat models: transcription WER beside Whisper tiny.en, instruction accuracy")
    h.add_argument("manifests", nargs="+", metavar="MANIFEST", help="JSONL manifests with audio and text")
    h.add_argument("--model", action="append", default=[], metavar="DIR", help="chat model folder; repeat to compare (e.g. encoders)")
    h.add_argument("--instructions", action="append", default=[], metavar="FILE", help="held-out instruction file (voxkit data chat)")
    h.add_argument("--peer", default="whisper-tiny.en", choices=(*PEERS, "none"), help="reference recogniser on the same clips")
    h.add_argument("--language", default="en", help="language code of the transcription request")
    h.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N clips / examples of each file")
    h.add_argument("--json", default=None, metavar="OUT", help="also write the numbers and every output as JSON")
    h.add_argument("--quiet", action="store_true", help="no progress bars")
    h.set_defaults(func=run_chat)
    t = sub.add_parser("tts", help="voice cloning on held-out voices: WER of an independent recogniser, speaker similarity")
    t.add_argument("manifest", help="JSONL manifest with audio, text and speaker (engine, language if known)")
    t.add_argument("--model", action="append", default=[], metavar="DIR",
                   help="TTS model folder; repeat to compare on the same rows and references "
                        "(default: the bundled model, where this install has one)")
    t.add_argument("--limit", type=int, default=None, metavar="N", help="only the manifest's first N rows that have a reference")
    t.add_argument("--steps", type=int, default=7, help="Euler steps of the flow head")
    t.add_argument("--cfg", type=float, default=1.2, help="classifier-free guidance strength")
    t.add_argument("--seed", type=int, default=0,
                   help="seed of the reference choice and of the sampling (row n samples with seed + n)")
    t.add_argument("--reference-text", action="store_true", help="also give the model the reference clip's transcript")
    t.add_argument("--recogniser", default="whisper-tiny.en", choices=(*PEERS, "none"),
                   help="independent recogniser for the WER columns (needs the peer extra; none: no WER)")
    t.add_argument("--device", default="cpu", help="device of the TTS model (cpu, cuda)")
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--json", default=None, metavar="OUT", help="also write per-row and per-model numbers as JSON")
    t.add_argument("--quiet", action="store_true", help="no progress bar (it goes to stderr)")
    t.set_defaults(func=run_tts)


def run_chat(args: argparse.Namespace) -> int:
    """``voxkit eval chat``: the flags and references checked here, the evaluation in voxkit.cli.chat.

    A negative --limit would slice clips off the end of every file and 0 would empty them, so it
    is refused in the user's words before any model loads; an empty reference would be left out
    of the WER without a word, as in ``eval asr``.
    """
    from voxkit.cli.chat import run_eval
    from voxkit.data.manifest import read_manifest

    at_least(args.limit, 1, "--limit", "a number of clips and examples")
    if args.json:  # before the evaluation, not after it
        output_file(args.json, "--json", inputs=[*args.manifests, *args.instructions, *model_inputs(*args.model)],
                    holds="the JSON report")
    for manifest in args.manifests:
        require_references(manifest, read_manifest(manifest, required=("audio", "text"), any_text=True))
    return run_eval(args)


def run_codec(args: argparse.Namespace) -> int:
    import json

    from voxkit.codec.evaluate import evaluate_codecs, format_table, load_peers, load_recogniser, require_metrics
    from voxkit.codec.peers import peer_codec_names
    from voxkit.errors import VoxkitError

    names = [] if args.no_peers else peer_codec_names(args.peers)
    if args.model is None and not names:
        raise VoxkitError("nothing to evaluate: give --model DIR, or name peers with --peers (and leave out --no-peers)")
    if args.limit is not None and args.limit < 1:
        raise VoxkitError(f"--limit takes a number of clips of at least 1, got {args.limit}")
    if args.json:  # before the evaluation, not after it
        output_file(args.json, "--json", inputs=[args.manifest, *model_inputs(args.model)], holds="the JSON report")
    rows, lines = read_rows(args.manifest) if args.asr != "none" else _rows_without_text(args.manifest)
    if not rows:
        raise VoxkitError(f"no utterances to evaluate in {args.manifest}")
    rows, lines = (rows[: args.limit], lines[: args.limit]) if args.limit else (rows, lines)
    check_clips(args.manifest, rows, lines, range(len(rows)))
    codecs: list = load_peers(names, model_given=args.model is not None)  # a missing tool or extra fails before the long part
    require_metrics()
    if args.model is not None:
        codecs.insert(0, _load_codec(args.model))
    else:
        print("voxkit eval codec: no --model given: scoring the classical peers only", file=sys.stderr)
    recogniser, note = load_recogniser(args.asr)
    if recogniser is not None:  # the texts are only for the WER column
        require_references(args.manifest, rows, lines, "no reference transcript to score the WER against (or --asr none)")
    result = evaluate_codecs(rows, codecs, recogniser, progress=not args.quiet, notes=[note] if note else [])
    usage = getattr(codecs[0], "usage_note", lambda: None)()
    if usage:
        result.notes.append(usage)
    if args.json:  # before the table: a reader that stops early (| head) must not cost the file
        write_text(args.json, json.dumps({"manifest": args.manifest, **result.to_json()}, indent=1, ensure_ascii=False) + "\n")
    wer = f"; WER by {result.recogniser}" if result.recogniser else ""
    clips = f"{len(rows)} clip{'s' if len(rows) != 1 else ''}"
    print(f"Codec quality on {args.manifest} ({clips}, each output compared with its original at 16 kHz{wer})\n")
    print(format_table(result))
    return 0


def _rows_without_text(manifest: str) -> tuple[list[dict], list[int]]:
    """The rows as :func:`read_rows` reads them, ``text`` not required: with --asr none no WER is
    scored, and the quality columns compare audio with audio (recordings without transcripts)."""
    from voxkit.data.manifest import iter_manifest, read_manifest

    rows = read_manifest(manifest, required=("audio",))  # audio checked to be a path, resolved beside the manifest
    return rows, [n for n, _, _ in iter_manifest(manifest)]  # read_manifest keeps one row per non-empty line, in order


def run_tts(args: argparse.Namespace) -> int:
    import json

    import torch

    from voxkit.asr.peer import load_peer
    from voxkit.errors import VoxkitError
    from voxkit.tts.evaluate import choose_references, evaluate_tts, format_table, speaker_synthesizer
    from voxkit.tts.speaker_embedding import load_embedder

    if args.limit is not None and args.limit < 1:
        raise VoxkitError(f"--limit takes a number of rows of at least 1, got {args.limit}")
    if args.steps < 1:
        raise VoxkitError(f"--steps must be at least 1, got {args.steps}")
    if not (math.isfinite(args.cfg) and args.cfg >= 0):  # NaN passes a plain "< 0" test
        raise VoxkitError(f"--cfg must be a finite number of at least 0, got {args.cfg:g}")
    if not 0 <= args.seed < SEEDS:  # torch's range; found at the first row otherwise, after the models load
        raise VoxkitError(f"--seed takes a whole number from 0 to 2^64 - 1, got {args.seed}")
    at_least(args.threads, 1, "--threads", "a number of CPU threads")
    if args.json:  # before the evaluation, not after it
        output_file(args.json, "--json", inputs=[args.manifest, *model_inputs(*args.model)], holds="the JSON report")
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, lines = read_rows(args.manifest)
    require_references(args.manifest, rows, lines, "no text to speak")
    pairs, skipped = choose_references(rows, args.seed)
    if not pairs:
        raise VoxkitError(f"no rows to evaluate in {args.manifest}: {'; '.join(skipped) or 'it is empty'}")
    pairs = pairs[: args.limit] if args.limit else pairs
    if args.seed + len(pairs) > SEEDS:  # row n samples with seed + n
        raise VoxkitError(f"--seed {args.seed}: row n samples with seed + n, which passes 2^64 - 1; give a smaller seed")
    check_clips(args.manifest, rows, lines, sorted({k for pair in pairs for k in pair}))
    recogniser = None
    if args.recogniser != "none":
        try:
            recogniser = load_peer(args.recogniser, threads=args.threads or 0)  # a missing extra fails before the long part
        except VoxkitError as err:
            raise VoxkitError(str(err).replace("--peer ", "--recogniser ", 1)) from None
    embedder = load_embedder()
    speakers = _load_speakers(args.model, args.device)
    models = {name: speaker_synthesizer(s, steps=args.steps, cfg=args.cfg, seed=args.seed) for name, s in speakers.items()}
    result = evaluate_tts(rows, models, recogniser, embedder, limit=args.limit, seed=args.seed,
                          reference_text=args.reference_text, progress=not args.quiet)
    if args.json:  # before the table: a reader that stops early (| head) must not cost the file
        write_text(args.json, json.dumps({"manifest": args.manifest, "models": {n: str(s.folder) for n, s in speakers.items()},
                                           "steps": args.steps, "cfg": args.cfg, "seed": args.seed,
                                           "reference_text": args.reference_text, **result.to_json()},
                                          indent=1, ensure_ascii=False) + "\n")
    evaluated = sum(1 for r in result.rows if r.model == "manifest")
    wer = f"WER by {result.recogniser}; " if result.recogniser else ""
    print(f"Voice cloning on {args.manifest} ({evaluated} rows; each voice cloned from another clip of its speaker; "
          f"{wer}similarity by {result.embedder}; {args.steps} steps, CFG {args.cfg:g}, seed {args.seed})\n")
    print(format_table(result))
    return 0


def _load_speakers(folders: list[str], device: str) -> dict[str, object]:
    """{column label: loaded Speaker}: the folder's name, or its path where two names clash; the bundled model by default."""
    from voxkit.errors import CheckpointError, VoxkitError
    from voxkit.tts.api import Speaker

    for folder in folders:
        if not os.path.isdir(folder):
            raise VoxkitError(f"--model {folder}: {'not a folder' if os.path.exists(folder) else 'no such folder'}")
    speakers = []
    for folder in folders:
        try:
            speakers.append(Speaker.from_pretrained(folder, device=device))
        except CheckpointError as err:
            raise VoxkitError(wrong_model(folder, "a TTS model folder", err)) from None
    if not folders:
        speakers.append(Speaker.from_pretrained(None, device=device))
    names = [os.path.basename(os.path.normpath(str(s.folder))) for s in speakers]
    if len(set(names)) < len(names):
        names = [str(s.folder) for s in speakers]
    if len(set(names)) < len(names):
        raise VoxkitError("--model: the same folder is named twice")
    return dict(zip(names, speakers, strict=True))


def _load_codec(folder: str) -> object:
    """voxkit's codec from ``folder``, labelled "voxkit"; imported only here, as it is the one heavy model."""
    from voxkit.codec.evaluate import Labelled
    from voxkit.errors import CheckpointError, VoxkitError

    if not os.path.isdir(folder):
        raise VoxkitError(f"--model {folder}: {'not a folder' if os.path.exists(folder) else 'no such folder'}")
    from voxkit.codec.api import Codec

    try:
        return Labelled(Codec.from_pretrained(folder), "voxkit")
    except CheckpointError as err:
        raise VoxkitError(wrong_model(folder, "a codec folder", err)) from None
