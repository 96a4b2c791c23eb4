"""Classical speech codecs ("peers") run through their Debian command-line tools.

A neural codec's objective scores mean little alone: a mel distance of 0.5 is good or bad only next
to what established codecs reach at a similar bitrate on the same clips. Codec2 (2.4 and 3.2 kbps,
a parametric vocoder built for HF radio) and Opus (6 kbps, the lowest rate it accepts; SILK mode)
all spend more bits than voxkit's codec (~2.1 kbps): matching them is a result, beating Opus a strong one.

Each peer is a subprocess round trip through temporary files: the tools read and write files, and
calling them this way needs no Python binding for either library. A missing binary is a
:class:`~voxkit.errors.VoxkitError` that names the Debian package to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence

import numpy as np

from voxkit.errors import VoxkitError

CODEC2_RATE = 8_000
"""Codec2's only sample rate (narrowband, 4 kHz audio bandwidth)."""

CODEC2_FRAME = 160
"""Samples per Codec2 frame at 8 kHz (20 ms): its decoder's output lags the input by one frame."""

OPUS_RATE = 16_000
"""Rate of the WAV handed to opusenc and asked of opusdec (see :class:`OpusPeer`)."""


def _require(tools: Sequence[str], package: str, codec: str) -> None:
    """Fail before any audio is read when a tool is not on PATH, naming what to install."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise VoxkitError(f"{codec} needs {' and '.join(missing)} from the Debian package {package}: "
                          f"sudo apt-get install {package}")


def _run(argv: list[str], codec: str) -> None:
    """Run one tool; a failure is a one-line error with the tool's own last message."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as err:  # removed or not executable after _require looked
        raise VoxkitError(f"{codec}: cannot run {argv[0]}: {err.strerror or err}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no message"]
        raise VoxkitError(f"{codec}: {os.path.basename(argv[0])} failed (exit {done.returncode}): {tail[0]}")


def _mono_float(audio: np.ndarray) -> np.ndarray:
    """Coerce the caller's samples to float32 [N], refusing what no codec can encode."""
    from voxkit.audio.io import array_to_mono

    return array_to_mono(audio)  # [N] float32, integer PCM scaled, non-finite or empty refused


def _resample(audio: np.ndarray, orig_sr: int, sample_rate: int) -> np.ndarray:
    import torch

    from voxkit.audio.io import resample

    return resample(torch.from_numpy(audio), int(orig_sr), int(sample_rate)).numpy()  # [N'] float32


def _to_pcm16(audio: np.ndarray) -> np.ndarray:
    """float32 [N] in [-1, 1] -> int16 [N] (rounded, clipped: resampling can overshoot full scale)."""
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")


