"""Codes on disk: one safetensors file with ``codes`` [T, 37] and what is needed to decode them right.

The metadata records the codebook sizes and a fingerprint of the semantic codebook (a file from
another codec is refused instead of decoded into noise: the same sizes with another table mean
other sounds), the frame rate and the original length in samples at the codec's rate (decoding
gives whole 80 ms frames; the length trims the padding of the last one). Codes are stored as
int16 where every code fits (codebooks of up to 32768: the published sizes, 74 bytes per frame,
~0.9 kB per second), else as int32; :func:`load_codes` reads any integer type. int16 files of a
codebook of up to 65536, written before the wider type, are read back as the codes they held (16
bits hold them, read as unsigned).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass

import torch

from voxkit.codec.args import CodecArgs
from voxkit.errors import VoxkitError
from voxkit.fileio import atomic_write

FORMAT = "voxkit-codec-codes/1"
INTEGER_DTYPES = ("I8", "I16", "I32", "I64", "U8", "U16", "U32")  # safetensors' names; BOOL and floats are not codes
INT16_CODES = 2**15  # the largest codebook whose codes int16 holds (0 .. 32767)


@dataclass(frozen=True)
class CodesFile:
    codes: torch.Tensor  # [T, 37] int64
    num_samples: int  # original length at sample_rate
    sample_rate: int
    semantic_codebook_size: int
    acoustic_codebook_size: int
    codebook: str | None = None  # fingerprint of the semantic codebook (None: a file written before it was recorded)
    path: str | None = None  # the file it was read from (named in messages)


def codebook_fingerprint(table: torch.Tensor) -> str:
    """A short hash of the semantic codebook [codes, dim] (float32): what the semantic codes mean.

    Why the codebook and not every weight: codes stay valid for a decoder fine-tuned on the same
    codes, but any other training (or another random start) gives the same indices other vectors.
    """
    data = table.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def storage_dtype(args: CodecArgs) -> torch.dtype:
    """int16 where every code of both codebooks fits (the file stays 2 bytes a code), else int32.

    Why not always int16: a codebook of 65536 codes wrote code 40000 as -25536.
    """
    return torch.int16 if max(args.semantic_codebook_size, args.acoustic_codebook_size) <= INT16_CODES else torch.int32


def save_codes(path: str | os.PathLike[str], codes: torch.Tensor, num_samples: int, args: CodecArgs,
               codebook: str | None = None) -> None:
    """Write codes [T, 37] with what decoding needs; ``codebook``: the encoder's :func:`codebook_fingerprint`."""
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
    if codebook is not None:
        meta["codebook"] = codebook
    tensors = {"codes": codes.to(storage_dtype(args)).contiguous()}  # [T, 37]
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load_codes(path: str | os.PathLike[str], args: CodecArgs | None = None, codebook: str | None = None) -> CodesFile:
    """Read a codes file; anything else (audio, another safetensors file, codes that are not an
    integer [frames, codes] table, a length its frames cannot hold) is a one-line error.

    ``args`` (and ``codebook``, its :func:`codebook_fingerprint`): the codec that will decode the
    file, checked by :func:`check_compatible` before the file's length is judged, so that a file of
    another codec (another rate, say) is named as that, not as a damaged file.
    """
    from safetensors import SafetensorError, safe_open

    name = os.fspath(path)
    if not os.path.isfile(name):
        raise VoxkitError(f"{name}: {'a folder, not a codes file' if os.path.isdir(name) else 'no such file'}")
    try:
        with safe_open(name, framework="pt") as fh:
            meta = fh.metadata() or {}
            if meta.get("format") != FORMAT or "codes" not in fh.keys():  # noqa: SIM118 (safe_open has no __contains__)
                raise VoxkitError(f"{name} is not a voxkit codes file (write one with voxkit codec encode)")
            dtype = fh.get_slice("codes").get_dtype()
            if dtype not in INTEGER_DTYPES:  # float codes would be truncated to integers and decoded
                raise VoxkitError(f"{name}: its codes are {dtype.lower()} values, not integers (not written by voxkit codec encode)")
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
            codebook=meta.get("codebook"),
            path=name,
        )
    except (KeyError, ValueError):
        raise VoxkitError(f"{name}: its metadata is incomplete (not written by voxkit codec encode)") from None
    if codes.dim() != 2:
        raise VoxkitError(f"{name}: its codes have shape {list(codes.shape)}, not [frames, codes per frame]")
    if file.num_samples < 0:
        raise VoxkitError(f"{name}: its metadata gives a negative length ({file.num_samples} samples)")
    largest = max(file.semantic_codebook_size, file.acoustic_codebook_size)
    if dtype == "I16" and largest > INT16_CODES:  # written before wider codebooks got int32: 40000 was stored as -25536
        if largest > 2**16:
            raise VoxkitError(f"{name}: its codes were stored in 16 bits, which do not hold codes up to {largest - 1}: "
                              "encode the audio again")
        file = dataclasses.replace(file, codes=codes & 0xFFFF)  # the same 16 bits read as unsigned
    if args is not None:
        check_compatible(file, args, name, codebook)
    per_frame = _samples_per_frame(meta, file.sample_rate)
    if per_frame is not None and file.num_samples > codes.shape[0] * per_frame:
        raise VoxkitError(f"{name}: its metadata gives {file.num_samples} samples, more than its {codes.shape[0]} frames hold "
                          f"({codes.shape[0] * per_frame}): the file is damaged")
    return file


def _samples_per_frame(meta: dict[str, str], sample_rate: int) -> int | None:
    """Samples per frame from a codes file's metadata (None where its frame rate is missing or not a rate)."""
    try:
        rate = float(meta["frame_rate"])
    except (KeyError, ValueError):
        return None
    return round(sample_rate / rate) if rate > 0 else None


def check_compatible(file: CodesFile, args: CodecArgs, name: str, codebook: str | None = None) -> None:
    """Refuse codes made by a codec with other codebooks or another rate, or (where both are known)
    another semantic codebook: ``codebook`` is the decoding codec's :func:`codebook_fingerprint`."""
    theirs = (file.semantic_codebook_size, file.acoustic_codebook_size, file.sample_rate, file.codes.shape[-1])
    ours = (args.semantic_codebook_size, args.acoustic_codebook_size, args.sampling_rate, args.num_codebooks)
    if theirs != ours:
        raise VoxkitError(
            f"{name} was written by another codec (codebooks {theirs[0]}/{theirs[1]}, {theirs[2]} Hz, {theirs[3]} codes per frame; "
            f"this one: {ours[0]}/{ours[1]}, {ours[2]} Hz, {ours[3]})"
        )
    if codebook is not None and file.codebook is not None and file.codebook != codebook:
        raise VoxkitError(f"{name} was written by another codec (its codebook {file.codebook}, this one's {codebook}): "
                          "its codes would decode into noise here; decode it with the codec that encoded it")
