"""``voxkit codec encode|decode|roundtrip``: audio <-> a codes file with the speech codec.

    voxkit codec encode talk.mp3 talk.safetensors      # any format and rate -> codes [T, 37]
    voxkit codec decode talk.safetensors talk.wav      # codes -> 24 kHz audio
    voxkit codec roundtrip talk.mp3 talk_codec.wav     # both, to hear what the codes keep
    ffmpeg -i talk.mp4 -f wav - | voxkit codec encode - talk.safetensors   # audio on stdin

Every mistake a user can make with the two paths (a missing, empty or foreign input, a codes file
whose codes are not codes, an output that cannot be written or is the input itself) is one line
``voxkit codec: error: ...``, found before the model loads wherever the model is not needed to
find it; an output is written whole or not at all.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from voxkit.errors import VoxkitError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from voxkit.codec.api import Codec
    from voxkit.codec.codes_file import CodesFile

BUNDLED = Path(__file__).resolve().parents[1] / "assets" / "codec-small"
AUDIO_OUT = (".wav", ".flac", ".ogg")
CODES_OUT = (".safetensors",)


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


def _check_output(command: str, output: str, given: str, force: bool) -> Path:
    """The output path, checked before any work: a file name with the right ending, writable, and
    not the input (``--force`` replaces an old output, never the recording being read)."""
    from voxkit.cli.outputs import output_file

    if output == "":
        raise VoxkitError("give an output file name")
    if output == "-":
        what = "a codes file (.safetensors)" if command == "encode" else "an audio file (.wav, .flac, .ogg)"
        raise VoxkitError(f"the output must be a file, not standard output (-): give {what}")
    target = output_file(output, "", suffixes=CODES_OUT if command == "encode" else AUDIO_OUT, force=force)
    if given not in ("", "-") and os.path.exists(given) and target.exists() and os.path.samefile(given, target):
        raise VoxkitError(f"{output} is the input file: write to another file")
    return target


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


def _stdin_audio() -> bytes:
    """The bytes of an audio file piped to stdin, whole: the codec encodes a file, not a live stream."""
    if sys.stdin is None or sys.stdin.isatty():
        raise VoxkitError("- reads audio from standard input, but nothing is piped to it (voxkit codec encode - OUT < in.wav)")
    data = sys.stdin.buffer.read()
    if not data:
        raise VoxkitError("stdin: no audio received")
    return data


def _read_codes(name: str) -> CodesFile:
    """A codes file with at least one frame and a length (load_codes checks the codes themselves)."""
    from voxkit.codec.codes_file import load_codes

    file = load_codes(name)
    if file.codes.shape[0] == 0:
        raise VoxkitError(f"{name} holds no frames: nothing to decode")
    if file.num_samples == 0:
        raise VoxkitError(f"{name}: its metadata gives a length of 0 samples: nothing to decode")
    return file


def _decode_file(codec: Codec, name: str, file: CodesFile) -> np.ndarray:
    """Codes of a checked file -> audio at the codec's rate, refused (naming the file) if this codec did not write them."""
    from voxkit.codec.codes_file import check_compatible

    check_compatible(file, codec.model.args, name, codec.codebook_fingerprint)
    try:
        codes = codec.check_codes(file.codes)
    except VoxkitError as err:
        raise VoxkitError(f"{name}: {err}") from None
    return codec.decode(codes, num_samples=file.num_samples)


def _write_codes(path: Path, codes: torch.Tensor, num_samples: int, codec: Codec) -> None:
    """Save the codes (atomically); a refusal by the system names the user's path, not the temporary one."""
    from voxkit.codec.codes_file import save_codes

    try:
        save_codes(path, codes, num_samples, codec.model.args, codec.codebook_fingerprint)
    except OSError as err:
        raise VoxkitError(f"cannot write {path}: {err.strerror or err}") from None


def run(args: argparse.Namespace) -> int:
    from voxkit.audio.io import AudioInput
    from voxkit.audio.write import save_audio
    from voxkit.devices import usable_device
    from voxkit.errors import AudioError

    command, given = args.codec_command, args.input
    _check_input(command, given)
    target = _check_output(command, args.output, given, args.force)
    usable_device(args.device)
    codes_file = _read_codes(given) if command == "decode" else None
    source: AudioInput = _stdin_audio() if given == "-" else given

    from voxkit.codec.api import Codec

    codec = Codec.from_pretrained(_model_dir(args.model), device=args.device)
    start = time.perf_counter()
    if codes_file is not None:
        audio = _decode_file(codec, given, codes_file)
        save_audio(target, audio, codec.sample_rate)  # whole or not at all; one AudioError line
        what = f"{codes_file.codes.shape[0]} frames -> {len(audio) / codec.sample_rate:.2f} s of audio"
    else:
        try:
            wave = codec.load(source)  # [N] at 24 kHz
        except AudioError as err:
            raise AudioError(str(err).replace("<stream>", "stdin")) from None
        seconds = wave.shape[0] / codec.sample_rate
        codes = codec.encode(wave, codec.sample_rate)  # [T, 37]
        if command == "encode":
            _write_codes(target, codes, wave.shape[0], codec)
            what = f"{seconds:.2f} s -> {codes.shape[0]} frames x {codes.shape[1]} codes ({codec.bitrate_bps / 1000:.2f} kbps)"
        else:
            save_audio(target, codec.decode(codes, num_samples=wave.shape[0]), codec.sample_rate)
            what = f"{seconds:.2f} s through {codes.shape[0]} frames ({codec.bitrate_bps / 1000:.2f} kbps)"
    took = time.perf_counter() - start
    print(f"{args.output}: {what} in {took:.2f} s", file=sys.stderr)
    return 0
