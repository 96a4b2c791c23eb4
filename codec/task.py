"""Training the codec with the shared trainer: a generator and a discriminator, two optimizers.

The recipe's ``[model] name = "codec"`` builds :class:`CodecTrainingModel` (the codec, its
multi-resolution STFT discriminator and the distillation head: one module, so that the trainer
checkpoints, resumes and moves all of it at once); ``[tasks.codec]`` builds :class:`CodecTask`.
Each optimizer step runs the discriminator's update first (hinge loss on real audio vs the
codec's current output) and then the generator's (DESIGN §5):

    L_G = w_rec(step) * (L1 + MR-STFT) + adv * hinge_G + fm * feature matching
          + VQ commitment + distill * (1 - cos(proj(semantic), teacher))

``w_rec`` decays over training (reconstruction leads early, the adversarial terms refine later).
The distillation teacher is frozen and heard at 16 kHz: Whisper tiny.en's encoder (shipped by the
``peer`` extra; it has heard real speech, DESIGN §12, so the semantic codes learn what words sound
like rather than what the synthetic voices share) or the bundled recogniser's causal encoder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from voxkit.audio.constants import ASR_SAMPLE_RATE, CODEC_SAMPLE_RATE, CODEC_SAMPLES_PER_STEP, MEL_FRAMES_PER_STEP
from voxkit.codec.args import CodecArgs
from voxkit.codec.discriminator import MultiResolutionSTFTDiscriminator
from voxkit.codec.losses import (
    MultiResolutionSTFTLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    l1_waveform_loss,
    reconstruction_weight,
    semantic_distillation_loss,
)
from voxkit.codec.model import CodecModel
from voxkit.codec.quantizer import batch_perplexity, codebook_usage, draw_dropout
from voxkit.train.registry import ModelSpec, TaskSpec
from voxkit.train.task import Update

DISCRIMINATOR = "discriminator"  # the discriminator's optimizer
ENCODER_FRAMES_PER_STEP = MEL_FRAMES_PER_STEP // 2  # a speech encoder's 50 Hz frames (its stem halves the mel rate) per codec frame


@dataclasses.dataclass
class CodecRecipe(CodecArgs):
    """``[model]`` of a codec recipe: the codec's args plus the training-only parts."""

    disc_channels: int = 32
    distill_dim: int = 384  # width of the teacher's states (Whisper tiny.en: 384); 0: no distillation head


class CodecTrainingModel(nn.Module):
    """Codec + discriminator + distillation head; ``forward`` selects the part an update trains (DDP)."""

    def __init__(self, options: CodecRecipe) -> None:
        super().__init__()
        args = CodecArgs.from_dict({k: v for k, v in options.to_dict().items() if k not in ("disc_channels", "distill_dim")})
        self.codec = CodecModel(args)
        self.discriminator = MultiResolutionSTFTDiscriminator(channels=options.disc_channels)
        self.semantic_proj = nn.Linear(args.semantic_dim, options.distill_dim) if options.distill_dim > 0 else None
        self.register_buffer("step", torch.zeros((), dtype=torch.long))  # generator updates so far (resumes with the run)

    def export_config(self) -> dict[str, Any]:
        from voxkit.codec.checkpoint import codec_params

        return codec_params(self.codec.args)

    def forward(self, wave: torch.Tensor, part: str, fake: torch.Tensor | None = None) -> Any:
        """``part``: "generator" -> (recon, quantized); "discriminator" -> (real logits, fake logits);
        "critic" -> (logits, features) of ``wave`` (the generator's adversarial terms)."""
        if part == "generator":
            vq_on, fsq_mode = draw_dropout(wave.shape[0], device=wave.device)
            return self.codec(wave, vq_on, fsq_mode)
        if part == "discriminator":
            assert fake is not None
            real_logits, _ = self.discriminator(wave)
            fake_logits, _ = self.discriminator(fake.detach())
            return real_logits, fake_logits
        if part == "critic":
            return self.discriminator(wave)
        raise ValueError(f"unknown part {part!r}")


