"""VQ-FSQ neural speech codec (voxkit.codec, DESIGN.md §5): 24 kHz audio <-> 12.5 Hz frames of 37 codes.

``from voxkit.codec import Codec`` is the Python API (:mod:`voxkit.codec.api`); the model, its
quantizer, losses, discriminator and training task live in the modules of this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voxkit.codec.api import Codec, CodecStream

__all__ = ["Codec", "CodecStream"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from voxkit.codec import api

        return getattr(api, name)
    raise AttributeError(f"module 'voxkit.codec' has no attribute {name!r}")
