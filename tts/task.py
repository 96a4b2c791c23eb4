"""Training the TTS model with the shared trainer: semantic cross-entropy + flow-matching loss.

Each example is one clip of an encoded corpus (:mod:`voxkit.tts.corpus`) spoken after a reference
prompt of the SAME voice taken from ANOTHER clip, so the model learns to copy a voice rather than a
recording. A clip whose speaker has no other clip gets no reference ([EMPTY_AUDIO]), as does a
fraction ``no_reference`` of the others (the model then speaks in a voice of its own choosing,
which is also what it does for an empty prompt). Half of the references carry their transcript.
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from voxkit.errors import CheckpointError, DataError
from voxkit.lm import TransformerArgs
from voxkit.tokenizer import Tokenizer
from voxkit.train.registry import ModelSpec, TaskSpec
from voxkit.train.task import prefix_lr_groups
from voxkit.tts.args import AUDIO_ID, TTSArgs, flow_stack
from voxkit.tts.corpus import Clip, read_corpus
from voxkit.tts.model import IGNORE, TTSModel


def _backbone_defaults() -> TransformerArgs:
    return TTSArgs.tiny(vocab_size=5754).backbone


def _flow_defaults() -> TransformerArgs:
    return flow_stack(dim=128, n_layers=3, n_heads=4)


@dataclasses.dataclass
class TTSRecipe:
    """The keys of a TTS recipe's ``[model]`` section (besides ``name``)."""

    codec: str  # the codec folder the model speaks through (its token counts size the heads)
    backbone: TransformerArgs = dataclasses.field(default_factory=_backbone_defaults)
    flow: TransformerArgs = dataclasses.field(default_factory=_flow_defaults)
    max_reference_frames: int = 125
    languages: list[str] = dataclasses.field(default_factory=lambda: ["en"])


class TTSTrainingModel(TTSModel):
    """A TTSModel that records how its training checkpoint is read back (``export_config``)."""

    def export_config(self) -> dict[str, Any]:
        return self.args.to_params()


def build_tts(options: TTSRecipe) -> TTSTrainingModel:
    from voxkit.codec.checkpoint import codec_args

    folder = Path(options.codec)
    if not folder.is_dir():
        raise CheckpointError(f"codec folder not found: {folder} (model.codec)")
    codec = codec_args(folder)
    args = TTSArgs(backbone=options.backbone, flow=options.flow, semantic_codebook_size=codec.semantic_codebook_size,
                   acoustic_dim=codec.acoustic_dim, acoustic_levels=codec.acoustic_codebook_size, codec=str(folder.resolve()),
                   max_reference_frames=options.max_reference_frames, languages=tuple(options.languages))
    return TTSTrainingModel(args)


@dataclasses.dataclass
class TTSTaskConfig:
    """The keys of a recipe's ``[tasks.tts]`` section, with their defaults."""

    train: list[str]  # encoded corpora (voxkit data tts)
    dev: list[str] = dataclasses.field(default_factory=list)
    batch_size: int = 8
    max_frames: int = 250  # target frames per example (20 s); longer clips are skipped
    no_reference: float = 0.1  # fraction of examples trained without a voice prompt
    reference_text: float = 0.5  # fraction of references that carry their transcript
    condition_dropout: float = 0.1  # flow head: fraction of frames trained unconditionally (for CFG)
    flow_weight: float = 1.0
    dev_examples: int = 64
    lr_scale: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Example:
    target: Clip
    reference: Clip | None
    with_text: bool


