"""``voxkit codec encode|decode|roundtrip``: audio <-> a codes file with the speech codec.

    voxkit codec encode talk.mp3 talk.safetensors      # any format and rate -> codes [T, 37]
    voxkit codec decode talk.safetensors talk.wav      # codes -> 24 kHz audio
    voxkit codec roundtrip talk.mp3 talk_codec.wav     # both, to hear what the codes keep
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from voxkit.errors import VoxkitError

BUNDLED = Path(__file__).resolve().parents[1] / "assets" / "codec-small"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("codec", help="encode audio to codec codes, decode them, or both")
    sub = p.add_subparsers(dest="codec_command", metavar="ACTION", required=True)
    for name, help_, inp, out in (
        ("encode", "audio -> codes file (.safetensors, [T, 37] ints at 12.5 frames/s)", "audio file (any format and rate)", "codes file"),
        ("decode", "codes file -> 24 kHz audio", "codes file written by encode", "audio file (.wav, .flac, .ogg)"),
        ("roundtrip", "audio -> codes -> audio (what the codes keep)", "audio file (any format and rate)", "audio file"),
    ):
        c = sub.add_parser(name, help=help_)
        c.add_argument("input", help=inp)
        c.add_argument("output", help=out)
        c.add_argument("--model", default=None, metavar="DIR", help="codec folder (default: the bundled codec)")
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


def run(args: argparse.Namespace) -> int:
    from voxkit.cli.outputs import output_file
    from voxkit.devices import usable_device

    audio_out = (".wav", ".flac", ".ogg")
    output_file(args.output, "", suffixes=(".safetensors",) if args.codec_command == "encode" else audio_out, force=args.force)
    if not os.path.exists(args.input):
        raise VoxkitError(f"{args.input}: no such file")
    usable_device(args.device)

    from voxkit.audio.io import save_audio
    from voxkit.codec.api import Codec
    from voxkit.codec.codes_file import check_compatible, load_codes, save_codes

    codec = Codec.from_pretrained(_model_dir(args.model), device=args.device)
    start = time.perf_counter()
    if args.codec_command == "decode":
        file = load_codes(args.input)
        check_compatible(file, codec.model.args, args.input)
        audio = codec.decode(file.codes, num_samples=file.num_samples)
        save_audio(args.output, audio, codec.sample_rate)
        seconds = len(audio) / codec.sample_rate
        what = f"{file.codes.shape[0]} frames -> {seconds:.2f} s of audio"
    else:
        wave = codec.load(args.input)  # [N] at 24 kHz
        seconds = wave.shape[0] / codec.sample_rate
        codes = codec.encode(wave, codec.sample_rate)  # [T, 37]
        if args.codec_command == "encode":
            save_codes(args.output, codes, wave.shape[0], codec.model.args)
            what = f"{seconds:.2f} s -> {codes.shape[0]} frames x {codes.shape[1]} codes ({codec.bitrate_bps / 1000:.2f} kbps)"
        else:
            save_audio(args.output, codec.decode(codes, num_samples=wave.shape[0]), codec.sample_rate)
            what = f"{seconds:.2f} s through {codes.shape[0]} frames ({codec.bitrate_bps / 1000:.2f} kbps)"
    took = time.perf_counter() - start
    print(f"{args.output}: {what} in {took:.2f} s", file=sys.stderr)
    return 0
