"""``voxkit codec encode|decode|roundtrip``: audio <-> a codes file with the speech codec.

    voxkit codec encode talk.mp3 talk.safetensors      # any format and rate -> codes [T, 37]
    voxkit codec decode talk.safetensors talk.wav      # codes -> 24 kHz audio
    voxkit codec roundtrip talk.mp3 talk_codec.wav     # both, to hear what the codes keep
    ffmpeg -i talk.mp4 -f wav - | voxkit codec encode - talk.safetensors   # audio on stdin
    arecord -f S16_LE -r 16000 | voxkit codec encode - talk.safetensors --format s16le --sample-rate 16000

Every mistake a user can make with the two paths (a missing, empty or foreign input, a codes file
whose codes are not codes, an output that cannot be written, is the input itself or one of the
codec's own files) is one line ``voxkit codec: error: ...``, found before the model loads wherever
the model is not needed to find it; an output is written whole or not at all. Work of more than one
pass of the model shows a progress bar on a terminal's stderr (not with --quiet); Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voxkit.errors import VoxkitError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from voxkit.codec.api import Codec
    from voxkit.codec.codes_file import CodesFile

BUNDLED = Path(__file__).resolve().parents[1] / "assets" / "codec-small"
AUDIO_OUT = (".wav", ".flac", ".ogg")
CODES_OUT = (".safetensors",)
AUDIO_IN = (*AUDIO_OUT, ".mp3", ".opus", ".aiff", ".aif", ".m4a", ".webm", ".caf")
RAW_FORMATS = ("s16le", "s32le", "f32le", "u8")  # voxkit.audio.stream.RAW_FORMATS, named here so that --help imports no numpy
MODEL_FILES = ("params.json", "config.json")  # with every .safetensors file: what a codec folder is read from


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("codec", help="encode audio to codec codes, decode them, or both")
    sub = p.add_subparsers(dest="codec_command", metavar="ACTION", required=True)
    audio_in = "audio file (any format and rate), or - for an audio file's bytes on stdin (WAV, FLAC, MP3, Ogg)"
    for name, help_, inp, out in (
        ("encode", "audio -> codes file (.safetensors, [T, 37] ints at 12.5 frames/s)", audio_in, "codes file (.safetensors)"),
        ("decode", "codes file -> 24 kHz audio", "codes file written by encode", "audio file (.wav, .flac, .ogg)"),
        ("roundtrip", "audio -> codes -> audio (what the codes keep)", audio_in, "audio file (.wav, .flac, .ogg)"),
    ):
        c = sub.add_parser(name, help=help_)
        c.add_argument("input", help=inp)
        c.add_argument("output", help=out)
        c.add_argument("--model", default=None, metavar="DIR", help="codec folder (default: the bundled codec, where this install has one)")
        c.add_argument("--device", default="cpu", help="cpu or cuda")
        c.add_argument("--force", action="store_true", help="overwrite an existing output file")
        c.add_argument("--quiet", action="store_true", help="no progress bar (it goes to stderr, for inputs longer than 5 s)")
        if name != "decode":  # the layout of raw samples on stdin, as voxkit transcribe - takes it
            c.add_argument("--format", dest="raw_format", default=None, choices=("auto", *RAW_FORMATS),
                           help="stdin encoding (auto: an audio file's bytes; s16le etc.: raw PCM, with --sample-rate); only with -")
            c.add_argument("--sample-rate", type=int, default=None, help="sample rate of raw stdin audio (required with a raw --format)")
            c.add_argument("--channels", type=int, default=None, help="channels of raw stdin audio (default 1; averaged)")
        c.set_defaults(func=run)


def _model_dir(given: str | None) -> Path:
    if given is not None:
        return Path(given)
    if not (BUNDLED / "params.json").is_file():
        raise VoxkitError(
            "this build ships no codec yet: give --model DIR (train one with voxkit train recipes/codec_small.toml, "
            "then voxkit export codec runs/codec_small --out DIR)"
        )
    return BUNDLED


def _check_output(command: str, output: str, given: str, force: bool, model: str | None = None) -> Path:
    """The output path, checked before any work: a file name with the right ending, writable, not
    the input (``--force`` replaces an old output, never the recording being read) and not one of
    the codec folder's own files (``model``: --model; an encode with --force into
    DIR/consolidated.safetensors would replace the weights it was about to read)."""
    from voxkit.cli.outputs import output_file

    if output == "":
        raise VoxkitError("give an output file name")
    if output == "-":
        what = "a codes file (.safetensors)" if command == "encode" else "an audio file (.wav, .flac, .ogg)"
        raise VoxkitError(f"the output must be a file, not standard output (-): give {what}")
    folder = Path(model) if model is not None else BUNDLED
    clash = _model_file(Path(output), folder)  # before "exists; add --force": --force would not make it right
    if clash is not None:
        raise VoxkitError(f"{output} {clash}")
    target = output_file(output, "", suffixes=CODES_OUT if command == "encode" else AUDIO_OUT, force=force)
    if given not in ("", "-") and os.path.exists(given) and target.exists() and os.path.samefile(given, target):
        raise VoxkitError(f"{output} is the input file: write to another file")
    return target


def _model_file(target: Path, folder: Path) -> str | None:
    """Why ``target`` must not be written, as it is or would sit among the codec folder's weights or
    params (links followed); None where it may.

    Any .safetensors file in the folder counts: a folder whose weights are not named
    consolidated*.safetensors is read from every .safetensors file it holds.
    """
    if not folder.is_dir():
        return None
    files = [f for f in folder.iterdir() if f.name.lower().endswith(".safetensors") or f.name.lower() in MODEL_FILES]
    same = next((f for f in files if target.exists() and os.path.samefile(target, f)), None)
    if same is not None:
        return f"is the codec's own {same.name} (in {folder}): write to another file"
    name = target.name.lower()
    in_folder = target.parent.exists() and os.path.samefile(target.parent, folder)
    if in_folder and (name.endswith(".safetensors") or name in MODEL_FILES):
        return f"would be written among the codec's weights in {folder}: write to another folder"
    return None


def _check_input(command: str, given: str) -> None:
    """A missing, empty-named, non-regular or wrong-kind input is refused before the model loads."""
    if given == "":
        raise VoxkitError("give an input file name")
    if given == "-":
        if command == "decode":
            raise VoxkitError("decode reads a codes file, not standard input (-): give the .safetensors file encode wrote")
        return
    if os.path.isdir(given):
        raise VoxkitError(f"{given} is a folder, not {'a codes' if command == 'decode' else 'an audio'} file")
    if not os.path.exists(given):
        raise VoxkitError(f"{given}: no such file")
    if not os.path.isfile(given):
        pipe = "" if command == "decode" else "; to read a stream, pipe it to standard input (-)"
        raise VoxkitError(f"{given} is not a regular file{pipe}")
    if command != "decode" and given.lower().endswith(".safetensors"):
        raise VoxkitError(f"{given} is a codes file, not audio: decode it with voxkit codec decode {given} OUT.wav")
    if command == "decode" and _is_audio(given):
        raise VoxkitError(f"{given} is an audio file, not a codes file: encode it with voxkit codec encode {given} OUT.safetensors")


def _is_audio(path: str) -> bool:
    """An audio file by its name or its first bytes (a WAV renamed .safetensors is audio all the same)."""
    from voxkit.audio.stream import audio_container

    if path.lower().endswith(AUDIO_IN):
        return True
    try:
        with open(path, "rb") as fh:
            return audio_container(fh.read(16)) is not None
    except OSError:
        return False  # load_codes names what is wrong with it


def _stdin_layout(args: argparse.Namespace) -> None:
    """--format, --sample-rate and --channels describe raw samples on stdin: refused for a file, and a
    raw format needs its rate (guessed, a 16 kHz recording read at 24 kHz would play 1.5 times too fast)."""
    from voxkit.audio.io import check_sample_rate

    fmt = getattr(args, "raw_format", None)
    given = [flag for flag, value in (("--format", None if fmt == "auto" else fmt), ("--sample-rate", getattr(args, "sample_rate", None)),
                                      ("--channels", getattr(args, "channels", None))) if value is not None]
    if given and args.input != "-":
        raise VoxkitError(f"{' and '.join(given)} {'describes' if len(given) == 1 else 'describe'} raw audio on stdin (-): "
                          f"a file carries its own layout, drop {'it' if len(given) == 1 else 'them'}")
    if fmt in (None, "auto"):
        if given:
            raise VoxkitError(f"{' and '.join(given)} {'describes' if len(given) == 1 else 'describe'} raw samples: "
                              "add --format s16le (or s32le, f32le, u8)")
        return
    if args.sample_rate is None:
        raise VoxkitError(f"--format {fmt} needs the samples' rate: add --sample-rate (e.g. --sample-rate 16000)")
    check_sample_rate(args.sample_rate, "--sample-rate")
    if args.channels is not None and not 1 <= args.channels <= 8:
        raise VoxkitError(f"--channels takes 1 to 8, got {args.channels}")


def _stdin_audio(args: argparse.Namespace) -> bytes:
    """The bytes of an audio file piped to stdin, whole: the codec encodes a file, not a live stream.

    A container libsndfile cannot read (MP4/M4A, WebM, ADTS AAC, AMR) is refused here, before the
    model loads, in the words ``voxkit transcribe -`` uses for it
    (:func:`~voxkit.audio.stream.container_refusal`): the loader's own message guessed raw samples
    and gave the Python API's advice."""
    if sys.stdin is None or sys.stdin.isatty():
        raise VoxkitError("- reads audio from standard input, but nothing is piped to it (voxkit codec encode - OUT < in.wav)")
    data = sys.stdin.buffer.read()
    if not data:
        raise VoxkitError("stdin: no audio received")
    if getattr(args, "raw_format", None) in (None, "auto"):
        from voxkit.audio.stream import HEAD_BYTES, container_refusal

        refusal = container_refusal(data[:HEAD_BYTES], _command(args), whole=True, raw="--format s16le --sample-rate RATE")
        if refusal is not None:
            raise VoxkitError(f"stdin: {refusal}")
    return data


