"""The numbers every audio front-end shares: sample rates, the 80 ms step, mel and codec framing.

They live in one module because each one is a contract between several parts: the recogniser's
features, its streaming session, the training batches, the CLI's file chunks and the data tools
must agree on them exactly, and the codec, TTS and audio-chat models reuse the same step. Every
derived number is computed from the base ones here, so the relations (1280 = 16000 * 0.08,
8 mel frames = 1280 / 160, 8 codec patches = 1920 / 240) hold by construction.

Two sample rates (DESIGN §2): recognition and audio chat read 16 kHz mono; the codec and TTS model
24 kHz mono. Both run their decoders at one step per 80 ms (12.5 Hz).
"""

from __future__ import annotations

# ----------------------------------------------------------------------------------- rates

ASR_SAMPLE_RATE = 16_000
"""Hz of the recogniser's and the audio-chat model's input (mono)."""

CODEC_SAMPLE_RATE = 24_000
"""Hz of the codec's and the TTS model's waveforms (mono)."""

# ----------------------------------------------------------------------------- the step

STEP_MS = 80
"""One decoder (recogniser) or codec frame: every model emits one token per step."""

STEP_SECONDS = STEP_MS / 1000
STEPS_PER_SECOND = 1000 / STEP_MS  # 12.5 Hz

ASR_SAMPLES_PER_STEP = ASR_SAMPLE_RATE * STEP_MS // 1000  # 1280
CODEC_SAMPLES_PER_STEP = CODEC_SAMPLE_RATE * STEP_MS // 1000  # 1920

# ------------------------------------------------------------------ recogniser log-mel

MEL_N_FFT = 400
"""STFT size and Hann window length of the log-mel front-end (25 ms at 16 kHz)."""

MEL_HOP = 160
"""Samples between mel frames: 10 ms at 16 kHz, i.e. 100 frames per second."""

MEL_BINS = 128
"""Slaney mel bins, 0 to 8 kHz."""

MEL_FRAMES_PER_STEP = ASR_SAMPLES_PER_STEP // MEL_HOP  # 8

# ----------------------------------------------------------------------- codec patches

CODEC_PATCH = 240
"""Samples per codec input patch: 10 ms at 24 kHz, i.e. 100 patches per second."""

CODEC_PATCHES_PER_STEP = CODEC_SAMPLES_PER_STEP // CODEC_PATCH  # 8
