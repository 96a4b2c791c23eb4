"""``voxkit speak``: text to speech in a cloned or preset voice.

    voxkit speak "Hello there." --voice ref.wav -o hello.wav --model DIR     # clone the voice of ref.wav
    voxkit speak "Hello there." --voice PRESET -o - --model DIR > hello.wav  # WAV on stdout
    voxkit speak "A long text..." --voice ref.wav --stream --model DIR        # play as it is generated
    voxkit speak "..." --stream -o out.wav --model DIR                        # write as it is generated

--model may be left out only where this install bundles a TTS model.

The seed is printed (and taken with --seed), so a take someone liked can be made again.
"""

from __future__ import annotations

import argparse
import math
import os
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import BinaryIO

import numpy as np

from voxkit.cli.flags import check_tts_model, read_stdin_text
from voxkit.errors import VoxkitError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("speak", help="text to speech in a cloned or preset voice")
    p.add_argument("text", nargs="?", default=None, help="what to say ('-' reads it from stdin; not needed with --list-voices)")
    p.add_argument("--voice", default=None,
                   help="reference audio to clone (any format; a few seconds up to the model's window, 30 s for the full model, "
                        "the rest is trimmed) or a preset voice name (default: the model's first preset)")
    p.add_argument("--reference-text", default=None, help="transcript of the reference audio (optional; helps the cloning)")
    p.add_argument("-o", "--output", default=None, help="output audio file (.wav, .flac, .ogg) or '-' for WAV on stdout")
    p.add_argument("--language", default=None, help="language of the text (default: the model's first)")
    p.add_argument("--steps", type=int, default=7, help="flow-matching steps per frame (default 7)")
    p.add_argument("--cfg", type=float, default=1.2, help="classifier-free guidance strength (default 1.2; 1 = off)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    p.add_argument("--speed", type=float, default=1.0, help="tempo factor, 0.5-2.0 (default 1.0)")
    p.add_argument("--stream", action="store_true", help="play the audio as it is generated (or write it so, with -o)")
    p.add_argument("--model", default=None, metavar="DIR", help="TTS model folder (default: the bundled model, where this install has one)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--list-voices", action="store_true", help="print the model's preset voices and languages, then exit")
    p.set_defaults(func=run)


def _check_output(path: str | None, force: bool, stream: bool, voice: str | None = None, model: str | None = None) -> None:
    """The output, checked before the model loads; never the --voice recording being cloned nor a
    file of the --model folder, --force or not (an old take is replaceable, a reference is not)."""
    if path is None:
        if not stream:
            raise VoxkitError("give -o FILE (or -o - for stdout), or --stream to play the audio")
        _player()  # a missing player is said before the model loads and the voice is encoded, not after
        return
    if path == "-":
        if sys.stdout.isatty():
            raise VoxkitError("-o - writes WAV bytes to stdout: redirect it to a file or a player")
        return
    from voxkit.cli.outputs import model_inputs, output_file

    inputs = [voice] if voice is not None and os.path.isfile(voice) else []  # not a preset voice's name
    output_file(path, "", suffixes=AUDIO_SUFFIXES, force=force, inputs=[*inputs, *model_inputs(model)])


def _check_text(text: str) -> None:
    """What the model would refuse only after loading and encoding the voice, refused now: an
    empty text, or one without a letter or digit (only punctuation or symbols), which the reader
    cannot turn into words either (:meth:`voxkit.tts.api.Speaker.sentences` says the same)."""
    from voxkit.checks import unicode_problem

    if (problem := unicode_problem(text)) is not None:  # a lone surrogate is no letter either: said as what it is
        raise VoxkitError(f"the text {problem}")
    if not text.strip():
        raise VoxkitError("nothing to say: the text is empty")
    if not any(ch.isalnum() for ch in text):
        raise VoxkitError("nothing to say: the text has no words, only punctuation or symbols")


def _check_flags(args: argparse.Namespace) -> None:
    """--speed in the user's words ("got 3", not the parsed "3.0"), --steps, --cfg and --seed as the
    generation checks them: all before the model loads and the voice is encoded."""
    from voxkit.errors import OptionError
    from voxkit.lm.sampling import check_seed
    from voxkit.tts.generate import GenerationOptions

    if not (math.isfinite(args.speed) and 0.5 <= args.speed <= 2.0):
        raise VoxkitError(f"--speed takes a tempo factor from 0.5 to 2.0, got {args.speed:g}")
    try:
        GenerationOptions(steps=args.steps, cfg=args.cfg)
        if args.seed is not None:
            check_seed(args.seed)
    except OptionError as err:  # "steps must be ...": the flag's name
        raise VoxkitError(f"--{err}") from None


def run(args: argparse.Namespace) -> int:
    from voxkit.devices import usable_device

    check_tts_model(args.model)  # first: a command copied without --model learns the one thing missing
    if not args.list_voices:
        if args.text is None:
            raise VoxkitError("say what to speak: voxkit speak \"Hello there.\" -o out.wav ('-' reads the text from stdin)")
        _check_output(args.output, args.force, args.stream, args.voice, args.model)
    text = read_stdin_text("text") if args.text == "-" else args.text
    if not args.list_voices:  # before the model loads, as the output check is
        _check_text(text)
        _check_flags(args)
    usable_device(args.device)

    from tqdm import tqdm

    from voxkit.tts.api import Speaker

    speaker = Speaker.from_pretrained(args.model, device=args.device)
    if args.list_voices:
        print(f"voices: {', '.join(speaker.voices) or '(none)'}")
        print(f"languages: {', '.join(speaker.languages)}")
        return 0
    voice_name = args.voice or (speaker.voices[0] if speaker.voices else None)
    voice = speaker.prepare_voice(voice_name, reference_text=args.reference_text) if voice_name else None
    for warning in voice.warnings if voice else []:
        print(f"voxkit speak: warning: {warning}", file=sys.stderr)
    rate = speaker.sample_rate
    start = time.perf_counter()
    chunks = speaker.stream(text, voice, language=args.language, steps=args.steps, cfg=args.cfg, seed=args.seed, speed=args.speed)
    seed = speaker.last_seed
    first: list[float] = []
    total = 0
    bar = tqdm(desc="speaking", unit="s audio", bar_format="{desc}: {n:.1f} {unit} [{elapsed}]", file=sys.stderr,
               disable=not sys.stderr.isatty())

    def counted(source: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        nonlocal total
        for chunk in source:
            if not first:
                first.append(time.perf_counter() - start)
            total += chunk.size
            bar.update(chunk.size / rate)
            yield chunk

    if args.stream:
        _stream_out(counted(chunks), rate, args.output)
    else:
        audio = np.concatenate(list(counted(chunks)) or [np.zeros(0, np.float32)])
        _write(audio, rate, args.output)
    bar.close()
    elapsed = time.perf_counter() - start
    seconds = total / rate
    where = "stdout" if args.output == "-" else (args.output or "the speakers")
    print(f"voxkit speak: {seconds:.1f} s of audio to {where} in {elapsed:.1f} s (real-time factor {elapsed / max(seconds, 1e-9):.2f}, "
          f"first audio after {first[0] if first else elapsed:.2f} s), seed {seed}", file=sys.stderr)
    return 0


def _write(audio: np.ndarray, rate: int, output: str) -> None:
    from voxkit.audio.write import save_audio

    if audio.size == 0:
        raise VoxkitError("the model produced no audio for this text")
    if output == "-":
        out = sys.stdout.buffer
        _wav_header(out, rate, audio.size)
        out.write(_pcm16(audio))
        out.flush()
        return
    save_audio(output, audio, rate)


def _stream_out(chunks: Iterator[np.ndarray], rate: int, output: str | None) -> None:
    """Play chunks as they come, or write them to a file / stdout as they come."""
    if output is None:
        sd = _player()
        with sd.OutputStream(samplerate=rate, channels=1, dtype="float32") as player:
            for chunk in chunks:
                player.write(chunk[:, None])
        return
    if output == "-":
        out = sys.stdout.buffer
        _wav_header(out, rate, None)  # a pipe cannot be rewound: the sizes say "unknown" (0xFFFFFFFF), as ffmpeg writes
        for chunk in chunks:
            out.write(_pcm16(chunk))
            out.flush()
        return
    import soundfile as sf

    subtype = {".wav": "PCM_16", ".flac": "PCM_16", ".ogg": "VORBIS"}[Path(output).suffix.lower()]
    try:
        with sf.SoundFile(output, "w", samplerate=rate, channels=1, subtype=subtype) as fh:
            for chunk in chunks:
                fh.write(np.clip(chunk, -1.0, 1.0))
                fh.flush()
    except Exception:
        # a failure part-way (a sentence that outgrows the model's context) leaves no half file
        # that the next run would need --force to replace; Ctrl-C keeps what was spoken
        Path(output).unlink(missing_ok=True)
        raise


def _player() -> ModuleType:
    """The sounddevice module that plays --stream without -o, or the one-line reason it is missing."""
    try:
        import sounddevice
    except (ImportError, OSError):  # OSError: the package is there, PortAudio is not
        raise VoxkitError("playing audio needs sounddevice (pip install 'voxkit[mic]'); or add -o FILE") from None
    return sounddevice


def _pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def _wav_header(out: BinaryIO, rate: int, samples: int | None) -> None:
    data = 0xFFFFFFFF if samples is None else 2 * samples
    riff = 0xFFFFFFFF if samples is None else 36 + data
    out.write(b"RIFF" + struct.pack("<I", riff) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate, 2, 16)
              + b"data" + struct.pack("<I", data))
