"""Frame-by-frame generation: the backbone steps once per 80 ms frame, the heads pick the frame.

Per frame: the semantic head's logits (with [EMPTY_AUDIO] masked) are sampled; [END_AUDIO] ends
the utterance; otherwise the flow head integrates the 36 acoustic values from seeded noise, they
are clamped and quantised to the codec's levels, and the frame's embedding sum is the backbone's
next input. The caller owns the generator state (:class:`FrameStream`), so one loaded model serves
any number of concurrent generations.

Nothing grows inside the loop: the backbone's ring cache and the frame buffer are allocated once
per utterance, the noise of every frame is drawn up front from the seed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import torch

from voxkit.checks import is_number, is_whole
from voxkit.errors import OptionError
from voxkit.lm.sampling import SamplingConfig, sample_next
from voxkit.tts.flow import quantize_acoustic
from voxkit.tts.model import Prompt, TTSModel

# Euler steps of the flow head are one pass of it per frame each, run one after another, and the
# schedule holds a time token per step: a mistyped 10**9 must be refused, not run out of memory.
MAX_STEPS = 1000


@dataclasses.dataclass(frozen=True)
class GenerationOptions:
    """How one utterance is sampled."""

    steps: int = 7  # Euler steps of the flow head
    cfg: float = 1.2  # classifier-free guidance strength (1: conditional only)
    temperature: float = 0.8  # of the semantic head (0: greedy)
    top_p: float | None = 0.95
    max_frames: int = 375  # 30 s: the utterance is cut there if [END_AUDIO] has not come
    min_frames: int = 0  # [END_AUDIO] is masked before this many frames (benchmarks fix the length with it)

    def __post_init__(self) -> None:
        if not is_whole(self.steps) or not 1 <= self.steps <= MAX_STEPS:
            raise OptionError(f"steps must be a whole number from 1 to {MAX_STEPS} (default 7), got {self.steps!r}")
        # "not 0 <= x < inf" also refuses NaN, which would reach the codes as garbage
        if not is_number(self.cfg) or not 0 <= self.cfg < math.inf:
            raise OptionError(f"cfg must be a number >= 0, got {self.cfg!r}")
        SamplingConfig(temperature=self.temperature, top_p=self.top_p)  # checked now, not at the first frame
        if not is_whole(self.max_frames) or self.max_frames < 1:
            raise OptionError(f"max_frames must be a whole number >= 1, got {self.max_frames!r}")
        if not is_whole(self.min_frames) or not 0 <= self.min_frames <= self.max_frames:
            raise OptionError(f"min_frames must be in [0, max_frames], got {self.min_frames!r}")


def context_positions(model: TTSModel) -> int | None:
    """The most positions one utterance may take, prompt and frames together: the backbone's
    ``max_seq_len``. None where nothing caps it: a sliding-window backbone's ring cache lets
    generation run on past its window, and a backbone without ``max_seq_len`` has no limit.

    Why callers need it: :func:`generate_frames` stops when the context is full, which looks like
    the end of the utterance; the caller compares the frames it got with the room the prompt left.
    """
    args = model.backbone.args
    if args.max_window is not None or not args.max_seq_len:
        return None
    return int(args.max_seq_len)


@torch.no_grad()
def generate_frames(model: TTSModel, prompt: Prompt, options: GenerationOptions, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Yield the frames [37] (int64, on the model's device) of one utterance until [END_AUDIO], or until
    ``options.max_frames`` or the model's context (:func:`context_positions`) is reached."""
    args = model.args
    device = model.semantic_head.weight.device
    backbone = model.backbone
    length = prompt.tokens.shape[0]
    capacity = length + options.max_frames
    if backbone.args.max_window is not None:
        capacity = min(capacity, backbone.args.max_window + length)
        if device.type != "cpu":
            # the prompt in one call: off the CPU a step cannot see that the fresh ring has room
            capacity = backbone.args.max_window + length
    elif (context := context_positions(model)) is not None:
        capacity = min(capacity, context)
        if capacity <= length:
            raise OptionError(f"the prompt has {length} positions, the model's context {capacity}: shorten the text or the reference")
    state = backbone.init_state(1, capacity=capacity)
    frames_left = min(options.max_frames, capacity - length) if backbone.args.max_window is None else options.max_frames
    # Every frame's flow noise, drawn once from the seed (on the CPU: the same numbers on any device).
    noise = torch.randn(frames_left, 1, args.acoustic_dim, generator=generator).to(device)  # [F, 1, 36]
    sampling = SamplingConfig(temperature=options.temperature, top_p=options.top_p)
    mask = torch.zeros(args.semantic_vocab, device=device)  # [S] added to the logits
    mask[args.empty_audio_id] = float("-inf")
    early = mask.clone()  # [S] the mask before min_frames: [END_AUDIO] too
    early[args.end_audio_id] = float("-inf")
    frame = torch.empty(1, 1, args.num_codebooks, dtype=torch.long, device=device)  # [1, 1, 37] reused
    x = model.embed(prompt.tokens[None].to(device), prompt.codes[None].to(device))  # [1, L, D]
    hidden = backbone.forward_embeddings(x, state=state)[:, -1]  # [1, D]
    cpu_generator = generator if device.type == "cpu" else None
    rows = 1 if options.cfg == 1.0 else 2  # the flow's batch: one frame, and its unguided twin with guidance
    times = model.flow.step_times(options.steps, rows, hidden.dtype, hidden.dtype, device)  # [steps, rows, d] once per generation
    for i in range(frames_left):
        logits = model.semantic_head(hidden).float() + (early if i < options.min_frames else mask)  # [1, S]
        semantic = _sample(logits, sampling, cpu_generator, generator)  # [1]
        if int(semantic[0]) == args.end_audio_id:
            return
        values = model.flow.sample(hidden, noise[i].to(hidden.dtype), options.steps, options.cfg, times)  # [1, 36]
        frame[0, 0, 0] = semantic[0]
        frame[0, 0, 1:] = quantize_acoustic(values[0], args.acoustic_levels)
        yield frame[0, 0].clone()
        hidden = backbone.forward_embeddings(model.frame_embeddings(frame).to(hidden.dtype), state=state)[:, -1]  # [1, D]


def _sample(logits: torch.Tensor, sampling: SamplingConfig, cpu_generator: torch.Generator | None,
            generator: torch.Generator) -> torch.Tensor:
    """One semantic code [1]. On a GPU the draw is made on the CPU from the seeded generator so that a
    seed gives the same speech on any device (one small host copy per frame)."""
    if cpu_generator is not None or sampling.greedy:
        return sample_next(logits, sampling, cpu_generator)
    return sample_next(logits.cpu(), sampling, generator).to(logits.device)
