"""Audio chat (Voxtral-Mini-style): an audio encoder, an adapter and lm's decoder, composed above both.

``import voxkit.chat`` stays light; :class:`~voxkit.chat.api.AudioChat` is the entry point.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"AudioChat": "voxkit.chat.api", "ChatModel": "voxkit.chat.model", "ChatArgs": "voxkit.chat.args",
         "load_chat": "voxkit.chat.checkpoint", "save_chat": "voxkit.chat.checkpoint"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'voxkit.chat' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