class Codec2Peer:
    """Codec2 at 2400 or 3200 bps through ``c2enc MODE in.raw out.bit`` / ``c2dec MODE out.bit out.raw``.

    The tools read and write headerless signed 16-bit little-endian mono at 8 kHz, so the input is
    resampled to 8 kHz and the output stays there (resampling it up would add no information).
    The decoder's output lags its input by one 20 ms frame; that frame is dropped, after the input
    was padded by as much silence (plus a partial frame), so the output is time-aligned with the input and
    of the same length. Scores of an unaligned copy would charge Codec2 for its latency, not its quality.
    """

    def __init__(self, mode: int) -> None:
        self.mode = int(mode)
        self.name = f"codec2-{self.mode}"
        self.bitrate_bps = float(self.mode)
        _require(("c2enc", "c2dec"), "codec2", self.name)

    def roundtrip(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
        x = _resample(_mono_float(audio), sample_rate, CODEC2_RATE)  # [N] at 8 kHz
        tail = CODEC2_FRAME + (-len(x)) % CODEC2_FRAME  # the delay's frame plus the last partial one
        padded = np.concatenate([x, np.zeros(tail, dtype=np.float32)])  # [N + tail]
        with tempfile.TemporaryDirectory(prefix="voxkit-codec2-") as tmp:
            raw_in, bits, raw_out = (os.path.join(tmp, n) for n in ("in.raw", "out.bit", "out.raw"))
            _to_pcm16(padded).tofile(raw_in)
            _run(["c2enc", str(self.mode), raw_in, bits], self.name)
            _run(["c2dec", str(self.mode), bits, raw_out], self.name)
            decoded = np.fromfile(raw_out, dtype="<i2").astype(np.float32) / 32768.0  # [~N + tail]
        out = decoded[CODEC2_FRAME : CODEC2_FRAME + len(x)]  # [<= N] aligned with x
        if len(out) == 0:
            raise VoxkitError(f"{self.name}: c2dec returned no audio for {len(x) / CODEC2_RATE:.3f} s of input")
        return np.ascontiguousarray(out), CODEC2_RATE


class OpusPeer:
    """Opus at a hard constant bitrate through ``opusenc`` / ``opusdec`` (Ogg Opus files).

    Input goes in as a 16-bit WAV at 16 kHz and comes back at 16 kHz: at 6 kbps Opus codes at most
    wideband speech (8 kHz audio bandwidth), so a 24 or 48 kHz input would only be low-passed inside
    the encoder, and 16 kHz is the rate every metric here is computed at. ``--hard-cbr`` spends
    exactly the nominal rate on every packet, as Codec2 and voxkit's codec do (a VBR figure would
    be an average that easy clips pull down). ``--framesize 60``: at this rate 20 ms packets spend
    a noticeable share of the bits on per-packet overhead; 60 ms is Opus's largest frame and still
    shorter than voxkit's own 80 ms codec frame, so the peer is not handicapped on latency grounds.
    opusdec removes the encoder's pre-skip itself, so the output is aligned with the input.
    """

    def __init__(self, bitrate_bps: int) -> None:
        self.bitrate_bps = float(bitrate_bps)
        self.name = f"opus-{int(bitrate_bps)}"
        _require(("opusenc", "opusdec"), "opus-tools", self.name)

    def roundtrip(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
        import soundfile as sf

        x = _resample(_mono_float(audio), sample_rate, OPUS_RATE)  # [N] at 16 kHz
        kbps = f"{self.bitrate_bps / 1000:g}"
        with tempfile.TemporaryDirectory(prefix="voxkit-opus-") as tmp:
            wav_in, packed, wav_out = (os.path.join(tmp, n) for n in ("in.wav", "out.opus", "out.wav"))
            sf.write(wav_in, _to_pcm16(x), OPUS_RATE, subtype="PCM_16")
            _run(["opusenc", "--quiet", "--hard-cbr", "--bitrate", kbps, "--framesize", "60", wav_in, packed], self.name)
            _run(["opusdec", "--quiet", "--rate", str(OPUS_RATE), packed, wav_out], self.name)
            decoded, rate = sf.read(wav_out, dtype="float32", always_2d=True)  # [M, C]
        out = decoded.mean(axis=1)  # [M]
        if len(out) == 0:
            raise VoxkitError(f"{self.name}: opusdec returned no audio for {len(x) / OPUS_RATE:.3f} s of input")
        return np.ascontiguousarray(out[: len(x)]), int(rate)


PEER_CODECS: dict[str, Callable[[], Codec2Peer | OpusPeer]] = {
    "codec2-2400": lambda: Codec2Peer(2400),
    "codec2-3200": lambda: Codec2Peer(3200),
    "opus-6000": lambda: OpusPeer(6000),
}
"""The peers by column name; each entry builds one (and checks its tools are installed)."""

DEFAULT_PEERS: tuple[str, ...] = tuple(PEER_CODECS)


def peer_codec_names(spec: str) -> list[str]:
    """A comma-separated list of peer names (``--peers``), checked without running anything.

    Unknown names list the choices; a name given twice would be two identical table rows; a list
    that names no codec is refused (--no-peers is how no peer is asked for).
    """
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:  # --peers "" scored no peer without a word, where the user may have meant the defaults
        raise VoxkitError(f"--peers {spec!r} names no peer codec: choose from {', '.join(PEER_CODECS)}, "
                          "or score the model alone with --no-peers")
    for name in names:
        if name not in PEER_CODECS:
            raise VoxkitError(f"unknown peer codec {name!r}; choose from: {', '.join(PEER_CODECS)}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise VoxkitError(f"peer codec given twice: {', '.join(twice)}")
    return names


def load_peer_codec(name: str) -> Codec2Peer | OpusPeer:
    """The peer called ``name`` (a key of :data:`PEER_CODECS`), its tools checked; unknown names list the choices."""
    if name not in PEER_CODECS:
        raise VoxkitError(f"unknown peer codec {name!r}; choose from: {', '.join(PEER_CODECS)}")
    return PEER_CODECS[name]()
