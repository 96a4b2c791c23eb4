"""Codes on disk: one safetensors file with ``codes`` [T, 37] and what is needed to decode them right.

The metadata records the codebook sizes (a file from another codec is refused instead of decoded
into noise), the frame rate and the original length in samples at the codec's rate (decoding
gives whole 80 ms frames; the length trims the padding of the last one). Codes are stored as
int16: every code is below 8192, and the file is then 74 bytes per frame (~0.9 kB per second).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from voxkit.codec.args import CodecArgs
from voxkit.errors import VoxkitError
from voxkit.fileio import atomic_write

FORMAT = "voxkit-codec-codes/1"


@dataclass(frozen=True)
class CodesFile:
    codes: torch.Tensor  # [T, 37] int64
    num_samples: int  # original length at sample_rate
    sample_rate: int
    semantic_codebook_size: int
    acoustic_codebook_size: int


def save_codes(path: str | os.PathLike[str], codes: torch.Tensor, num_samples: int, args: CodecArgs) -> None:
    from safetensors.torch import save_file

    meta = {
        "format": FORMAT,
        "num_samples": str(num_samples),
        "sample_rate": str(args.sampling_rate),
        "frame_rate": str(args.frame_rate),
        "semantic_codebook_size": str(args.semantic_codebook_size),
        "acoustic_codebook_size": str(args.acoustic_codebook_size),
        "num_codebooks": str(args.num_codebooks),
    }
    tensors = {"codes": codes.to(torch.int16).contiguous()}  # [T, 37]
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load_codes(path: str | os.PathLike[str]) -> CodesFile:
    """Read a codes file; anything else (audio, another safetensors file) is a one-line error."""
    from safetensors import SafetensorError, safe_open

    name = os.fspath(path)
    if not os.path.isfile(name):
        raise VoxkitError(f"{name}: {'a folder, not a codes file' if os.path.isdir(name) else 'no such file'}")
    try:
        with safe_open(name, framework="pt") as fh:
            meta = fh.metadata() or {}
            if meta.get("format") != FORMAT or "codes" not in fh.keys():  # noqa: SIM118 (safe_open has no __contains__)
                raise VoxkitError(f"{name} is not a voxkit codes file (write one with voxkit codec encode)")
            codes = fh.get_tensor("codes").long()  # [T, 37]
    except (SafetensorError, OSError, ValueError) as err:
        raise VoxkitError(f"{name} is not a voxkit codes file ({str(err).splitlines()[0][:120]})") from None
    try:
        file = CodesFile(
            codes=codes,
            num_samples=int(meta["num_samples"]),
            sample_rate=int(meta["sample_rate"]),
            semantic_codebook_size=int(meta["semantic_codebook_size"]),
            acoustic_codebook_size=int(meta["acoustic_codebook_size"]),
        )
    except (KeyError, ValueError):
        raise VoxkitError(f"{name}: its metadata is incomplete (not written by voxkit codec encode)") from None
    if file.num_samples < 0:
        raise VoxkitError(f"{name}: its metadata gives a negative length ({file.num_samples} samples)")
    return file


def check_compatible(file: CodesFile, args: CodecArgs, name: str) -> None:
    """Refuse codes made by a codec with other codebooks or another rate."""
    theirs = (file.semantic_codebook_size, file.acoustic_codebook_size, file.sample_rate, file.codes.shape[-1])
    ours = (args.semantic_codebook_size, args.acoustic_codebook_size, args.sampling_rate, args.num_codebooks)
    if theirs != ours:
        raise VoxkitError(
            f"{name} was written by another codec (codebooks {theirs[0]}/{theirs[1]}, {theirs[2]} Hz, {theirs[3]} codes per frame; "
            f"this one: {ours[0]}/{ours[1]}, {ours[2]} Hz, {ours[3]})"
        )
