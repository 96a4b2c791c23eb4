"""The audio-chat model: audio encoder -> adapter -> [AUDIO] positions of the text decoder.

Audio is read in chunks of ``chunk_frames`` log-mel frames (30 s): each chunk gives
``chunk_frames / 2`` encoder frames, which the adapter stacks four at a time into
``tokens_per_chunk`` decoder inputs (375 per 30 s). Those vectors replace, in order, the
embeddings of the [AUDIO] placeholders of the token sequence; the decoder is lm's Transformer
unchanged, which is why text-only chat runs through the very same model.

The model is shared and read-only at inference: generation keeps its caches in the caller's state
(voxkit.lm.generate), never on the modules.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from voxkit.asr.encoder import AudioAdapter, CausalAudioEncoder
from voxkit.asr.features import LogMel
from voxkit.asr.whisper_encoder import WhisperEncoder
from voxkit.chat.args import ChatArgs
from voxkit.lm import Transformer
from voxkit.tokenizer import AUDIO_ID


class ChatModel(nn.Module):
    def __init__(self, args: ChatArgs) -> None:
        super().__init__()
        self.args = args
        self.features = LogMel(args.n_mels)
        self.encoder: nn.Module
        if args.encoder_kind == "whisper":
            self.encoder = WhisperEncoder(args.encoder, args.n_mels)
        else:
            self.encoder = CausalAudioEncoder(args.encoder, args.n_mels)
        self.adapter = AudioAdapter(args.encoder.dim, args.decoder.dim, args.downsample_factor)
        self.decoder = Transformer(args.decoder)

    # ----------------------------------------------------------------------------- audio

    def chunk_count(self, num_samples: int) -> int:
        """Chunks an audio of ``num_samples`` (16 kHz) is padded to: at least one."""
        return max(1, -(-num_samples // self.args.chunk_samples))

    def audio_token_count(self, num_samples: int) -> int:
        """[AUDIO] placeholders an audio of ``num_samples`` takes in the prompt."""
        return self.chunk_count(num_samples) * self.args.tokens_per_chunk

    def mel_chunks(self, audios: Sequence[torch.Tensor]) -> torch.Tensor:
        """16 kHz waveforms [T_i] -> log-mel chunks [N, n_mels, chunk_frames], all audios in order.

        Each audio is padded with digital silence to whole chunks first (as the published
        processor pads to 30 s), so a chunk's features never depend on the next audio.
        """
        dtype = self.features.filters.dtype
        if not audios:
            return self.features.filters.new_zeros(0, self.args.n_mels, self.args.chunk_frames)  # [0, n_mels, F]
        chunks = []
        for wav in audios:  # one FFT per audio (their lengths differ); not a per-sample loop
            n = self.chunk_count(wav.shape[-1])
            padded = F.pad(wav.to(self.features.filters.device, dtype), (0, n * self.args.chunk_samples - wav.shape[-1]))  # [n S]
            mel = self.features(padded[None])[0]  # [n_mels, n chunk_frames]
            chunks.append(mel.reshape(self.args.n_mels, n, self.args.chunk_frames).transpose(0, 1))  # [n, n_mels, F]
        return torch.cat(chunks)  # [N, n_mels, F]

    def encode_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """mel chunks [N, n_mels, chunk_frames] -> decoder inputs [N * tokens_per_chunk, D]."""
        enc_dtype = self.encoder.conv_layers[0].conv.weight.dtype
        hidden = self.encoder(mel.to(enc_dtype))  # [N, F / 2, d_enc]
        # an imported encoder may be kept in another precision than the adapter's
        return self.adapter(hidden.to(self.adapter[0].weight.dtype)).reshape(-1, self.args.decoder.dim)  # [N * tokens, D]

    # ----------------------------------------------------------------------------- decoder

    def embed(self, tokens: torch.Tensor, audio: torch.Tensor | None = None) -> torch.Tensor:
        """tokens [B, T] + audio vectors [A, D] (in [AUDIO] order, row-major) -> input embeddings [B, T, D]."""
        x = self.decoder.embed(tokens)  # [B, T, D]
        mask = tokens == AUDIO_ID  # [B, T]
        count = int(mask.sum())
        given = 0 if audio is None else audio.shape[0]
        if count != given:
            raise ValueError(f"the prompt has {count} [AUDIO] placeholders but {given} audio vectors were given")
        if audio is None or count == 0:
            return x
        return x.masked_scatter(mask[..., None], audio.to(x.dtype))  # [B, T, D]

    def forward(self, tokens: torch.Tensor, mel: torch.Tensor | None = None) -> torch.Tensor:
        """Whole sequences: tokens [B, T] and the mel chunks of their audios, in order -> logits [B, T, V]."""
        audio = None if mel is None else self.encode_audio(mel)
        hidden = self.decoder.forward_embeddings(self.embed(tokens, audio))  # [B, T, D]
        return self.decoder.logits(hidden)