@dataclasses.dataclass
class CodecTaskConfig:
    """``[tasks.codec]``: data, loss weights and the distillation teacher."""

    train: list[str] = dataclasses.field(default_factory=list)  # manifests (any engines and voices)
    dev: list[str] = dataclasses.field(default_factory=list)  # held-out manifests for evaluate()
    segment_seconds: float = 1.92  # training crops (24 frames of 80 ms)
    batch_size: int = 8
    l1_weight: float = 1.0
    stft_weight: float = 1.0
    recon_decay_steps: int = 20000  # w_rec falls from 1 to recon_end over these generator updates
    recon_end: float = 0.1
    adv_weight: float = 1.0
    fm_weight: float = 2.0
    commit_weight: float = 1.0
    distill_weight: float = 1.0
    teacher: str | None = "whisper-tiny.en"  # or "recognizer" (the bundled model), or a CTranslate2 Whisper folder; None: off
    disc_start: int = 0  # generator updates before the adversarial terms start
    eval_clips: int = 16

    def __post_init__(self) -> None:
        if self.segment_seconds <= 0 or self.batch_size < 1:
            raise ValueError("segment_seconds must be > 0 and batch_size >= 1")
        if self.teacher is not None and not self.teacher.strip():
            raise ValueError("teacher must be 'whisper-tiny.en', 'recognizer' or a CTranslate2 Whisper folder")


class _Teacher(nn.Module):
    """A frozen speech encoder at 12.5 Hz: 24 kHz wave [B, N] -> [B, N / 1920, dim]."""

    def __init__(self, name: str) -> None:
        super().__init__()
        from voxkit.asr.features import LogMel

        if name == "recognizer":
            from voxkit.asr.bundle import default_model_dir
            from voxkit.asr.checkpoint import load_recognizer

            encoder = load_recognizer(default_model_dir()).encoder
            self.features = LogMel(encoder.conv_layers[0].conv.in_channels)
            self.encoder: nn.Module = encoder
        else:
            from voxkit.asr.whisper import WhisperTeacher, load_whisper_tensors

            teacher = WhisperTeacher(load_whisper_tensors(None if name == "whisper-tiny.en" else name))
            self.features = LogMel(teacher.n_mels)
            self.encoder = teacher
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> _Teacher:  # frozen: always in eval mode
        return super().train(False)

    @torch.no_grad()
    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        from voxkit.audio.io import resample

        wave16 = resample(wave.float(), CODEC_SAMPLE_RATE, ASR_SAMPLE_RATE)  # [B, N * 2 / 3]
        states = self.encoder(self.features(wave16)).float()  # [B, 50 Hz frames, dim]
        frames = wave.shape[-1] // CODEC_SAMPLES_PER_STEP
        per = ENCODER_FRAMES_PER_STEP  # 20 ms encoder frames per 80 ms codec frame
        states = states[:, : per * frames]
        if states.shape[1] < per * frames:  # the mel's last frames: pad by repeating the last state
            states = torch.cat([states, states[:, -1:].expand(-1, per * frames - states.shape[1], -1)], 1)
        return states.view(states.shape[0], frames, per, -1).mean(2)  # [B, frames, dim]


