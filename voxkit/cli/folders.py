"""A model folder named by a flag, told in the user's words when it holds another kind of model.

Why: the loaders speak of missing config sections ("no 'codec_args' section"); a user who gave
the recogniser's folder, or a TTS folder where its codec was meant, should read what the folder
is and, for a TTS folder, where its codec is.
"""

from __future__ import annotations

import json
import os

KINDS = {"voxkit_tts": "a TTS model folder", "codec_args": "a codec folder", "multimodal": "a recogniser folder"}
"""A key at the top of params.json, and the kind of folder it marks."""


def wrong_model(folder: str, wanted: str, err: Exception, flag: str = "--model") -> str:
    """The loader's reason ``err`` led by ``flag`` and the folder or, where params.json tells,
    what the folder holds instead of ``wanted``."""
    try:
        with open(os.path.join(folder, "params.json"), encoding="utf-8") as f:
            params = json.load(f)
    except (OSError, ValueError):
        params = None
    kind = next((k for key, k in KINDS.items() if isinstance(params, dict) and key in params), wanted)
    if kind == wanted:
        return f"{flag} {folder}: {err}"
    codec = os.path.join(folder, "codec")
    where = f" (its codec is {codec})" if kind == KINDS["voxkit_tts"] and os.path.isdir(codec) else ""
    return f"{flag} {folder} is {kind}{where}, not {wanted}"
