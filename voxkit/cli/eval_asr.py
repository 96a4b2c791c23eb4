"""``voxkit eval asr MANIFEST``: WER of a recogniser per language and delay, or per minute of one
joined stream (--long-form), beside an optional peer recogniser. Its flags are registered in
:mod:`voxkit.cli.eval` with the other evaluations."""

from __future__ import annotations

import argparse
import math
import random
import sys
from typing import TYPE_CHECKING

from voxkit.cli.eval_rows import check_clips, read_rows, require_references
from voxkit.cli.flags import at_least
from voxkit.cli.outputs import distinct_outputs, model_inputs, output_file, write_text

if TYPE_CHECKING:
    from voxkit.asr.options import RecognizerOptions

DELAYS = "160,480,960,2400"
"""The delays of ``eval asr`` when --delays is not given."""


def run_asr(args: argparse.Namespace) -> int:
    """``voxkit eval asr``: the table of WER per language and delay (or, with --long-form, per minute).

    Ctrl-C after the first delay is done prints (and writes) the delays that finished, marked as
    such, and exits 130: an evaluation of many delays is long, and a finished column is a result.
    """
    import torch

    from voxkit.asr.bundle import load_bundle
    from voxkit.asr.evaluate import FLOOR_SEED, evaluate_manifest, evaluate_peer, load_waves, scores_by_language, with_floor
    from voxkit.asr.peer import load_peer
    from voxkit.asr.segments import DEFAULT_SEGMENTING
    from voxkit.errors import VoxkitError

    _check_asr_flags(args)
    options = _parse_delays(DELAYS if args.delays is None else args.delays)
    outputs = (("--output", args.output, "the table"), ("--hypotheses", args.hypotheses, "the hypotheses"),
               ("--json", args.json, "the JSON report"))
    for flag, path, holds in outputs:
        if path:  # before the evaluation, not after it
            output_file(path, flag, inputs=[args.manifest, *model_inputs(args.model)], holds=holds)
    distinct_outputs((flag, path) for flag, path, _ in outputs)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, lines = read_rows(args.manifest)
    if not rows:
        raise VoxkitError(f"no utterances to evaluate in {args.manifest}")
    require_references(args.manifest, rows, lines)
    line_of = {id(r): n for r, n in zip(rows, lines, strict=True)}
    if args.languages is not None:
        rows = _only_languages(rows, args.languages, args.manifest)
    if args.max_utterances and len(rows) > args.max_utterances:
        rows = random.Random(0).sample(rows, args.max_utterances)
    check_clips(args.manifest, rows, [line_of[id(r)] for r in rows], range(len(rows)))  # row 900 missing: said now, with its line
    peer = load_peer(args.peer, threads=args.threads or 0) if args.peer else None  # a missing extra fails before the long part
    bundle = load_bundle(args.model)
    waves = load_waves(rows, snr_db=args.snr, progress=not args.quiet)
    if args.gain is not None:
        waves = [w * 10 ** (args.gain / 20) for w in waves]  # a quieter (or louder) recording of the same speech
    if args.noise_floor is not None and args.long_form is None:  # long form: through the joined stream, pauses too
        waves = [with_floor(w, args.noise_floor, FLOOR_SEED + i, args.noise_colour) for i, w in enumerate(waves)]  # after the gain
    segmenting = None if args.no_segment else DEFAULT_SEGMENTING
    if args.long_form is not None:
        return _run_long_form(args, bundle, rows, waves, options, segmenting)
    hypotheses: dict[int, list[str]] = {}
    interrupted = ""
    try:
        table = evaluate_manifest(
            bundle.model, bundle.tokenizer, rows, options, batch_size=args.batch_size, progress=not args.quiet,
            hypotheses=hypotheses, waves=waves, segmenting=segmenting, boost=not args.no_boost,
        )
    except KeyboardInterrupt:
        if not hypotheses:
            raise
        table = {d: scores_by_language(rows, texts) for d, texts in hypotheses.items()}
        interrupted = f"{len(table)} of {len(options)} delays finished"
    peer_column, peer_texts, peer_note = None, None, ""
    if peer is not None and not interrupted:
        try:
            peer_scores, peer_texts = evaluate_peer(peer, rows, waves, progress=not args.quiet, own_languages=True)
            peer_column = (peer.name, peer_scores)
            heard = sum(t is not None for t in peer_texts)
            if heard < len(rows):
                peer_note = (f"{peer.name} is made for {', '.join(peer.languages or ())}: its column scores the {heard} of "
                             f"{len(rows)} utterances in that language or without one (its \"all\" is over those; - elsewhere)")
        except KeyboardInterrupt:
            interrupted = f"every delay finished, {peer.name} did not"
    if interrupted:
        interrupted = f"interrupted: {interrupted}; the table holds what finished"
    _report_asr(args, bundle, rows, table, hypotheses, peer_column, peer_texts, interrupted, peer_note)
    if interrupted:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def _report_asr(args: argparse.Namespace, bundle: object, rows: list[dict], table: dict[int, dict[str, float]],
                hypotheses: dict[int, list[str]], peer_column: tuple[str, dict[str, float]] | None,
                peer_texts: list[str | None] | None, interrupted: str, peer_note: str = "") -> None:
    """The files first (a reader that stops early, | head, must not cost them), then the table."""
    import json

    from voxkit.asr.evaluate import hypotheses_jsonl, report_tables, scores_json

    text, diffs = report_tables(rows, table, hypotheses, peer_column)
    if interrupted:
        text = f"{interrupted}\n\n{text}"
    if peer_note:
        text = text.replace("\n\nChange in WER", f"\n\n{peer_note}\n\nChange in WER", 1) if diffs else f"{text}\n\n{peer_note}"
    if args.output:
        write_text(args.output, text + "\n")
    if args.hypotheses:
        write_text(args.hypotheses, hypotheses_jsonl(rows, hypotheses, {peer_column[0]: peer_texts} if peer_column else None))
    if args.json:
        record = {"manifest": args.manifest, "model": str(bundle.folder), "snr_db": args.snr, "gain_db": args.gain,
                  "noise_floor_dbfs": args.noise_floor,
                  "noise_colour": args.noise_colour if args.noise_floor is not None else None,
                  "quiet_input_raised": not args.no_boost, "cut_at_pauses": not args.no_segment,
                  "interrupted": bool(interrupted), **scores_json(rows, table, peer_column, diffs, peer_texts)}
        write_text(args.json, json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    print(f"WER (%) of {bundle.folder} on {args.manifest} ({len(rows)} utterances{_conditions(args)})\n")
    print(text)


def _run_long_form(
    args: argparse.Namespace, bundle: object, rows: list[dict], waves: list, options: list, segmenting: object
) -> int:
    """The long-form table. Its header gives the stream's real length and how often the utterances
    repeat: the stream holds whole utterances (the first always), so a request shorter than one
    utterance gives a longer stream, and a manifest shorter than the request is cycled. Ctrl-C
    during the stream prints (and writes) the minutes it heard, marked as interrupted, exit 130."""
    import json

    from voxkit.asr.long_form import evaluate_long_form, format_long_form
    from voxkit.asr.options import RecognizerOptions

    if len(options) == 1:
        delay = options[0]
    else:
        delay = RecognizerOptions.from_steps(bundle.model.args.default_delay_tokens)
        if args.delays is not None:  # named by the user, not the default list
            print(f"voxkit eval asr: --long-form runs one delay: the model's {delay.delay_ms} ms "
                  f"(--delays names {len(options)}; name one to choose)", file=sys.stderr)
    result = evaluate_long_form(
        bundle.model, bundle.tokenizer, waves, [r["text"] for r in rows], args.long_form, delay.delay_steps,
        progress=not args.quiet, segmenting=segmenting, batch_size=args.batch_size, boost=not args.no_boost,
        floor_dbfs=args.noise_floor, floor_colour=args.noise_colour,
    )
    text = format_long_form(result, delay.delay_ms)
    if result.heard_seconds is not None:  # Ctrl-C during the stream: the minutes it heard
        text = (f"interrupted: the stream was heard for {result.heard_seconds / 60:.1f} of {result.stream_seconds / 60:.1f} "
                f"minutes; the table holds the {len(result.minute_of)} utterances that ended in them\n\n{text}")
    cut = "whole, not cut at pauses" if segmenting is None else "cut at pauses"
    noise = _conditions(args)
    if args.output:  # before the table, as above
        write_text(args.output, text + "\n")
    if args.json:
        record = {"manifest": args.manifest, "model": str(bundle.folder), "minutes_asked": args.long_form, "snr_db": args.snr,
                  "gain_db": args.gain, "noise_floor_dbfs": args.noise_floor,
                  "noise_colour": args.noise_colour if args.noise_floor is not None else None, "quiet_input_raised": not args.no_boost,
                  "cut_at_pauses": segmenting is not None, **result.to_json(delay.delay_ms)}
        write_text(args.json, json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    print(f"{bundle.folder} on {args.manifest}: {result.describe(len(rows))} (--long-form {args.long_form:g}){noise}; {cut}\n")
    print(text)
    if result.heard_seconds is not None:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def _conditions(args: argparse.Namespace) -> str:
    """What was done to the clips, for the table's title: noise, gain, and the level left as it is."""
    parts = [f"white noise at {args.snr:g} dB SNR"] if args.snr is not None else []
    if args.gain is not None:
        parts.append(f"scaled by {args.gain:+g} dB")
    if args.noise_floor is not None:
        colour = "" if args.noise_colour == "white" else f" ({args.noise_colour})"
        parts.append(f"over a noise floor at {args.noise_floor:g} dBFS{colour}")
    if args.no_boost:
        parts.append("quiet input not raised")
    return "".join(f", {p}" for p in parts)


def _check_asr_flags(args: argparse.Namespace) -> None:
    """The numeric flags of ``eval asr``, checked before the manifest is read and any model loads."""
    from voxkit.errors import VoxkitError

    at_least(args.max_utterances, 1, "--max-utterances", "a number of utterances")
    at_least(args.batch_size, 1, "--batch-size", "a number of streams")
    at_least(args.threads, 1, "--threads", "a number of CPU threads")
    if args.snr is not None and not math.isfinite(args.snr):
        raise VoxkitError(f"--snr takes a finite ratio in dB, got {args.snr:g}")  # NaN noise would score silence
    if args.gain is not None and not -100 <= args.gain <= 40:
        raise VoxkitError(f"--gain takes dB between -100 and 40, got {args.gain:g}")
    if args.noise_colour != "white" and args.noise_floor is None:  # it colours the floor only: silently nothing otherwise
        raise VoxkitError(f"--noise-colour {args.noise_colour} colours the --noise-floor: give --noise-floor DBFS too")
    if args.noise_floor is not None and not -120 <= args.noise_floor <= 0:  # NaN too
        raise VoxkitError(f"--noise-floor takes dBFS between -120 and 0, got {args.noise_floor:g}")
    if args.long_form is not None and not 0 < args.long_form <= 24 * 60:
        raise VoxkitError(f"--long-form takes minutes above 0 and at most {24 * 60}, got {args.long_form:g}")
    if args.long_form is not None and (args.peer or args.hypotheses):  # they were silently not done
        raise VoxkitError("--long-form scores one joined stream minute by minute; --peer and --hypotheses score "
                          "utterances alone: run them without --long-form")


def _parse_delays(text: str) -> list[RecognizerOptions]:
    """--delays as validated RecognizerOptions, duplicates dropped; an empty list is refused, as it
    would print a table with no column and exit 0 as if something had been measured."""
    from voxkit.asr.options import RecognizerOptions
    from voxkit.errors import VoxkitError

    try:
        delays = [int(d) for d in text.split(",") if d.strip()]
    except ValueError:
        raise VoxkitError(f"--delays must be integers in ms, got {text!r}") from None
    if not delays:
        raise VoxkitError(f"--delays names no delay, got {text!r} (give e.g. 480 or 160,480,960)")
    return [RecognizerOptions.from_ms(d) for d in dict.fromkeys(delays)]


def _only_languages(rows: list[dict], codes: str, manifest: str) -> list[dict]:
    """The rows of the --languages codes (spaces around the commas allowed). Codes the manifest
    lacks are named on stderr, and a filter that keeps nothing says which languages there are."""
    from voxkit.errors import VoxkitError

    keep = list(dict.fromkeys(c.strip() for c in codes.split(",") if c.strip()))
    if not keep:
        raise VoxkitError(f"--languages names no language, got {codes!r} (give e.g. en or en,es)")
    from voxkit.asr.evaluate import language_of

    present = sorted({language_of(r) for r in rows} - {"?"})
    has = f"it has {', '.join(present)}" if present else "its rows have no language field"
    if present and any(language_of(r) == "?" for r in rows):
        has += " and rows without a language field"
    kept = [r for r in rows if language_of(r) in keep]
    if not kept:
        raise VoxkitError(f"no utterances to evaluate in {manifest} for --languages {','.join(keep)}: {has}")
    missing = [c for c in keep if c not in present]
    if missing:
        print(f"voxkit eval asr: --languages {','.join(missing)}: not in {manifest} ({has}); scoring the others",
              file=sys.stderr)
    return kept
