"""Arguments of the streaming recogniser, read from and written to the published params.json.

The published layout nests the encoder under ``multimodal.whisper_model_args``; the decoder's
fields sit at the top level. voxkit's own streaming settings (left padding, default delay) live
in a ``voxkit_streaming`` section, which published files lack (their defaults are the published
values: 32 left-pad tokens, 480 ms delay).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from voxkit.errors import CheckpointError
from voxkit.lm import TransformerArgs

PUBLISHED_LEFT_PAD = 32
PUBLISHED_DELAY = 6
RIGHT_PAD = 10  # extra silent steps after delay + 1 that flush the text stream (voxkit's own setting)


@dataclasses.dataclass
class RealtimeArgs:
    decoder: TransformerArgs
    encoder: TransformerArgs
    downsample_factor: int = 4
    n_mels: int = 128
    n_left_pad_tokens: int = PUBLISHED_LEFT_PAD
    default_delay_tokens: int = PUBLISHED_DELAY
    right_pad_tokens: int = RIGHT_PAD

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> RealtimeArgs:
        params = copy.deepcopy(params)
        try:
            whisper = params["multimodal"]["whisper_model_args"]
            enc = whisper["encoder_args"]
        except (KeyError, TypeError):
            raise CheckpointError("params.json lacks multimodal.whisper_model_args.encoder_args (not a realtime recogniser)") from None
        voxkit = params.pop("voxkit_streaming", {}) or {}
        n_mels = int((enc.get("audio_encoding_args") or {}).get("num_mel_bins", 128))
        factor = int((whisper.get("downsample_args") or {}).get("downsample_factor", 4))
        try:
            decoder = TransformerArgs.from_dict(params)
            encoder = TransformerArgs.from_dict(enc)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"params.json does not describe a recogniser: {err}") from None
        if not decoder.ada_rms_norm_t_cond:
            raise CheckpointError("params.json: the realtime decoder must set ada_rms_norm_t_cond")
        return cls(
            decoder=decoder,
            encoder=encoder,
            downsample_factor=factor,
            n_mels=n_mels,
            n_left_pad_tokens=int(voxkit.get("n_left_pad_tokens", PUBLISHED_LEFT_PAD)),
            default_delay_tokens=int(voxkit.get("default_delay_tokens", PUBLISHED_DELAY)),
            right_pad_tokens=int(voxkit.get("right_pad_tokens", RIGHT_PAD)),
        )

    def to_params(self) -> dict[str, Any]:
        params = self.decoder.to_dict()
        multimodal = copy.deepcopy(params.get("multimodal") or {})
        whisper = multimodal.setdefault("whisper_model_args", {})
        enc = self.encoder.to_dict()
        enc.setdefault("audio_encoding_args", {})["num_mel_bins"] = self.n_mels
        whisper["encoder_args"] = enc
        whisper.setdefault("downsample_args", {})["downsample_factor"] = self.downsample_factor
        params["multimodal"] = multimodal
        params["voxkit_streaming"] = {
            "n_left_pad_tokens": self.n_left_pad_tokens,
            "default_delay_tokens": self.default_delay_tokens,
            "right_pad_tokens": self.right_pad_tokens,
        }
        return params
