"""Delayed-streams text layout of the realtime recogniser.

The decoder emits one token per 80 ms step. With ``L`` left-pad steps and a delay of ``d`` steps,
the token sequence is::

    index  0      1 .. L+d          L+d+1 ...
    token  BOS    [STREAMING_PAD]   text stream (PAD on idle steps)

and step ``i`` (input token ``s_i`` + audio step ``i``) predicts ``s_{i+1}``. Audio step ``i``
holds real audio step ``i - L`` (the first L steps are silence). A word starting in real audio
step ``j`` is written as ``[STREAMING_WORD]`` followed by its text tokens from index
``L + j + d + 1`` on, i.e. predicted after the model has heard ``d`` more steps of audio; when the
previous word's tokens still occupy that index, the word follows right after them. The audio is
padded on the right with ``d + 1 + right_pad`` silent steps so that the last word can be written.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from voxkit.asr.features import SAMPLES_PER_STEP
from voxkit.audio.constants import STEP_SECONDS
from voxkit.tokenizer import BOS_ID, STREAMING_PAD_ID, STREAMING_WORD_ID


@dataclasses.dataclass(frozen=True)
class StreamLayout:
    left_pad: int
    delay: int

    @property
    def prompt_length(self) -> int:
        """Number of teacher-forced tokens (BOS + pads) before the first generated one."""
        return 1 + self.left_pad + self.delay

    def word_index(self, start_seconds: float) -> int:
        """Token index at which a word starting at ``start_seconds`` of real audio is written."""
        return self.prompt_length + int(math.floor(start_seconds / STEP_SECONDS + 1e-6))

    def word_start(self, token_index: int) -> float:
        """Inverse of :meth:`word_index`: the audio time of a [STREAMING_WORD] at ``token_index``."""
        return max(0, token_index - self.prompt_length) * STEP_SECONDS


def audio_steps(num_samples: int) -> int:
    return -(-num_samples // SAMPLES_PER_STEP)


def build_text_stream(
    word_tokens: Sequence[Sequence[int]],
    word_starts: Sequence[float],
    num_samples: int,
    layout: StreamLayout,
    right_pad: int,
) -> list[int]:
    """The full token sequence ``s_0 .. s_P`` for one utterance (P = number of audio steps).

    P = L + ceil(samples / 1280) + d + 1 + right_pad, grown if the words need more room.
    """
    steps = layout.left_pad + audio_steps(num_samples) + layout.delay + 1 + right_pad
    seq = [BOS_ID] + [STREAMING_PAD_ID] * steps
    cursor = layout.prompt_length
    for tokens, start in zip(word_tokens, word_starts, strict=True):
        index = max(layout.word_index(start), cursor)
        piece = [STREAMING_WORD_ID, *tokens]
        if index + len(piece) > len(seq):
            seq.extend([STREAMING_PAD_ID] * (index + len(piece) - len(seq)))
        seq[index : index + len(piece)] = piece
        cursor = index + len(piece)
    return seq
