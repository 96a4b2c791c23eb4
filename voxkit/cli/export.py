"""``voxkit export asr|codec CHECKPOINT --out DIR``: a training checkpoint -> a shippable model folder.

The tokenizer is the one the run recorded (its recipe's ``data.tokenizer``); ``--tokenizer`` names
another, or the right one when the recorded folder cannot be found from here.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from voxkit.cli.outputs import output_folder
from voxkit.errors import VoxkitError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="write a training checkpoint as a model folder (published layout)")
    sub = p.add_subparsers(dest="export_kind", metavar="KIND", required=True)
    a = sub.add_parser("asr", help="a recogniser checkpoint -> params.json + consolidated.safetensors + tokenizer")
    a.add_argument("checkpoint", help="training checkpoint folder (runs/NAME/checkpoints/step_N), or a run folder for its latest")
    a.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the recipe's data.tokenizer recorded with the checkpoint)")
    a.add_argument("--out", required=True, help="output model folder")
    a.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32", help="storage precision (default %(default)s)")
    a.set_defaults(func=run_asr)
    c = sub.add_parser("codec", help="a codec checkpoint -> params.json + consolidated.safetensors (no discriminator)")
    c.add_argument("checkpoint", help="training checkpoint folder (runs/NAME/checkpoints/step_N), or a run folder for its latest")
    c.add_argument("--out", required=True, help="output model folder")
    c.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float16",
                   help="storage precision of the layers (default %(default)s; the codebook stays float32)")
    c.set_defaults(func=run_codec)
    h = sub.add_parser("chat", help="an audio-chat checkpoint -> params.json + consolidated.safetensors + tokenizer")
    h.add_argument("checkpoint", help="training checkpoint folder (runs/NAME/checkpoints/step_N), or a run folder for its latest")
    h.add_argument("--out", required=True, help="output model folder")
    h.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float16", help="storage precision (default %(default)s)")
    h.add_argument("--with-encoder", action="store_true",
                   help="also write an imported encoder's weights (default: name its source; it is imported at load time)")
    h.set_defaults(func=run_chat)
    t = sub.add_parser("tts", help="a TTS checkpoint -> model folder with its tokenizer, codec and preset voices")
    t.add_argument("checkpoint", help="training checkpoint folder (runs/NAME/checkpoints/step_N), or a run folder for its latest; "
                   "a relative model.codec in its recipe is read from where training ran")
    t.add_argument("--out", required=True, help="output model folder")
    t.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float16", help="storage precision (default %(default)s)")
    t.add_argument("--voice", action="append", default=[], metavar="NAME=AUDIO[:TRANSCRIPT]",
                   help="a preset voice from a reference clip (repeatable), e.g. anna=clips/anna.wav:'Hello there.'")
    t.add_argument("--codec-link", default=None, metavar="REL",
                   help="name this codec folder (a path relative to --out, e.g. ../codec-small) instead of copying the codec")
    t.set_defaults(func=run_tts)


def checkpoint_folder(checkpoint: str) -> Path:
    """The checkpoint folder the user named: the folder itself, or the newest checkpoint of a run folder.

    Why here, for every kind: a missing path, a file, or a run folder whose ``checkpoints/`` is
    still empty otherwise reached the model loaders, which answered that the folder is not a
    *published* model folder (params.json + consolidated.safetensors): the opposite of what
    export wants.
    """
    from voxkit.train.checkpointing import CHECKPOINTS, latest_checkpoint

    path = Path(checkpoint)
    expected = f"a training checkpoint ({CHECKPOINTS}/step_N of a run) or a run folder"
    if not path.exists():
        raise VoxkitError(f"{checkpoint} not found: give {expected}")
    if not path.is_dir():
        raise VoxkitError(f"{checkpoint} is a file: give {expected}")
    if (path / CHECKPOINTS).is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise VoxkitError(f"{checkpoint} holds no checkpoint yet ({CHECKPOINTS}/ is empty): train until train.save_every, "
                              "or let the run end")
        return latest
    if not any(path.glob("*.safetensors")):
        raise VoxkitError(f"{checkpoint} holds no checkpoint (no weights, no {CHECKPOINTS}/ folder): give {expected}")
    return path


def _checked(args: argparse.Namespace) -> Path:
    """``--out`` checked (before the checkpoint, as every command checks its outputs first), then
    the checkpoint folder; the output may be neither the run nor its checkpoint, whose files the
    exported ones would sit among."""
    output_folder(args.out, "--out", make=False)
    path = checkpoint_folder(args.checkpoint)
    output_folder(args.out, "--out", make=False, inputs=[args.checkpoint, path])
    return path


def run_chat(args: argparse.Namespace) -> int:
    """``voxkit export chat``: voxkit.cli.chat does the work, on the checkpoint folder resolved here."""
    from voxkit.cli.chat import run_export

    args.checkpoint = str(_checked(args))
    return run_export(args)


def run_asr(args: argparse.Namespace) -> int:
    import torch

    from voxkit.asr.export import export_checkpoint
    from voxkit.subset_tokenizer import load_folder_tokenizer

    path = _checked(args)
    if args.tokenizer and not os.path.isdir(args.tokenizer):
        raise VoxkitError(f"--tokenizer {args.tokenizer}: no such folder (a folder with vocab_subset.json, or a model folder)")
    tokenizer = load_folder_tokenizer(args.tokenizer) if args.tokenizer else None
    out = export_checkpoint(path, tokenizer, args.out, dtype=getattr(torch, args.dtype))
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(f"{out}: recogniser from {path} ({size:.1f} MB)")
    return 0


def run_codec(args: argparse.Namespace) -> int:
    import torch

    from voxkit.codec.checkpoint import load_codec, save_codec

    path = _checked(args)
    out = save_codec(load_codec(path), args.out, dtype=getattr(torch, args.dtype))
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(f"{out}: codec from {path} ({size:.1f} MB)")
    return 0


def run_tts(args: argparse.Namespace) -> int:
    import torch

    from voxkit.asr.bundle import training_tokenizer
    from voxkit.tts.checkpoint import export_tts

    path = _checked(args)
    voices = []
    for item in args.voice:
        name, sep, rest = item.partition("=")
        audio, _, text = rest.partition(":")
        if not sep or not name or not audio:
            raise VoxkitError(f"--voice {item!r}: expected NAME=AUDIO or NAME=AUDIO:TRANSCRIPT")
        if not os.path.isfile(audio):
            raise VoxkitError(f"--voice {name}: no such audio file {audio}")
        if any(name == earlier for earlier, _, _ in voices):  # the second would replace the first without a word
            raise VoxkitError(f"--voice {name} is given twice: give each preset voice its own name")
        voices.append((name, audio, text or None))
    tokenizer = training_tokenizer(path, "pass the run folder the recipe wrote")
    out = export_tts(path, args.out, tokenizer, voices, dtype=getattr(torch, args.dtype), codec_link=args.codec_link)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
    print(f"{out}: TTS model from {path} with {len(voices)} preset voices ({size:.1f} MB with its codec)")
    return 0