def _command(args: argparse.Namespace) -> str:
    """The user's command line with stdin as its input, for the ffmpeg pipe a message suggests."""
    return f"voxkit codec {args.codec_command} - {shlex.quote(args.output)}"


def _raw_samples(data: bytes, fmt: str, channels: int) -> np.ndarray:
    """Raw interleaved PCM -> float32 mono [n] (the decoding ``voxkit transcribe -`` uses); a trailing partial frame is dropped."""
    import warnings

    from voxkit.audio.stream import raw_samples
    from voxkit.errors import AudioError, VoxkitWarning

    samples, rest = raw_samples(data, fmt, channels)  # [n]
    if samples.shape[0] == 0:
        raise AudioError(f"stdin: {len(data)} bytes, less than one {fmt} sample of {channels} channel{'s' if channels != 1 else ''}")
    if rest:
        warnings.warn(f"dropped {len(rest)} trailing bytes (an incomplete {fmt} frame)", VoxkitWarning, stacklevel=2)
    return samples


def _raw_hint(err: Exception, data: bytes, command: str) -> str:
    """The loader's message for stdin, named as the user knows it; for bytes that open no audio container
    (raw samples, most likely), the flags that read them and the command that makes a WAV of them."""
    from voxkit.audio.stream import audio_container

    message = str(err).replace("<stream>", "stdin")
    if audio_container(data[:16]) is not None:
        return message
    return (f"stdin: not an audio file (WAV, FLAC, MP3, Ogg); for raw PCM give its layout: {command} "
            f"--format s16le --sample-rate 16000 (or make it a WAV: ffmpeg -f s16le -ar 16000 -ac 1 -i - -f wav - | {command})")


