"""Arguments of the audio-chat model, read from and written to the published Voxtral params.json.

The published chat layout (Voxtral Mini) puts the text decoder's fields at the top level and the
audio encoder under ``multimodal.whisper_model_args.encoder_args`` (Whisper's sizes, plus
``audio_encoding_args.num_mel_bins`` and ``max_source_positions``), the adapter's stacking factor
under ``downsample_args.downsample_factor``.

Two encoders sit behind one interface (DESIGN §7): Whisper's bidirectional encoder (the published
model's) and voxkit's causal streaming encoder from the recogniser. An ``encoder_args`` section
that says ``"causal": true`` describes the latter, in the recogniser's own field names; otherwise
it is a Whisper encoder. Both read audio in chunks of ``chunk_frames`` log-mel frames (30 s).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Literal

from voxkit.asr.whisper_encoder import WhisperDims, whisper_stack_args
from voxkit.audio.constants import MEL_HOP
from voxkit.errors import CheckpointError
from voxkit.lm import TransformerArgs

EncoderKind = Literal["whisper", "causal"]
WHISPER_CTX = 1500  # 50 Hz encoder frames of one 30 s chunk: the published encoders' table
DOWNSAMPLE = 4  # encoder frames stacked by the adapter into one decoder position (12.5 Hz)
_WHISPER_FIELDS = ("dim", "n_layers", "head_dim", "hidden_dim", "n_heads")


@dataclasses.dataclass
class ChatArgs:
    decoder: TransformerArgs
    encoder: TransformerArgs
    n_mels: int = 128
    downsample_factor: int = DOWNSAMPLE
    # mel frames of one audio chunk; the Whisper encoder's is twice its table (30 s)
    chunk_frames: int = 2 * WHISPER_CTX
    extra_encoder_fields: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Where the encoder's weights come from when the folder does not hold them (voxkit.chat.encoders:
    # "whisper-tiny.en" is imported from its package at load time and never committed).
    encoder_source: str | None = None

    def __post_init__(self) -> None:
        if self.decoder.vocab_size <= 0:
            raise ValueError("the chat decoder needs a vocabulary (vocab_size > 0)")
        if self.encoder_kind == "whisper" and self.chunk_frames != 2 * int(self.encoder.max_seq_len or 0):
            raise ValueError(f"a Whisper encoder's chunk is twice its table: {2 * int(self.encoder.max_seq_len or 0)} mel frames")
        if (self.chunk_frames // 2) % self.downsample_factor or self.chunk_frames % 2:
            raise ValueError(f"chunk_frames {self.chunk_frames} must give encoder frames divisible by {self.downsample_factor}")

    @property
    def encoder_kind(self) -> EncoderKind:
        return "causal" if self.encoder.causal else "whisper"

    @property
    def tokens_per_chunk(self) -> int:
        """Decoder positions ([AUDIO] tokens) per chunk: 375 for 30 s."""
        return self.chunk_frames // 2 // self.downsample_factor

    @property
    def chunk_samples(self) -> int:
        """16 kHz samples of one chunk (480 000 for 30 s)."""
        return self.chunk_frames * MEL_HOP

    @classmethod
    def whisper(cls, decoder: TransformerArgs, dims: WhisperDims, *, downsample_factor: int = DOWNSAMPLE) -> ChatArgs:
        """A chat model on a Whisper encoder of the given sizes (any Whisper checkpoint's)."""
        return cls(decoder=decoder, encoder=whisper_stack_args(dims), n_mels=dims.n_mels,
                   downsample_factor=downsample_factor, chunk_frames=2 * dims.n_ctx)

    # ----------------------------------------------------------------------------- params.json

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ChatArgs:
        params = copy.deepcopy(params)
        try:
            whisper = params["multimodal"]["whisper_model_args"]
            enc = dict(whisper["encoder_args"])
        except (KeyError, TypeError):
            raise CheckpointError("params.json lacks multimodal.whisper_model_args.encoder_args (not an audio model)") from None
        n_mels = int((enc.pop("audio_encoding_args", None) or {}).get("num_mel_bins", 128))
        factor = int((whisper.get("downsample_args") or {}).get("downsample_factor", DOWNSAMPLE))
        voxkit = params.pop("voxkit_chat", None) or {}
        source = voxkit.get("encoder_source")
        try:
            decoder = TransformerArgs.from_dict(params)
            if enc.get("causal"):
                encoder = TransformerArgs.from_dict(enc)
                extra: dict[str, Any] = {}
                chunk = int(voxkit.get("chunk_frames", 2 * WHISPER_CTX))
            else:
                missing = [f for f in _WHISPER_FIELDS if f not in enc]
                if missing:
                    raise CheckpointError(f"params.json encoder_args lacks {', '.join(missing)}")
                n_ctx = int(enc.get("max_source_positions", WHISPER_CTX))
                dims = WhisperDims(dim=enc["dim"], n_layers=enc["n_layers"], n_heads=enc["n_heads"], hidden_dim=enc["hidden_dim"],
                                   n_mels=n_mels, n_ctx=n_ctx)
                if enc["head_dim"] * enc["n_heads"] != enc["dim"]:
                    raise CheckpointError(f"encoder_args: {enc['n_heads']} heads of {enc['head_dim']} do not make dim {enc['dim']}")
                encoder = whisper_stack_args(dims)
                extra = {k: v for k, v in enc.items() if k not in (*_WHISPER_FIELDS, "max_source_positions")}
                chunk = 2 * n_ctx
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"params.json does not describe a chat model: {err}") from None
        if decoder.ada_rms_norm_t_cond:
            raise CheckpointError("params.json describes a delay-conditioned (realtime) decoder: load it as a recogniser")
        try:
            return cls(decoder=decoder, encoder=encoder, n_mels=n_mels, downsample_factor=factor, chunk_frames=chunk,
                       extra_encoder_fields=extra, encoder_source=None if source is None else str(source))
        except ValueError as err:
            raise CheckpointError(f"params.json: {err}") from None

    def to_params(self) -> dict[str, Any]:
        params = self.decoder.to_dict()
        multimodal = copy.deepcopy(params.get("multimodal") or {})
        whisper = multimodal.setdefault("whisper_model_args", {})
        if self.encoder_kind == "whisper":
            e = self.encoder
            enc: dict[str, Any] = {**self.extra_encoder_fields, "dim": e.dim, "n_layers": e.n_layers, "head_dim": e.head_dim,
                                   "hidden_dim": e.hidden_dim, "n_heads": e.n_heads, "max_source_positions": e.max_seq_len}
            enc.setdefault("vocab_size", 0)
        else:
            enc = self.encoder.to_dict()
            params.setdefault("voxkit_chat", {})["chunk_frames"] = self.chunk_frames
        if self.encoder_source is not None:
            params.setdefault("voxkit_chat", {})["encoder_source"] = self.encoder_source
        enc.setdefault("audio_encoding_args", {})["num_mel_bins"] = self.n_mels
        whisper["encoder_args"] = enc
        whisper.setdefault("downsample_args", {})["downsample_factor"] = self.downsample_factor
        params["multimodal"] = multimodal
        return params
