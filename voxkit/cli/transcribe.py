"""``voxkit transcribe``: live transcription of files, stdin or a microphone (whisper's conventions).

Words are printed as soon as the model commits them (one decoder step per 80 ms of audio, after
the chosen delay). ``--realtime`` paces files at real time, as a live source would arrive;
otherwise audio is fed as fast as the machine can go.

Mistakes that would waste a model load (a device PyTorch cannot use, an output folder that cannot
be written, two inputs that would write the same output files, a malformed ``--language``) are
reported before the model loads, each as one line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from voxkit.asr.options import MAX_DELAY_MS, MIN_DELAY_MS, RecognizerOptions
from voxkit.audio.constants import ASR_SAMPLE_RATE, ASR_SAMPLES_PER_STEP, STEP_MS
from voxkit.cli.flags import at_least
from voxkit.cli.outputs import output_folder, write_text
from voxkit.devices import usable_device
from voxkit.errors import AudioError, VoxkitError

FORMATS = ("txt", "srt", "vtt", "json", "jsonl")
FILE_CHUNK_SECONDS = 30  # files not paced at real time are pushed in pieces of this length


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("transcribe", help="live speech recognition of files, stdin or the microphone")
    p.add_argument("inputs", nargs="*", help="audio files (wav/flac/ogg/mp3), or - for stdin")
    p.add_argument("--model", default=None, help="recogniser folder (default: the bundled small model)")
    p.add_argument("--mic", action="store_true", help="transcribe the default microphone until Ctrl-C")
    p.add_argument("--realtime", action="store_true", help="pace file input at real time (like a live source)")
    p.add_argument(
        "--delay-ms", type=int, default=None,
        help=f"transcription delay, {MIN_DELAY_MS}..{MAX_DELAY_MS} in steps of {STEP_MS} (default: the model's, 480)",
    )
    p.add_argument(
        "--language", default=None,
        help="expected language, a two-letter code such as en, fr, es, de; checked against the languages the model records "
        "and otherwise informational (the model detects the language itself)",
    )
    p.add_argument(
        "-f", "--output-format", choices=(*FORMATS, "all"), default=None, help="txt, srt, vtt, json, jsonl (event stream) or all"
    )
    p.add_argument(
        "-o", "--output-dir", default=None,
        help="write NAME.FORMAT files here instead of stdout (NAME: the input's file name without its extension; stdin: "
        "'stdin'); inputs with the same NAME (a/x.wav b/x.wav) are refused, since they would overwrite each other",
    )
    p.add_argument("--word-timestamps", action="store_true", help="one cue per word in srt/vtt; print word times live")
    p.add_argument(
        "--format", dest="raw_format", default=None, choices=("auto", "wav", "s16le", "s32le", "f32le", "u8"),
        help="stdin encoding (auto: WAV, MP3, Ogg and AIFF are told by their first bytes and decoded as they arrive; "
        "FLAC and formats libsndfile lacks are refused with the command that decodes them; anything else is read as "
        "s16le, with a warning if it looks like 32-bit float); only with -",
    )
    p.add_argument("--sample-rate", type=int, default=None,
                   help=f"sample rate of raw stdin audio (default {ASR_SAMPLE_RATE}); only with -")
    p.add_argument("--channels", type=int, default=None, help="channels of raw stdin audio (default 1); only with -")
    p.add_argument("--stats", action="store_true", help="print real-time factor and latency to stderr")
    p.add_argument(
        "--threads", type=int, default=1,
        help="CPU threads (default 1: a stream's small per-step work runs fastest on one)",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N); checked before the model loads")
    p.add_argument(
        "--no-segment", action="store_true",
        help="hand the model long audio whole instead of cutting it at pauses into pieces that fit its window "
             "(only for a model trained on long streams; the bundled one is not)",
    )
    p.add_argument(
        "--no-boost", action="store_true",
        help="hand the model the input's level as it is (by default quiet input, such as a microphone at low gain, "
             "is raised to the level the model was trained at, from the audio heard so far)",
    )
    p.set_defaults(func=run)


def _say_listening(device: str, rate: int) -> None:
    """Tell the person at the microphone that it now records: the model loads first, and what is
    said before this line is not heard."""
    print(f"voxkit transcribe: listening on {device} ({rate} Hz); Ctrl-C stops", file=sys.stderr, flush=True)


def _sources(args: argparse.Namespace) -> Iterator[tuple[str, Callable[[], Iterator[np.ndarray]]]]:
    """(name, opener) for every input; the opener returns chunks of 16 kHz mono float32.

    Opening is deferred so that one unreadable file is reported and skipped, not fatal.
    """
    from voxkit.audio.io import load_audio
    from voxkit.audio.stream import read_stdin

    if args.mic:
        yield "microphone", lambda: args.microphone
        return
    for name in args.inputs:
        if name == "-":
            yield "stdin", lambda: read_stdin(args.raw_format, args.sample_rate, args.channels,
                                              stream=getattr(args, "stdin_buffer", None))
            continue

        def chunks(path: str = name) -> Iterator[np.ndarray]:
            if os.path.isdir(path):
                raise AudioError(f"{path} is a folder, not an audio file; give its files, e.g. {os.path.join(path, '*.wav')}")
            wav = load_audio(path, ASR_SAMPLE_RATE).numpy()
            size = ASR_SAMPLES_PER_STEP if args.realtime else ASR_SAMPLE_RATE * FILE_CHUNK_SECONDS
            return (wav[i : i + size] for i in range(0, len(wav), size))

        yield name, chunks


class LivePrinter:
    """Prints committed words on one line as they come (with times when asked)."""

    def __init__(self, out: TextIO, word_times: bool) -> None:
        self.out, self.word_times, self.column = out, word_times, 0

    def event(self, ev: Any) -> None:
        if ev.kind == "word":
            text = f"[{ev.start:6.2f}] {ev.text}\n" if self.word_times else ev.text + " "
            self.out.write(text)
            self.out.flush()
            self.column = 0 if self.word_times else self.column + len(text)
        elif ev.kind == "final" and not self.word_times:
            self.out.write("\n")
            self.out.flush()
            self.column = 0

    def end_line(self) -> None:
        """End a line that an input's failure left open, so that the next input's words start their own."""
        if self.column:
            self.out.write("\n")
            self.out.flush()
            self.column = 0


def _event_json(ev: Any) -> str:
    if ev.kind == "word":
        data = {"type": "word", "word": ev.text, "start": round(ev.start, 3), "end": round(ev.end, 3)}
    elif ev.kind == "delta":
        data = {"type": "delta", "text": ev.text, "start": round(ev.start, 3)}
    else:
        data = {"type": "final", "text": ev.text, "duration": round(ev.end, 3)}
    return json.dumps(data, ensure_ascii=False)


class _EventSink:
    """One input's events: printed live, kept as JSON lines, and timed against the wall clock."""

    def __init__(self, printer: LivePrinter | None, keep_jsonl: bool, live_stdout: bool, started: float) -> None:
        self.printer, self.keep_jsonl, self.live_stdout, self.started = printer, keep_jsonl, live_stdout, started
        self.jsonl: list[str] = []
        self.lag: list[float] = []  # seconds from each word's start in the audio to its emission

    def __call__(self, events: list[Any]) -> None:
        now = time.perf_counter() - self.started
        for ev in events:
            if self.printer:
                self.printer.event(ev)
            if self.keep_jsonl:
                line = _event_json(ev)
                self.jsonl.append(line)
                if self.live_stdout:
                    print(line, flush=True)
            if ev.kind == "word":
                self.lag.append(now - ev.start)


