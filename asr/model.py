"""The streaming recogniser: causal encoder + adapter + delay-conditioned lm decoder.

At every 80 ms step the decoder input is ``adapter(audio_t) + embed(token_{t-1})`` and exactly one
token comes out. The same :meth:`RealtimeRecognizer.forward` trains on whole sequences and, inside
``with model.streaming(B):``, advances streams by whole steps (8 mel frames per step).
"""

from __future__ import annotations

import torch

from voxkit.asr.args import RealtimeArgs
from voxkit.asr.encoder import AudioAdapter, CausalAudioEncoder
from voxkit.asr.features import LogMel
from voxkit.lm import Transformer
from voxkit.streaming import StreamingModule


class RealtimeRecognizer(StreamingModule):
    def __init__(self, args: RealtimeArgs) -> None:
        super().__init__()
        self.args = args
        self.encoder = CausalAudioEncoder(args.encoder, args.n_mels)
        self.adapter = AudioAdapter(args.encoder.dim, args.decoder.dim, args.downsample_factor)
        self.decoder = Transformer(args.decoder)
        self.features = LogMel(args.n_mels)

    def export_config(self) -> dict:
        """The published params.json of this model (stored next to training checkpoints)."""
        return self.args.to_params()

    @property
    def mel_frames_per_step(self) -> int:
        return 2 * self.args.downsample_factor  # conv stride 2, then the adapter's factor

    def audio_embeddings(self, mel: torch.Tensor) -> torch.Tensor:
        """mel [B, n_mels, 8 T] -> decoder-side audio embeddings [B, T, D]."""
        if mel.shape[-1] % self.mel_frames_per_step:
            raise ValueError(f"mel frames ({mel.shape[-1]}) must be a multiple of {self.mel_frames_per_step}")
        return self.adapter(self.encoder(mel))

    def forward(self, mel: torch.Tensor, tokens: torch.Tensor, num_delay_tokens: torch.Tensor) -> torch.Tensor:
        """mel [B, n_mels, 8 T], tokens [B, T] (the previous token at every step), delay [B] -> logits [B, T, V]."""
        hidden = self.hidden_states(mel, tokens, num_delay_tokens)
        return self.decoder.logits(hidden)

    def hidden_states(self, mel: torch.Tensor, tokens: torch.Tensor, num_delay_tokens: torch.Tensor) -> torch.Tensor:
        audio = self.audio_embeddings(mel)  # [B, T, D]
        if audio.shape[1] != tokens.shape[1]:
            raise ValueError(f"{audio.shape[1]} audio steps but {tokens.shape[1]} tokens")
        x = audio + self.decoder.embed(tokens)  # [B, T, D]
        return self.decoder.forward_embeddings(x, num_delay_tokens=num_delay_tokens)

