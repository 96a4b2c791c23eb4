"""The streaming recogniser: causal encoder + adapter + delay-conditioned lm decoder.

At every 80 ms step the decoder input is ``adapter(audio_t) + embed(token_{t-1})`` and exactly one
token comes out. The same :meth:`RealtimeRecognizer.forward` trains on whole sequences and, inside
``with model.streaming(B):``, advances streams by whole steps (8 mel frames per step).
"""

from __future__ import annotations

import torch
from torch import nn

from voxkit.asr.args import RealtimeArgs
from voxkit.asr.encoder import AudioAdapter, CausalAudioEncoder
from voxkit.asr.features import LogMel
from voxkit.lm import Transformer
from voxkit.streaming import StreamingModule

CTC_CLASSES = 257  # UTF-8 bytes + blank (256)


class RealtimeRecognizer(StreamingModule):
    def __init__(self, args: RealtimeArgs) -> None:
        super().__init__()
        self.args = args
        self.encoder = CausalAudioEncoder(args.encoder, args.n_mels)
        self.adapter = AudioAdapter(args.encoder.dim, args.decoder.dim, args.downsample_factor)
        self.decoder = Transformer(args.decoder)
        self.features = LogMel(args.n_mels)
        self.ctc_head: nn.Linear | None = None

    def export_config(self) -> dict:
        """The published params.json of this model (stored next to training checkpoints)."""
        return self.args.to_params()

    @property
    def mel_frames_per_step(self) -> int:
        return 2 * self.args.downsample_factor  # conv stride 2, then the adapter's factor

    def enable_ctc_head(self) -> None:
        """Add the training-only auxiliary CTC head (UTF-8 bytes + blank) on the 50 Hz encoder.

        It gives the encoder a direct, alignment-free signal early in training; it is not part of
        the published layout and export drops it.
        """
        self.ctc_head = nn.Linear(self.args.encoder.dim, CTC_CLASSES)

    def forward(
        self, mel: torch.Tensor, tokens: torch.Tensor, num_delay_tokens: torch.Tensor, *, with_ctc: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """mel [B, n_mels, 8 T], tokens [B, T] (the previous token at every step), delay [B] -> logits [B, T, V].

        ``with_ctc`` also returns the CTC head's log-probabilities [B, 4 T, 257] (training only).
        """
        frames = self.encode_frames(mel, num_delay_tokens)  # [B, 4 T, d_enc]
        logits = self.decode(self.adapter(frames), tokens, num_delay_tokens)  # [B, T, V]
        if not with_ctc:
            return logits
        if self.ctc_head is None:
            raise ValueError("the CTC head is not enabled")
        return logits, self.ctc_head(frames).float().log_softmax(-1)

    def encode_frames(self, mel: torch.Tensor, num_delay_tokens: torch.Tensor) -> torch.Tensor:
        """mel [B, n_mels, 8 T] -> 50 Hz encoder states [B, 4 T, d_enc]."""
        if mel.shape[-1] % self.mel_frames_per_step:
            raise ValueError(f"mel frames ({mel.shape[-1]}) must be a multiple of {self.mel_frames_per_step}")
        return self.encoder(mel, num_delay_tokens)

    def encode(self, mel: torch.Tensor, num_delay_tokens: torch.Tensor) -> torch.Tensor:
        """mel [B, n_mels, 8 T] -> decoder audio inputs [B, T, D].

        Split from :meth:`decode` so that file transcription can run the encoder over many steps
        at once (it is causal: the same outputs) and then step the decoder token by token.
        """
        return self.adapter(self.encode_frames(mel, num_delay_tokens))

    def decode(self, audio: torch.Tensor, tokens: torch.Tensor, num_delay_tokens: torch.Tensor) -> torch.Tensor:
        """audio [B, T, D] (from :meth:`encode`), tokens [B, T] (previous token per step) -> logits [B, T, V]."""
        if audio.shape[1] != tokens.shape[1]:
            raise ValueError(f"{audio.shape[1]} audio steps but {tokens.shape[1]} tokens")
        x = audio + self.decoder.embed(tokens)  # [B, T, D]
        return self.decoder.logits(self.decoder.forward_embeddings(x, num_delay_tokens=num_delay_tokens))
