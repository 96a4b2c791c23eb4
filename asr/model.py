"""The streaming recogniser: causal encoder + adapter + delay-conditioned lm decoder.

At every 80 ms step the decoder input is ``adapter(audio_t) + embed(token_{t-1})`` and exactly one
token comes out. The same :meth:`RealtimeRecognizer.forward` trains on whole sequences and, given a
:class:`RecognizerState` from :meth:`RealtimeRecognizer.init_state`, advances streams by whole steps
(8 mel frames per step). The state belongs to the caller: one loaded model serves many streams.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from voxkit.asr.args import RealtimeArgs
from voxkit.asr.encoder import AudioAdapter, CausalAudioEncoder, EncoderState
from voxkit.asr.features import LogMel
from voxkit.lm import Transformer
from voxkit.lm.cache import RingState
from voxkit.streaming import StreamingModule, StreamingState

CTC_CLASSES = 257  # UTF-8 bytes + blank (256)
ENCODER_FULL_ATTENTION_CAPACITY = 3000  # 50 Hz frames kept when an encoder has no sliding window (60 s)
DECODER_FULL_ATTENTION_CAPACITY = 8192  # 80 ms steps kept when a decoder has no sliding window


@dataclasses.dataclass
class RecognizerState(StreamingState):
    """Everything ``B`` live streams remember: the encoder's conv tails and caches, the decoder's caches."""

    encoder: EncoderState
    decoder: RingState


class RealtimeRecognizer(StreamingModule):
    def __init__(self, args: RealtimeArgs) -> None:
        super().__init__()
        self.args = args
        self.encoder = CausalAudioEncoder(args.encoder, args.n_mels)
        self.adapter = AudioAdapter(args.encoder.dim, args.decoder.dim, args.downsample_factor)
        self.decoder = Transformer(args.decoder)
        self.features = LogMel(args.n_mels)
        self.ctc_head: nn.Linear | None = None

    def init_state(
        self, batch_size: int, *, chunk_steps: int = 1, dtype: torch.dtype | None = None, static: bool = False
    ) -> RecognizerState:
        """Caches for ``batch_size`` streams advancing up to ``chunk_steps`` 80 ms steps per call.

        The encoder's ring keeps its window while one call writes ``4 * chunk_steps`` frames
        (lm/cache.py); the decoder's holds its window (one token per call). ``static``: every step
        reads the whole rings, with no host sync (for a step recorded as a CUDA graph).
        """
        if chunk_steps < 1:
            raise ValueError(f"chunk_steps must be >= 1, got {chunk_steps}")
        frames = self.mel_frames_per_step // 2  # 50 Hz encoder frames per step
        enc_window = self.args.encoder.max_window or ENCODER_FULL_ATTENTION_CAPACITY
        return RecognizerState(
            encoder=self.encoder.init_state(batch_size, capacity=enc_window + frames * chunk_steps - 1, dtype=dtype, static=static),
            decoder=self.decoder.init_state(
                batch_size, capacity=self.args.decoder.max_window or DECODER_FULL_ATTENTION_CAPACITY, dtype=dtype, static=static
            ),
        )

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
        self, mel: torch.Tensor, tokens: torch.Tensor, num_delay_tokens: torch.Tensor, *,
        with_ctc: bool = False, with_frames: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """mel [B, n_mels, 8 T], tokens [B, T] (the previous token at every step), delay [B] -> logits [B, T, V].

        Training extras, appended after the logits in this order when asked for: ``with_ctc``, the
        CTC head's log-probabilities [B, 4 T, 257]; ``with_frames``, the 50 Hz encoder states
        [B, 4 T, d_enc] (a distillation target). They come out of this one forward so that a
        DistributedDataParallel wrapper sees every parameter used.
        """
        frames = self.encode_frames(mel, num_delay_tokens)  # [B, 4 T, d_enc]
        logits = self.decode(self.adapter(frames), tokens, num_delay_tokens)  # [B, T, V]
        if not (with_ctc or with_frames):
            return logits
        out: list[torch.Tensor] = [logits]
        if with_ctc:
            if self.ctc_head is None:
                raise ValueError("the CTC head is not enabled")
            out.append(self.ctc_head(frames).float().log_softmax(-1))
        if with_frames:
            out.append(frames)
        return tuple(out)

    def encode_frames(
        self, mel: torch.Tensor, num_delay_tokens: torch.Tensor, state: RecognizerState | None = None
    ) -> torch.Tensor:
        """mel [B, n_mels, 8 T] -> 50 Hz encoder states [B, 4 T, d_enc]."""
        if mel.shape[-1] % self.mel_frames_per_step:
            raise ValueError(f"mel frames ({mel.shape[-1]}) must be a multiple of {self.mel_frames_per_step}")
        return self.encoder(mel, num_delay_tokens, None if state is None else state.encoder)

    def encode(self, mel: torch.Tensor, num_delay_tokens: torch.Tensor, state: RecognizerState | None = None) -> torch.Tensor:
        """mel [B, n_mels, 8 T] -> decoder audio inputs [B, T, D].

        Split from :meth:`decode` so that file transcription can run the encoder over many steps
        at once (it is causal: the same outputs) and then step the decoder token by token.
        """
        return self.adapter(self.encode_frames(mel, num_delay_tokens, state))

    def decode(
        self, audio: torch.Tensor, tokens: torch.Tensor, num_delay_tokens: torch.Tensor, state: RecognizerState | None = None
    ) -> torch.Tensor:
        """audio [B, T, D] (from :meth:`encode`), tokens [B, T] (previous token per step) -> logits [B, T, V]."""
        if audio.shape[1] != tokens.shape[1]:
            raise ValueError(f"{audio.shape[1]} audio steps but {tokens.shape[1]} tokens")
        x = audio + self.decoder.embed(tokens)  # [B, T, D]
        ring = None if state is None else state.decoder
        return self.decoder.logits(self.decoder.forward_embeddings(x, state=ring, num_delay_tokens=num_delay_tokens))
