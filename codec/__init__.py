"""VQ-FSQ neural speech codec (voxkit.codec, DESIGN.md §5): 24 kHz audio <-> 12.5 Hz frames of 37 codes.

``from voxkit.codec import Codec`` is the Python API (:mod:`voxkit.codec.api`); codes files are
written by :meth:`Codec.save_codes` and read by :func:`load_codes` (or decoded straight from their
path by :meth:`Codec.decode`). The model, its quantizer, losses, discriminator and training task
live in the modules of this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voxkit.codec.api import Codec, CodecStream
    from voxkit.codec.codes_file import CodesFile, load_codes

__all__ = ["Codec", "CodecStream", "CodesFile", "load_codes"]

_HOMES = {"Codec": "api", "CodecStream": "api", "CodesFile": "codes_file", "load_codes": "codes_file"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"voxkit.codec.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'voxkit.codec' has no attribute {name!r}")
