"""``voxkit export asr|codec CHECKPOINT --out DIR``: a training checkpoint -> a shippable model folder.

The tokenizer is the one the run recorded (its recipe's ``data.tokenizer``); ``--tokenizer`` names
another, or the right one when the recorded folder cannot be found from here.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="write a training checkpoint as a model folder (published layout)")
    sub = p.add_subparsers(dest="export_kind", metavar="KIND", required=True)
    a = sub.add_parser("asr", help="a recogniser checkpoint -> params.json + consolidated.safetensors + tokenizer")
    a.add_argument("checkpoint", help="training checkpoint folder (runs/NAME/checkpoints/step_N), or a run folder for its latest")
    a.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the recipe's data.tokenizer recorded with the checkpoint)")
    a.add_argument("--out", required=True, help="output model folder")
    a.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32", help="storage precision")
    a.set_defaults(func=run_asr)
    c = sub.add_parser("codec", help="a codec checkpoint -> params.json + consolidated.safetensors (no discriminator)")
    c.add_argument("checkpoint", help="training checkpoint folder (runs/NAME/checkpoints/step_N), or a run folder for its latest")
    c.add_argument("--out", required=True, help="output model folder")
    c.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float16",
                   help="storage precision of the layers (the codebook stays float32)")
    c.set_defaults(func=run_codec)
    h = sub.add_parser("chat", help="an audio-chat checkpoint -> params.json + consolidated.safetensors + tokenizer")
    h.add_argument("checkpoint", help="training checkpoint folder (runs/NAME/checkpoints/step_N), or a run folder for its latest")
    h.add_argument("--out", required=True, help="output model folder")
    h.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float16", help="storage precision")
    h.add_argument("--with-encoder", action="store_true",
                   help="also write an imported encoder's weights (default: name its source; it is imported at load time)")
    h.set_defaults(func=lambda a: __import__("voxkit.cli.chat", fromlist=["run_export"]).run_export(a))


def run_asr(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from voxkit.asr.export import export_checkpoint
    from voxkit.subset_tokenizer import load_folder_tokenizer
    from voxkit.train.checkpointing import latest_checkpoint

    path = Path(args.checkpoint)
    if (path / "checkpoints").is_dir():
        path = latest_checkpoint(path) or path
    tokenizer = load_folder_tokenizer(args.tokenizer) if args.tokenizer else None
    out = export_checkpoint(path, tokenizer, args.out, dtype=getattr(torch, args.dtype))
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(f"{out}: recogniser from {path} ({size:.1f} MB)")
    return 0


def run_codec(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from voxkit.codec.checkpoint import load_codec, save_codec
    from voxkit.train.checkpointing import latest_checkpoint

    path = Path(args.checkpoint)
    if (path / "checkpoints").is_dir():
        path = latest_checkpoint(path) or path
    out = save_codec(load_codec(path), args.out, dtype=getattr(torch, args.dtype))
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(f"{out}: codec from {path} ({size:.1f} MB)")
    return 0