class _Bar:
    """``progress`` of :meth:`Codec.encode` / :meth:`Codec.decode` as a bar on stderr, in seconds of audio.

    Why: ten minutes of audio took a minute to encode and nearly two to decode with nothing on
    the screen. Shown, as ``voxkit speak`` shows its bar, only where stderr is a terminal (and not
    with --quiet), and only for work of more than one pass (:data:`~voxkit.codec.api.ONE_PASS_FRAMES`,
    5.12 s): a short clip is done before a bar would say anything. Cleared when done or
    interrupted, so the summary line (or "interrupted") stands alone.
    """

    def __init__(self, what: str, codec: Codec, quiet: bool) -> None:
        self.what, self.seconds = what, codec.samples_per_frame / codec.sample_rate
        self.show = not quiet and sys.stderr is not None and sys.stderr.isatty()
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        from voxkit.codec.api import ONE_PASS_FRAMES

        if not self.show or total <= ONE_PASS_FRAMES:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total * self.seconds, desc=self.what, file=sys.stderr, leave=False, dynamic_ncols=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of audio [{elapsed}<{remaining}]")
        self.bar.update(done * self.seconds - self.bar.n)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def _read_codes(name: str, model: str | None) -> CodesFile:
    """A codes file with at least one frame and a length (load_codes checks the codes themselves).

    The codec's params are read (not its weights) where they can be, so that a file of another
    codec is named so before its length is judged against its own rate; a folder that does not
    read is reported when the codec loads.
    """
    from voxkit.codec.checkpoint import codec_args
    from voxkit.codec.codes_file import load_codes

    try:
        args = codec_args(_model_dir(model))
    except VoxkitError:
        args = None
    file = load_codes(name, args)
    if file.codes.shape[0] == 0:
        raise VoxkitError(f"{name} holds no frames: nothing to decode")
    if file.num_samples == 0:
        raise VoxkitError(f"{name}: its metadata gives a length of 0 samples: nothing to decode")
    return file


