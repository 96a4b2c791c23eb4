"""Arguments of the voice-cloning TTS model (DESIGN §6), read from and written to params.json.

The backbone's fields sit at the top level of params.json, as in every mistral-native decoder; what
only the TTS model has lives in a ``voxkit_tts`` section: the codec's token counts (one semantic
code of 8192 and 36 acoustic codes of 21 levels per 80 ms frame), the flow-matching head's stack
(a small bidirectional configuration of the same backbone) and the folder of the codec that turns
frames into waveform.

Frame vocabularies. The semantic head predicts one of ``semantic_codebook_size`` codes or one of two
specials placed after them: ``[EMPTY_AUDIO]`` (a frame without content: the "no reference" frame;
never sampled) and ``[END_AUDIO]`` (the utterance is over). Each acoustic codebook has the same two
specials after its 21 levels, so that the [END_AUDIO] frame, fed back to the backbone, is one
embedding sum like every other frame.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from voxkit.errors import CheckpointError
from voxkit.lm import TransformerArgs

SECTION = "voxkit_tts"
N_FRAME_SPECIALS = 2  # [EMPTY_AUDIO], [END_AUDIO] after the codes of every codebook
# Text-side ids of the prompt (the Tekken specials of DESIGN §3; the tiny vocabularies keep them).
BOS_ID = 1
INST_ID = 3
INST_END_ID = 4
AUDIO_ID = 24
BEGIN_AUDIO_ID = 25


@dataclasses.dataclass
class TTSArgs:
    """The TTS model: a backbone decoder, a flow-matching head and the codec's token layout."""

    backbone: TransformerArgs
    flow: TransformerArgs
    semantic_codebook_size: int = 8192
    acoustic_dim: int = 36
    acoustic_levels: int = 21
    codec: str = "codec"  # the codec folder, relative to the model folder
    max_reference_frames: int = 375  # 30 s of reference voice at 12.5 frames per second
    languages: tuple[str, ...] = ("en",)

    def __post_init__(self) -> None:
        if self.backbone.vocab_size <= 0:
            raise ValueError("the TTS backbone needs a text vocabulary (vocab_size > 0)")
        if not self.backbone.causal:
            raise ValueError("the TTS backbone generates frame after frame: it must be causal")
        if self.flow.causal or self.flow.vocab_size:
            raise ValueError("the flow-matching head is a bidirectional stack without vocabulary")
        if self.acoustic_levels < 2 or self.acoustic_levels % 2 == 0:
            raise ValueError(f"acoustic_levels must be an odd number of FSQ levels, got {self.acoustic_levels}")
        self.languages = tuple(self.languages)

    # ----------------------------------------------------------------------------- frame ids

    @property
    def empty_audio_id(self) -> int:
        """[EMPTY_AUDIO] in the semantic vocabulary (acoustic codebooks: ``acoustic_levels``)."""
        return self.semantic_codebook_size

    @property
    def end_audio_id(self) -> int:
        """[END_AUDIO] in the semantic vocabulary (acoustic codebooks: ``acoustic_levels + 1``)."""
        return self.semantic_codebook_size + 1

    @property
    def semantic_vocab(self) -> int:
        return self.semantic_codebook_size + N_FRAME_SPECIALS

    @property
    def acoustic_vocab(self) -> int:
        return self.acoustic_levels + N_FRAME_SPECIALS

    @property
    def num_codebooks(self) -> int:
        return 1 + self.acoustic_dim

    # ----------------------------------------------------------------------------- sizes

    @classmethod
    def tiny(cls, vocab_size: int, **overrides: Any) -> TTSArgs:
        """The size voxkit trains on CPUs and bundles (a few million parameters)."""
        backbone = TransformerArgs(dim=256, n_layers=6, head_dim=64, hidden_dim=768, n_heads=4, n_kv_heads=2, norm_eps=1e-5,
                                   vocab_size=vocab_size, rope_theta=1e4, tied_embeddings=True, max_seq_len=1024)
        flow = flow_stack(dim=128, n_layers=3, n_heads=4)
        overrides.setdefault("max_reference_frames", 125)  # 10 s: the tiny model's context is 1024 positions
        return cls(backbone=backbone, flow=flow, **overrides)

    @classmethod
    def full(cls, **overrides: Any) -> TTSArgs:
        """The published size: the Realtime decoder's dimensions (DESIGN §4), tied embeddings."""
        backbone = TransformerArgs(dim=3072, n_layers=26, head_dim=128, hidden_dim=9216, n_heads=32, n_kv_heads=8, norm_eps=1e-5,
                                   vocab_size=131072, rope_theta=1e6, tied_embeddings=True, sliding_window=8192)
        flow = flow_stack(dim=3072, n_layers=3, n_heads=32, hidden_dim=9216)
        return cls(backbone=backbone, flow=flow, languages=("en", "fr", "es", "de", "it", "pt", "nl", "hi"), **overrides)

    # ----------------------------------------------------------------------------- params.json

    def to_params(self) -> dict[str, Any]:
        params = self.backbone.to_dict()
        params[SECTION] = {
            "semantic_codebook_size": self.semantic_codebook_size,
            "acoustic_dim": self.acoustic_dim,
            "acoustic_levels": self.acoustic_levels,
            "codec": self.codec,
            "max_reference_frames": self.max_reference_frames,
            "languages": list(self.languages),
            "flow_args": self.flow.to_dict(),
        }
        return params

    @classmethod
    def from_params(cls, params: dict[str, Any], where: str = "params.json") -> TTSArgs:
        params = copy.deepcopy(params)
        section = params.pop(SECTION, None)
        if not isinstance(section, dict) or not isinstance(section.get("flow_args"), dict):
            raise CheckpointError(f"{where}: no {SECTION}.flow_args section (not a voxkit TTS model)")
        try:
            flow = TransformerArgs.from_dict(section.pop("flow_args"))
            backbone = TransformerArgs.from_dict(params)
            section["languages"] = tuple(section.get("languages", ("en",)))
            return cls(backbone=backbone, flow=flow, **section)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{where} does not describe a TTS model: {err}") from None


def flow_stack(dim: int, n_layers: int = 3, n_heads: int = 4, hidden_dim: int | None = None) -> TransformerArgs:
    """The flow-matching head's stack: bidirectional, no vocabulary, RoPE over its 3 tokens."""
    return TransformerArgs(dim=dim, n_layers=n_layers, head_dim=dim // n_heads, hidden_dim=hidden_dim or 3 * dim, n_heads=n_heads,
                           n_kv_heads=n_heads, norm_eps=1e-5, vocab_size=0, rope_theta=1e4, causal=False, max_seq_len=3)