class TTSTask:
    name = "tts"

    def __init__(self, cfg: TTSTaskConfig, model: TTSModel, tokenizer: Tokenizer) -> None:
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.args = model.args
        self._empty, self._end = model.empty_frame(), model.end_frame()
        self._prompt = model.prompt
        self.clips = [c for path in cfg.train for c in read_corpus(path) if 0 < c.codes.shape[0] <= cfg.max_frames]
        self.dev_clips = [c for path in cfg.dev for c in read_corpus(path) if 0 < c.codes.shape[0] <= cfg.max_frames]
        if not self.clips:
            raise DataError(f"no usable clips in {cfg.train} (all longer than max_frames = {cfg.max_frames}?)")
        self._check_codes(self.clips + self.dev_clips)
        self.by_speaker = _group(self.clips)
        self.dev = self._examples(self.dev_clips, _group(self.dev_clips), random.Random(0))[: cfg.dev_examples]

    def _check_codes(self, clips: list[Clip]) -> None:
        a = self.args
        for clip in clips:
            if int(clip.codes[:, 0].max()) >= a.semantic_codebook_size or int(clip.codes[:, 1:].max()) >= a.acoustic_levels:
                raise DataError("the corpus was encoded with another codec than the model's (codes out of range)")

    def optimizers(self, model: torch.nn.Module) -> dict[str, list[dict[str, Any]]]:
        return prefix_lr_groups(model, self.cfg.lr_scale, "tasks.tts.lr_scale")

    def _examples(self, clips: list[Clip], groups: dict[str, list[int]], rng: random.Random) -> list[Example]:
        out = []
        for i, clip in enumerate(clips):
            others = [j for j in groups[clip.speaker] if j != i]
            reference = None if not others or rng.random() < self.cfg.no_reference else clips[rng.choice(others)]
            out.append(Example(clip, reference, rng.random() < self.cfg.reference_text))
        return out

    def encode(self, example: Example) -> dict[str, torch.Tensor]:
        """One example's sequence: prompt, then the target frames; targets on the positions that predict a frame."""
        ref = example.reference
        ref_text = self.tokenizer.encode(ref.text, bos=False) if ref is not None and example.with_text else None
        prompt = self._prompt(self.tokenizer.encode(example.target.text, bos=False), None if ref is None else ref.codes, ref_text)
        frames = example.target.codes  # [T, 37]
        L, T = prompt.tokens.shape[0], frames.shape[0]
        tokens = torch.cat([prompt.tokens, torch.full((T,), AUDIO_ID)])  # [L + T]
        codes = torch.cat([prompt.codes, frames])  # [L + T, 37]
        semantic = torch.full((L + T,), IGNORE)  # [L + T]
        semantic[L - 1 : L - 1 + T] = frames[:, 0]  # position p predicts the frame at p + 1
        semantic[L - 1 + T] = self.args.end_audio_id
        acoustic = torch.full((L + T, self.args.acoustic_dim), -1)  # [L + T, 36]
        acoustic[L - 1 : L - 1 + T] = frames[:, 1:]
        return {"tokens": tokens, "codes": codes, "semantic": semantic, "acoustic": acoustic}

    def batch(self, examples: list[Example]) -> dict[str, torch.Tensor]:
        items = [self.encode(e) for e in examples]
        B, L = len(items), max(i["tokens"].shape[0] for i in items)
        out = {
            "tokens": torch.zeros(B, L, dtype=torch.long),  # right padding: causal attention never looks at it
            "codes": self._empty.expand(B, L, -1).clone(),  # [B, L, 37]
            "semantic": torch.full((B, L), IGNORE),
            "acoustic": torch.full((B, L, self.args.acoustic_dim), -1),
        }
        for b, item in enumerate(items):
            n = item["tokens"].shape[0]
            for key in out:
                out[key][b, :n] = item[key]
        return out

    def train_batches(self, epoch: int, rank: int, world_size: int) -> Iterator[dict[str, torch.Tensor]]:
        rng = random.Random(epoch)
        examples = self._examples(self.clips, self.by_speaker, rng)
        order = list(range(len(examples)))
        rng.shuffle(order)
        mine = order[rank::world_size]
        for start in range(0, len(mine) - self.cfg.batch_size + 1, self.cfg.batch_size):
            yield self.batch([examples[i] for i in mine[start : start + self.cfg.batch_size]])

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
        plain = getattr(model, "module", model)
        parts = plain.losses(batch["tokens"], batch["codes"], batch["semantic"], batch["acoustic"], self.cfg.condition_dropout)
        total = parts["semantic"] + self.cfg.flow_weight * parts["flow"]
        return total, {"semantic_loss": parts["semantic"].detach(), "flow_loss": parts["flow"].detach(),
                       "semantic_acc": parts["semantic_accuracy"]}

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        if not self.dev:
            return {}
        device = next(model.parameters()).device
        sums: dict[str, float] = defaultdict(float)
        batches = 0
        for start in range(0, len(self.dev), self.cfg.batch_size):
            batch = {k: v.to(device) for k, v in self.batch(self.dev[start : start + self.cfg.batch_size]).items()}
            _, metrics = self.loss(model, batch)
            for key, value in metrics.items():
                sums[f"dev_{key}"] += float(value)
            batches += 1
        return {k: v / batches for k, v in sums.items()}


def _group(clips: list[Clip]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, clip in enumerate(clips):
        groups[clip.speaker].append(i)
    return groups


def build_tts_task(options: TTSTaskConfig, model: TTSModel, tokenizer: Tokenizer) -> TTSTask:
    if tokenizer.vocab_size > model.args.backbone.vocab_size:
        raise CheckpointError(f"the recipe's tokenizer has {tokenizer.vocab_size} ids, the backbone {model.args.backbone.vocab_size}")
    return TTSTask(options, model, tokenizer)


TTS_MODEL_SPEC = ModelSpec(options=TTSRecipe, build=build_tts)
TTS_TASK = TaskSpec(options=TTSTaskConfig, build=build_tts_task)