def _announce(name: str) -> bool:
    """Print the "# NAME" header that tells several inputs' transcripts apart (on stderr, so that
    stdout stays the transcripts alone: JSON, SRT, JSON lines that a program reads).

    Why only once audio has arrived: an input that cannot be opened or holds no audio gets no
    transcript, so a header would announce nothing; its error line names it already. Returns True.
    """
    print(f"# {name}", file=sys.stderr, flush=True)
    return True


def check_language_code(code: str) -> None:
    """``--language`` must look like the data kit's codes; a near miss (EN, en-US, en_GB) gets a suggestion."""
    from voxkit.data.text import LANGUAGE_CODE, LANGUAGES

    if LANGUAGE_CODE.fullmatch(code):
        return

    guess = re.split(r"[-_]", code)[0].lower()
    hint = f" (did you mean {guess}?)" if LANGUAGE_CODE.fullmatch(guess) else ""
    raise VoxkitError(f"--language {code!r} is not a two-letter language code such as {', '.join(LANGUAGES)}{hint}")


def model_languages(model: Any) -> tuple[str, ...] | None:
    """The languages a recogniser records (a ``languages`` list at the top of its params.json), or None."""
    recorded = model.args.decoder.extra.get("languages")
    if isinstance(recorded, list) and recorded and all(isinstance(x, str) for x in recorded):
        return tuple(recorded)
    return None


