"""The TTS model: lm's backbone reading text tokens and codec frames, a semantic head, a flow head.

Sequence layout (one utterance)::

    BOS [BEGIN_AUDIO] [AUDIO]xR ([INST] reference text [/INST])? text [BEGIN_AUDIO] [AUDIO]xT
                      ^ reference frames                                     ^ generated frames

At an [AUDIO] position the input is the SUM of the frame's 37 code embeddings (one semantic, 36
acoustic; DESIGN §6) instead of a token embedding. The hidden state at a position predicts the
NEXT frame: its semantic code by a linear head (or [END_AUDIO] after the last frame) and its
acoustic values by the flow-matching head. Why the sum: a frame is one position, so 12.5 frames
per second cost the backbone 12.5 positions per second, not 37 times as many.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from voxkit.lm import Transformer
from voxkit.tts.args import AUDIO_ID, BEGIN_AUDIO_ID, BOS_ID, INST_END_ID, INST_ID, TTSArgs
from voxkit.tts.flow import FlowHead, acoustic_values

IGNORE = -100  # label of positions without a semantic target (F.cross_entropy's ignore_index)


class FrameEmbedding(nn.Module):
    """codes [..., 37] -> the sum of their 37 embeddings [..., D], as one embedding-bag lookup.

    One table holds the semantic rows (codes + 2 specials) then each acoustic codebook's rows
    (levels + 2 specials); ``offsets`` moves every column of a frame into its own rows.
    """

    def __init__(self, args: TTSArgs, dim: int) -> None:
        super().__init__()
        self.semantic_vocab, self.acoustic_vocab, self.acoustic_dim = args.semantic_vocab, args.acoustic_vocab, args.acoustic_dim
        rows = args.semantic_vocab + args.acoustic_dim * args.acoustic_vocab
        self.weight = nn.Parameter(torch.randn(rows, dim) * dim**-0.5)
        self.register_buffer("offsets", self._offsets(), persistent=False)

    def _offsets(self) -> torch.Tensor:
        acoustic = self.semantic_vocab + torch.arange(self.acoustic_dim) * self.acoustic_vocab  # [36]
        return torch.cat([torch.zeros(1, dtype=torch.long), acoustic])  # [37]

    def init_buffers(self, device: torch.device) -> None:
        """Rebuild the offsets after a meta-device load (they are derived, not stored)."""
        self.offsets = self._offsets().to(device)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        flat = (codes + self.offsets).reshape(-1, codes.shape[-1])  # [N, 37]
        out = F.embedding_bag(flat, self.weight, mode="sum")  # [N, D]
        return out.view(*codes.shape[:-1], self.weight.shape[1])  # [..., D]


@dataclasses.dataclass
class Prompt:
    """One prompt as the backbone reads it."""

    tokens: torch.Tensor  # [L] long: text ids, AUDIO_ID at frame positions
    codes: torch.Tensor  # [L, 37] long: the frame at [AUDIO] positions, [EMPTY_AUDIO] elsewhere


class TTSModel(nn.Module):
    """Backbone + frame embedding + semantic head + flow head (DESIGN §6)."""

    def __init__(self, args: TTSArgs) -> None:
        super().__init__()
        self.args = args
        self.backbone = Transformer(args.backbone)
        self.frame_embeddings = FrameEmbedding(args, args.backbone.dim)
        self.semantic_head = nn.Linear(args.backbone.dim, args.semantic_vocab, bias=False)
        self.flow = FlowHead(args.flow, args.acoustic_dim, args.backbone.dim)

    # ----------------------------------------------------------------------------- prompts

    def empty_frame(self) -> torch.Tensor:
        """The [EMPTY_AUDIO] frame [37]: what non-audio positions carry in ``Prompt.codes``."""
        a = self.args
        return torch.tensor([a.empty_audio_id] + [a.acoustic_levels] * a.acoustic_dim)

    def end_frame(self) -> torch.Tensor:
        """The [END_AUDIO] frame [37]."""
        a = self.args
        return torch.tensor([a.end_audio_id] + [a.acoustic_levels + 1] * a.acoustic_dim)

    def prompt(self, text_ids: list[int], reference: torch.Tensor | None, reference_text_ids: list[int] | None = None) -> Prompt:
        """text ids (no BOS), reference frames [R, 37] (None: one [EMPTY_AUDIO] frame) -> the generation prompt."""
        if reference is None or reference.shape[0] == 0:
            reference = self.empty_frame()[None]  # [1, 37]
        reference = reference[-self.args.max_reference_frames :]  # [R, 37]
        before = [BOS_ID, BEGIN_AUDIO_ID]
        after = ([INST_ID, *reference_text_ids, INST_END_ID] if reference_text_ids else []) + list(text_ids) + [BEGIN_AUDIO_ID]
        R = reference.shape[0]
        tokens = torch.tensor(before + [AUDIO_ID] * R + after)  # [L]
        codes = self.empty_frame().expand(tokens.shape[0], -1).clone()  # [L, 37]
        codes[len(before) : len(before) + R] = reference
        return Prompt(tokens=tokens, codes=codes)

    def embed(self, tokens: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """tokens [B, L], codes [B, L, 37] -> input embeddings [B, L, D] (frames at [AUDIO] positions)."""
        text = self.backbone.embed(tokens.clamp(max=self.args.backbone.vocab_size - 1))  # [B, L, D]
        frames = self.frame_embeddings(codes)  # [B, L, D]
        return torch.where((tokens == AUDIO_ID)[..., None], frames.to(text.dtype), text)

    # ----------------------------------------------------------------------------- training

    def forward(self, tokens: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Whole sequences (teacher forcing): tokens [B, L], codes [B, L, 37] -> hidden states [B, L, D]."""
        return self.backbone.forward_embeddings(self.embed(tokens, codes))

    def losses(self, tokens: torch.Tensor, codes: torch.Tensor, semantic_target: torch.Tensor, acoustic_target: torch.Tensor,
               condition_dropout: float = 0.0) -> dict[str, torch.Tensor]:
        """Teacher-forced losses of a batch.

        semantic_target [B, L]: the next frame's semantic code (or [END_AUDIO]) where a position
        predicts one, IGNORE elsewhere. acoustic_target [B, L, 36]: the next frame's acoustic level
        indices where it is a real frame, -1 elsewhere.
        """
        hidden = self(tokens, codes)  # [B, L, D]
        logits = self.semantic_head(hidden).float()  # [B, L, S]
        semantic = F.cross_entropy(logits.flatten(0, 1), semantic_target.flatten(), ignore_index=IGNORE)
        has_frame = acoustic_target[..., 0] >= 0  # [B, L]
        h = hidden[has_frame]  # [N, D]
        x1 = acoustic_values(acoustic_target[has_frame], self.args.acoustic_levels).to(h.dtype)  # [N, 36]
        flow = self.flow.loss(x1, h, condition_dropout) if h.shape[0] else hidden.sum() * 0.0
        with torch.no_grad():
            scored = semantic_target != IGNORE
            accuracy = (logits.argmax(-1) == semantic_target)[scored].float().mean()
        return {"semantic": semantic, "flow": flow, "semantic_accuracy": accuracy}