class CodecTask:
    """Random crops of the training manifests' audio; GAN + reconstruction + distillation losses."""

    name = "codec"

    def __init__(self, cfg: CodecTaskConfig, model: CodecTrainingModel) -> None:
        from voxkit.data.manifest import read_manifest

        self.cfg = cfg
        args = model.codec.args
        self.frame = args.samples_per_frame
        self.segment = max(1, round(cfg.segment_seconds * args.sampling_rate / self.frame)) * self.frame
        self.rows = [r for m in cfg.train for r in read_manifest(m, required=("audio",))]
        if not self.rows:
            raise ValueError("tasks.codec.train names no audio (give training manifests)")
        self.dev_rows = [r for m in cfg.dev for r in read_manifest(m, required=("audio",))]
        self.stft = MultiResolutionSTFTLoss()
        use_teacher = cfg.teacher is not None and cfg.distill_weight > 0
        if use_teacher and model.semantic_proj is None:
            raise ValueError("distillation needs model.distill_dim > 0 (the teacher's width)")
        self.teacher = _Teacher(cfg.teacher) if use_teacher else None  # type: ignore[arg-type]

    # ----------------------------------------------------------------------------- data

    def _load(self, row: dict[str, Any]) -> torch.Tensor:
        from voxkit.audio.io import load_audio

        return load_audio(row["audio"], CODEC_SAMPLE_RATE)  # [N]

    def train_batches(self, epoch: int, rank: int, world_size: int) -> Iterator[torch.Tensor]:
        """Batches [B, segment] of random crops (zero-padded when a clip is shorter), seeded by the epoch."""
        g = torch.Generator().manual_seed(1000 + epoch)
        order = torch.randperm(len(self.rows), generator=g).tolist()[rank::world_size]
        B = self.cfg.batch_size
        for start in range(0, len(order) - B + 1, B):
            batch = torch.zeros(B, self.segment)  # [B, segment]
            for i, idx in enumerate(order[start : start + B]):
                wave = self._load(self.rows[idx])
                if wave.shape[0] > self.segment:
                    offset = int(torch.randint(0, wave.shape[0] - self.segment + 1, (1,), generator=g))
                    wave = wave[offset : offset + self.segment]
                batch[i, : wave.shape[0]] = wave
            yield batch

    # ----------------------------------------------------------------------------- losses

    def optimizers(self, model: nn.Module) -> dict[str, list[dict[str, Any]]]:
        inner = getattr(model, "module", model)
        return {DISCRIMINATOR: [{"params": list(inner.discriminator.parameters()), "weight_decay": 0.0}]}

    def updates(self) -> list[Update]:
        return [Update(DISCRIMINATOR, self.discriminator_loss), Update("main", self.loss)]

    def discriminator_loss(self, model: nn.Module, wave: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        with torch.no_grad():
            fake, _ = model(wave, "generator")
        real_logits, fake_logits = model(wave, "discriminator", fake)
        loss = discriminator_loss(real_logits, fake_logits)
        return loss, {"d_loss": loss.detach()}

    def loss(self, model: nn.Module, wave: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        inner = getattr(model, "module", model)
        cfg = self.cfg
        recon, q = model(wave, "generator")  # [B, N], Quantized
        step = int(inner.step)
        w_rec = reconstruction_weight(step, cfg.recon_decay_steps, 1.0, cfg.recon_end)
        l1 = l1_waveform_loss(recon, wave)
        stft = self.stft(recon, wave)
        loss = w_rec * (cfg.l1_weight * l1 + cfg.stft_weight * stft.total) + cfg.commit_weight * q.commit_loss
        metrics: dict[str, Any] = {"l1": l1.detach(), "mrstft": stft.total.detach(), "commit": q.commit_loss.detach(),
                                   # the semantic codes' spread in this batch: a collapse shows in the training log
                                   "batch_perplexity": batch_perplexity(q.codes[..., 0], inner.codec.args.semantic_codebook_size)}
        if step >= cfg.disc_start and (cfg.adv_weight > 0 or cfg.fm_weight > 0):
            fake_logits, fake_feats = model(recon, "critic")
            with torch.no_grad():
                _, real_feats = model(wave, "critic")
            adv = generator_adversarial_loss(fake_logits)
            fm = feature_matching_loss(real_feats, fake_feats)
            loss = loss + cfg.adv_weight * adv + cfg.fm_weight * fm
            metrics.update(g_adv=adv.detach(), fm=fm.detach())
        if self.teacher is not None:
            self.teacher.to(wave.device)
            target = self.teacher(wave)  # [B, T, d_teacher]
            distill = semantic_distillation_loss(inner.semantic_proj(q.semantic), target)
            loss = loss + cfg.distill_weight * distill
            metrics["distill"] = distill.detach()
        if model.training:
            inner.step += 1
        return loss, metrics

    # ----------------------------------------------------------------------------- held out

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """MR-STFT distance of the round trip and the semantic codes' perplexity on dev clips."""
        if not self.dev_rows:
            return {}
        inner = getattr(model, "module", model)
        codec: CodecModel = inner.codec
        was_training = codec.training
        codec.eval()
        device = next(codec.parameters()).device
        n = min(self.cfg.eval_clips, len(self.dev_rows))
        dists, codes = [], []
        for i in range(n):
            wave = self._load(self.dev_rows[i * len(self.dev_rows) // n])
            wave = wave[: wave.shape[0] // self.frame * self.frame][None].to(device)  # [1, N]
            if wave.shape[1] == 0:
                continue
            c = codec.encode(wave)
            dists.append(float(self.stft(codec.decode(c), wave).total))
            codes.append(c[0, :, 0].cpu())
        codec.train(was_training)
        usage = codebook_usage(torch.cat(codes), codec.args.semantic_codebook_size)
        return {"dev_mrstft": sum(dists) / len(dists), "dev_perplexity": usage.perplexity, "dev_codes_used": float(usage.used)}


def build_codec(options: CodecRecipe) -> CodecTrainingModel:
    return CodecTrainingModel(options)


def build_codec_task(options: CodecTaskConfig, model: CodecTrainingModel) -> CodecTask:
    return CodecTask(options, model)


CODEC = ModelSpec(options=CodecRecipe, build=build_codec)
CODEC_TASK = TaskSpec(options=CodecTaskConfig, build=build_codec_task)
