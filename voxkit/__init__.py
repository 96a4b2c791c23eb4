"""voxkit: streaming speech models (recognition, codec, TTS, audio chat) on one Mistral-style backbone.

``import voxkit`` stays light: the public API objects are imported on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "Transcriber": "voxkit.api.Transcriber",
    "TranscriptionStream": "voxkit.api.TranscriptionStream",
    "AudioChat": "voxkit.chat.api.AudioChat",
    "Speaker": "voxkit.tts.api.Speaker",
    "Voice": "voxkit.tts.api.Voice",
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'voxkit' has no attribute {name!r}")
    module_name, _, attr = target.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)
