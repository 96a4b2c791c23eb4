"""Log-mel front-end of the recogniser (16 kHz, 100 frames/s, 128 Slaney mels).

Frame i is centred on sample ``160 i`` and covers samples ``[160 i - 200, 160 i + 200)`` with zeros
before the start, so a frame never depends on audio more than 200 samples (12.5 ms) after its
centre: the streaming engine can compute 8 frames (one 80 ms decoder step) from a fixed window of
1520 samples. The log is floored at a FIXED maximum (1.5 - 8) instead of the utterance maximum
so that features never depend on the future. This equals transformers' VoxtralRealtime feature
extractor whenever the audio starts with at least 200 samples of silence (its reflect padding then
sees zeros too), which the left padding of every stream guarantees.
"""

from __future__ import annotations

import torch
from torch import nn

from voxkit.audio import constants

# The recogniser's names for the shared audio numbers (voxkit.audio.constants holds the values).
SAMPLE_RATE = constants.ASR_SAMPLE_RATE
N_FFT = constants.MEL_N_FFT
HOP = constants.MEL_HOP
N_MELS = constants.MEL_BINS
FRAMES_PER_STEP = constants.MEL_FRAMES_PER_STEP  # mel frames per 80 ms decoder step
SAMPLES_PER_STEP = constants.ASR_SAMPLES_PER_STEP  # 1280
GLOBAL_LOG_MEL_MAX = 1.5
LOOKAHEAD = N_FFT // 2 - HOP  # 40: samples past a step's end that its last frame needs
STEP_WINDOW = N_FFT + HOP * (FRAMES_PER_STEP - 1)  # 1520 samples give 8 frames


class LogMel(nn.Module):
    """Waveform [B, N] -> normalised log-mel [B, 128, N // 160]."""

    window: torch.Tensor
    filters: torch.Tensor

    def __init__(self, n_mels: int = N_MELS, log_max: float = GLOBAL_LOG_MEL_MAX) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.log_max = log_max
        with torch.device("cpu"):  # constant tables: never on the meta device (torchaudio needs values)
            window, filters = self._tables(None)
        self.register_buffer("window", window, persistent=False)  # [400]
        self.register_buffer("filters", filters, persistent=False)  # [n_mels, 201]

    def _tables(self, device: torch.device | None) -> tuple[torch.Tensor, torch.Tensor]:
        import torchaudio

        fb = torchaudio.functional.melscale_fbanks(
            N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, self.n_mels, SAMPLE_RATE, norm="slaney", mel_scale="slaney"
        )  # [201, n_mels]
        window, filters = torch.hann_window(N_FFT), fb.t().contiguous()
        if device is not None:
            window, filters = window.to(device), filters.to(device)
        return window, filters

    def init_buffers(self, device: torch.device) -> None:
        """Recompute the constant tables after a model was built on the meta device."""
        self.window, self.filters = self.window.to(device), self.filters.to(device)

    def frames(self, padded: torch.Tensor) -> torch.Tensor:
        """Frames of an already padded signal [B, 400 + 160 (F - 1)] -> [B, n_mels, F]."""
        spec = torch.stft(padded, N_FFT, HOP, window=self.window, center=False, return_complex=True)  # [B, 201, F]
        mel = self.filters @ spec.abs().pow(2)  # [B, n_mels, F]
        log = torch.clamp(mel, min=1e-10).log10()
        log = log.clamp(min=self.log_max - 8.0)  # a number, not a tensor made on the device (CUDA graphs)
        return (log + 4.0) / 4.0

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Offline features of whole signals [B, N] (N // 160 frames, as transformers)."""
        num_frames = wav.shape[-1] // HOP
        if num_frames == 0:
            return wav.new_zeros(wav.shape[0], self.n_mels, 0)
        # left: half a window of zeros; right: enough zeros for the last frame's window
        right = max(0, (num_frames - 1) * HOP + N_FFT // 2 - wav.shape[-1])
        padded = torch.nn.functional.pad(wav, (N_FFT // 2, right))  # [B, 200 + N + right]
        return self.frames(padded)[..., :num_frames]