def output_names(inputs: list[str], mic: bool, folder: str) -> list[str]:
    """The NAME of each input's NAME.FORMAT files; two inputs with one NAME are refused (they would overwrite)."""
    if mic:
        return ["microphone"]
    names = ["stdin" if x == "-" else Path(x).stem for x in inputs]
    first: dict[str, str] = {}
    for given, name in zip(inputs, names, strict=True):
        if name not in first:
            first[name] = given
        elif first[name] == given:
            raise VoxkitError(f"{given} is given twice; with -o each input must be given once")
        else:
            raise VoxkitError(
                f"{first[name]} and {given} would both be written as {name}.* in {folder}: rename one, "
                "or transcribe them into different -o folders"
            )
    return names


def _stdin_layout(args: argparse.Namespace) -> None:
    """--format, --sample-rate and --channels describe audio on stdin; given without ``-`` they are refused.

    A file is decoded from its own header, so these flags would be silently ignored for it: a user
    with a headerless PCM file would see it refused as undecodable while believing the flags were
    read. Saying where they apply, with the command that reads such a file, is the useful answer.
    """
    # --format auto is what a file gets anyway (a script that always passes it is not refused)
    given = [flag for flag, value in (("--format", None if args.raw_format == "auto" else args.raw_format),
                                      ("--sample-rate", args.sample_rate), ("--channels", args.channels)) if value is not None]
    if given and "-" not in args.inputs:
        flags = f"{' and '.join(given)} {'describes' if len(given) == 1 else 'describe'} audio on stdin (-)"
        if args.mic:
            raise VoxkitError(f"{flags}; --mic reads the microphone at its own rate: drop {' and '.join(given)}")
        raise VoxkitError(f"{flags}, not a file, which is read by its own header; a raw PCM file is read as: "
                          "voxkit transcribe - --format s16le --sample-rate 16000 < talk.raw")
    args.raw_format = args.raw_format or "auto"
    args.sample_rate = ASR_SAMPLE_RATE if args.sample_rate is None else args.sample_rate
    args.channels = 1 if args.channels is None else args.channels