def _write_codes(path: Path, codes: torch.Tensor, num_samples: int, codec: Codec) -> None:
    """Save the codes (atomically); a refusal by the system names the user's path, not the temporary one."""
    try:
        codec.save_codes(path, codes, num_samples)
    except OSError as err:
        raise VoxkitError(f"cannot write {path}: {err.strerror or err}") from None


def _frames(n: int) -> str:
    return f"{n} frame{'s' if n != 1 else ''}"


def run(args: argparse.Namespace) -> int:
    from voxkit.audio.io import AudioInput
    from voxkit.audio.write import save_audio
    from voxkit.devices import usable_device
    from voxkit.errors import AudioError

    command, given = args.codec_command, args.input
    _check_input(command, given)
    if command != "decode":
        _stdin_layout(args)
    target = _check_output(command, args.output, given, args.force, args.model)
    usable_device(args.device)
    codes_file = _read_codes(given, args.model) if command == "decode" else None
    source: AudioInput = _stdin_audio(args) if given == "-" else given
    rate = None
    if given == "-" and getattr(args, "raw_format", None) not in (None, "auto"):
        source, rate = _raw_samples(source, args.raw_format, args.channels or 1), args.sample_rate  # type: ignore[arg-type]

    from voxkit.codec.api import Codec

    codec = Codec.from_pretrained(_model_dir(args.model), device=args.device)
    start = time.perf_counter()
    if codes_file is not None:
        with _Bar("decoding", codec, args.quiet) as bar:
            audio = codec.decode(codes_file, progress=bar)  # refused, naming the file, if this codec did not write it
        save_audio(target, audio, codec.sample_rate)  # whole or not at all; one AudioError line
        what = f"{_frames(codes_file.codes.shape[0])} -> {len(audio) / codec.sample_rate:.2f} s of audio"
    else:
        try:
            wave = codec.load(source, rate)  # [N] at 24 kHz
        except AudioError as err:
            if given != "-":
                raise
            raise AudioError(_raw_hint(err, source, _command(args)) if isinstance(source, bytes) else str(err)) from None
        seconds = wave.shape[0] / codec.sample_rate
        with _Bar("encoding", codec, args.quiet) as bar:
            codes = codec.encode(wave, codec.sample_rate, progress=bar)  # [T, 37]
        if command == "encode":
            _write_codes(target, codes, wave.shape[0], codec)
            what = f"{seconds:.2f} s -> {_frames(codes.shape[0])} x {codes.shape[1]} codes ({codec.bitrate_bps / 1000:.2f} kbps)"
        else:
            with _Bar("decoding", codec, args.quiet) as bar:
                audio = codec.decode(codes, num_samples=wave.shape[0], progress=bar)
            save_audio(target, audio, codec.sample_rate)
            what = f"{seconds:.2f} s through {_frames(codes.shape[0])} ({codec.bitrate_bps / 1000:.2f} kbps)"
    took = time.perf_counter() - start
    print(f"{args.output}: {what} in {took:.2f} s", file=sys.stderr)
    return 0
