"""Speaker embeddings for the cloning evaluation: Resemblyzer's pretrained voice encoder.

Why an outside encoder: a similarity measured with voxkit's own codec or TTS model could be
flattered by the very features the model learnt to copy. Resemblyzer (PyPI ``resemblyzer``, the
``tts-eval`` extra, Apache-2.0) is a 3-layer LSTM speaker-verification encoder trained on real
speakers; its weights (``pretrained.pt``, 17 MB) ship inside the wheel, so nothing is downloaded at
run time. An utterance becomes a 256-d vector, non-negative and unit-norm, so the cosine of two
embeddings lies in [0, 1]; it is computed by the evaluation, not here.

Audio is prepared the way Resemblyzer's own ``preprocess_wav`` does it (volume raised to -30 dBFS,
pauses longer than ~0.2 s cut with WebRTC's voice activity detector), at 16 kHz, the rate it was
trained at. A clip in which the detector finds no voiced audio (silence, too short) has no
embedding: :meth:`ResemblyzerEmbedder.embed` returns None and the evaluation counts it, rather than
scoring the encoder's answer for an empty input.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import types
import warnings
from typing import Any, Protocol

import numpy as np

from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.errors import VoxkitError

EMBED_RATE = ASR_SAMPLE_RATE
"""Resemblyzer's rate (16 kHz): callers resample to it before :meth:`Embedder.embed`."""

MIN_VOICED_S = 0.1
"""Less voiced audio than this after the pauses are cut: no embedding (the encoder would see padding)."""

TTS_EVAL_HINT = "pip install 'voxkit[tts-eval]'"


class Embedder(Protocol):
    """What the evaluation needs of a speaker encoder: a name and one vector per clip (or None)."""

    name: str

    def embed(self, audio: np.ndarray) -> np.ndarray | None:
        """float32 mono [N] at :data:`EMBED_RATE` -> embedding [D], or None when the clip holds no voiced audio."""
        ...


class ResemblyzerEmbedder:
    """Resemblyzer's ``VoiceEncoder`` on the CPU, one thread (tens of milliseconds per clip of a few seconds)."""

    name = "resemblyzer"

    def __init__(self, device: str = "cpu") -> None:
        module = _import_resemblyzer()
        self._preprocess = module.preprocess_wav
        self.encoder = module.VoiceEncoder(device, verbose=False)

    def embed(self, audio: np.ndarray) -> np.ndarray | None:
        wave = np.ascontiguousarray(audio, dtype=np.float32)  # [N] at 16 kHz
        if wave.size == 0 or not np.any(wave):
            return None
        peak = float(np.abs(wave).max())
        if peak > 1.0:
            wave = wave / peak  # the detector reads 16-bit PCM: louder samples would wrap around
        with np.errstate(divide="ignore", invalid="ignore"):
            voiced = self._preprocess(wave)  # [M <= N]: volume normalised, long pauses cut
        if voiced.size < MIN_VOICED_S * EMBED_RATE or not np.all(np.isfinite(voiced)):
            return None
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the LSTM steps 160 frames of 256 units: one thread is as fast, and is not
        try:                      # stalled 100-fold by other busy processes as threads meeting at every step are
            return np.asarray(self.encoder.embed_utterance(voiced), dtype=np.float32)  # [256], unit norm
        finally:
            torch.set_num_threads(threads)


def load_embedder(name: str = "resemblyzer") -> Embedder:
    """The speaker encoder called ``name`` (only "resemblyzer" so far); a missing extra is a one-line error."""
    if name != "resemblyzer":
        raise VoxkitError(f"unknown speaker encoder {name!r}; choose: resemblyzer")
    return ResemblyzerEmbedder()


def _import_resemblyzer() -> Any:
    """Import resemblyzer, which needs the ``tts-eval`` extra.

    Its dependency webrtcvad 2.0.10 reads its own version through ``pkg_resources``, which
    setuptools no longer ships (since 81). Where that module is missing, a stand-in answering
    that one question through :mod:`importlib.metadata` is present for the import only, then
    removed, so nothing else sees it. scipy's warning about the namespace resemblyzer imports
    from is silenced the same way.
    """
    shim = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)  # "pkg_resources is deprecated" from older setuptools
        if "pkg_resources" not in sys.modules and importlib.util.find_spec("pkg_resources") is None:
            shim = types.ModuleType("pkg_resources")
            shim.get_distribution = lambda dist: types.SimpleNamespace(version=importlib.metadata.version(dist))  # type: ignore[attr-defined]
            sys.modules["pkg_resources"] = shim
        try:
            import resemblyzer
        except ImportError as err:
            raise VoxkitError(f"speaker similarity needs the tts-eval extra ({err.name} is missing): {TTS_EVAL_HINT}") from None
        finally:
            if shim is not None and sys.modules.get("pkg_resources") is shim:
                del sys.modules["pkg_resources"]
    return resemblyzer