def run(args: argparse.Namespace) -> int:
    if not args.inputs and not args.mic:
        raise VoxkitError("give audio files, - for stdin, or --mic")
    if args.mic and args.inputs:
        raise VoxkitError("--mic takes no input files")
    if args.inputs.count("-") > 1:
        raise VoxkitError("stdin (-) can be read only once")
    if args.output_dir and not args.output_format:
        args.output_format = "all"
    if args.output_format == "all" and not args.output_dir:  # five formats one after the other on stdout is no format
        raise VoxkitError("-f all writes one file per format: give -o DIR (or choose one format for stdout)")
    if args.delay_ms is not None:
        RecognizerOptions.from_ms(args.delay_ms)  # a bad value is reported before the model loads
    if args.language is not None:
        check_language_code(args.language)
    _stdin_layout(args)
    if "-" in args.inputs:  # raw stdin's layout, checked before the model loads (16 would read 0.1 s as 100 s)
        from voxkit.audio.io import check_sample_rate

        if sys.stdin is None or sys.stdin.isatty():  # keys typed at a terminal are no audio: it would wait for ever
            raise VoxkitError("- reads audio from standard input, but nothing is piped to it "
                              "(arecord -f S16_LE -r 16000 -c 1 | voxkit transcribe -, or voxkit transcribe - < talk.wav); "
                              "for the microphone use --mic")

        check_sample_rate(args.sample_rate, "--sample-rate")
        at_least(args.channels, 1, "--channels", "a number of channels")
    usable_device(args.device)
    stems = output_names(args.inputs, args.mic, args.output_dir) if args.output_dir else []
    out_dir = output_folder(args.output_dir) if args.output_dir else None
    if "-" in args.inputs:  # drained from now on: a live source must not stall while the model loads
        from voxkit.audio.stdin_buffer import buffer_stdin

        args.stdin_buffer = buffer_stdin()
    from voxkit.api import Transcriber
    from voxkit.asr.transcript import render
    from voxkit.audio.stream import read_microphone

    args.microphone = read_microphone(on_open=_say_listening) if args.mic else None  # fails early without a device

    asr = Transcriber(args.model, delay_ms=args.delay_ms, device=args.device, threads=args.threads, segment=not args.no_segment,
                      boost=not args.no_boost)
    known = model_languages(asr.bundle.model)
    if args.language is not None and known is not None and args.language not in known:
        raise VoxkitError(f"--language {args.language}: the model {asr.model_dir} knows {', '.join(known)}")
    formats = list(FORMATS) if args.output_format == "all" else ([args.output_format] if args.output_format else [])
    live_stdout = not args.output_dir and (not formats or formats == ["jsonl"])
    failures = 0
    inputs = 0
    several = len(args.inputs) > 1
    for index, (name, open_source) in enumerate(_sources(args)):
        inputs += 1
        announced = not several  # the "# NAME" header waits for the input's first audio (see _announce)
        stream = asr.stream()
        printer = LivePrinter(sys.stdout, args.word_timestamps) if live_stdout and not formats else None
        compute, started, audio_seconds = 0.0, time.perf_counter(), 0.0
        handle = _EventSink(printer, "jsonl" in formats, live_stdout, started)
        try:
            for chunk in open_source():
                if not announced and len(chunk):
                    announced = _announce(name)
                if args.realtime:  # a live source delivers audio no faster than it is spoken
                    wait = audio_seconds - (time.perf_counter() - started)
                    if wait > 0:
                        time.sleep(wait)
                audio_seconds += len(chunk) / ASR_SAMPLE_RATE
                t0 = time.perf_counter()
                events = stream.push(chunk)
                compute += time.perf_counter() - t0
                handle(events)
            t0 = time.perf_counter()
            events = stream.finish()
            compute += time.perf_counter() - t0
            if audio_seconds:  # no audio is an error (below): no empty "final" on stdout before it
                handle(events)
        except KeyboardInterrupt:
            handle(stream.finish())
        except AudioError as err:
            if printer is not None:
                printer.end_line()
            said = str(err)  # most of the readers' messages name the file already
            print(f"voxkit transcribe: error: {said if name in said else f'{name}: {said}'}", file=sys.stderr)
            failures += 1
            continue
        transcript = stream.transcript
        if audio_seconds == 0:  # as an empty file is: an error, not an empty transcript with status 0
            print(f"voxkit transcribe: error: {name}: no audio received", file=sys.stderr)
            failures += 1
            continue
        for fmt in formats:
            text = "\n".join(handle.jsonl) + "\n" if fmt == "jsonl" else render(transcript, fmt, args.word_timestamps)
            if out_dir is not None:
                write_text(out_dir / f"{stems[index]}.{fmt}", text)
            elif fmt != "jsonl":
                sys.stdout.write(text)
        if args.stats:
            steps = max(1, stream.steps)
            rtf = compute / max(audio_seconds, 1e-9)
            lag = f", word latency {np.mean(handle.lag):.2f} s after word start" if args.realtime and handle.lag else ""
            print(
                f"voxkit transcribe: {name}: {audio_seconds:.2f} s audio, compute {compute:.2f} s, RTF {rtf:.3f}, "
                f"{1000 * compute / steps:.2f} ms per {STEP_MS} ms step, delay {stream.delay * STEP_MS} ms{lag}",
                file=sys.stderr,
            )
    if failures:
        return 2 if failures == inputs else 1  # nothing usable at all is a usage error
    return 0
