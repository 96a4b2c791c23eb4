"""Training the audio-chat model with the shared trainer: next-token loss on the assistant's answer.

The recipe's ``[model] name = "audio_chat"`` builds a :class:`~voxkit.chat.model.ChatModel`:

- ``encoder = "whisper-tiny.en"`` (or a CTranslate2 / transformers Whisper folder): Whisper's
  bidirectional encoder with its pretrained weights, the one that has heard real speech (DESIGN §12);
  ``encoder = "causal"``: voxkit's causal streaming encoder, shaped by ``[model.encoder]`` and taken
  from a recogniser folder (``encoder_init``): the two encoders of one interface, to measure both.
- ``decoder_init``: a recogniser folder whose decoder starts the chat decoder. The recogniser's
  decoder is delay-conditioned (Ada-RMSNorm, ``ffn_norm(h) * (1 + g(delay))``); a chat decoder has
  no delay, so the factor at ``init_delay_tokens`` is folded into the FFN norm weights: the start
  is exactly that decoder at that delay. It already speaks the corpus's text in the same tokens.
- ``freeze_encoder`` (default): the encoder gets no gradient (its parameters leave the optimizer).

``[tasks.chat]`` reads instruction files (voxkit/chat/instructions.py). Each example becomes the
chat prompt (or the transcription request) followed by the answer and ``</s>``; the loss counts the
answer tokens and ``</s>`` only, so the model learns to answer, not to predict questions.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from voxkit.chat.args import ChatArgs
from voxkit.chat.model import ChatModel
from voxkit.errors import CheckpointError, DataError
from voxkit.lm import TransformerArgs
from voxkit.tokenizer import Tokenizer
from voxkit.train.registry import ModelSpec, TaskSpec
from voxkit.train.task import prefix_lr_groups

IGNORE = -100  # label of prompt positions (F.cross_entropy's ignore_index)


def _decoder_defaults() -> TransformerArgs:
    return TransformerArgs(dim=256, n_layers=6, head_dim=64, hidden_dim=1536, n_heads=4, n_kv_heads=2, vocab_size=5754,
                           rope_theta=1e6, tied_embeddings=True, max_seq_len=4096)


def _encoder_defaults() -> TransformerArgs:
    return TransformerArgs(dim=192, n_layers=6, head_dim=48, hidden_dim=768, n_heads=4, n_kv_heads=4, vocab_size=0,
                           use_biases=True, rope_theta=1e6, sliding_window=750)


@dataclasses.dataclass
class ChatRecipe:
    """The keys of a chat recipe's ``[model]`` section (besides ``name``)."""

    decoder: TransformerArgs = dataclasses.field(default_factory=_decoder_defaults)
    encoder: str = "whisper-tiny.en"  # a Whisper source (voxkit.chat.encoders), or "causal"
    causal_encoder: TransformerArgs = dataclasses.field(default_factory=_encoder_defaults)
    n_mels: int = 128  # the causal encoder's mel bins (a Whisper encoder brings its own)
    encoder_init: str | None = None  # causal: a recogniser folder whose encoder starts this one
    decoder_init: str | None = None  # a recogniser folder whose decoder starts this one
    init_delay_tokens: int = 6  # the recogniser's delay folded into the decoder (Ada-RMSNorm)
    freeze_encoder: bool = True


class ChatTrainingModel(ChatModel):
    """A ChatModel that records how its training checkpoint is read back (``export_config``)."""

    def export_config(self) -> dict[str, Any]:
        return self.args.to_params()


def build_chat(options: ChatRecipe) -> ChatTrainingModel:
    from voxkit.chat.encoders import load_whisper_encoder

    if options.encoder == "causal":
        args = ChatArgs(decoder=options.decoder, encoder=dataclasses.replace(options.causal_encoder, causal=True), n_mels=options.n_mels)
        model = ChatTrainingModel(args)
        if options.encoder_init:
            recogniser = _recogniser(options.encoder_init)
            _load_part(model.encoder, recogniser.encoder.state_dict(), f"{options.encoder_init} (encoder)")
    else:
        whisper = load_whisper_encoder(None if options.encoder == "whisper-tiny.en" else options.encoder)
        args = ChatArgs(decoder=options.decoder, encoder=whisper.transformer.args, n_mels=whisper.n_mels,
                        chunk_frames=whisper.window_frames, encoder_source=options.encoder)
        model = ChatTrainingModel(args)
        _load_part(model.encoder, whisper.state_dict(), options.encoder)
    if options.decoder_init:
        _load_part(model.decoder, decoder_from_recognizer(options.decoder_init, options.init_delay_tokens), options.decoder_init)
    if options.freeze_encoder:
        model.encoder.requires_grad_(False)
    return model


def _recogniser(folder: str):  # noqa: ANN202 - voxkit.asr.model.RealtimeRecognizer
    from voxkit.asr.checkpoint import load_recognizer

    return load_recognizer(folder)


def _load_part(module: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    from voxkit.checkpoint import check_state_dict

    check_state_dict(module, state, where)
    module.load_state_dict(state)


def decoder_from_recognizer(folder: str, delay_tokens: int) -> dict[str, torch.Tensor]:
    """A recogniser's decoder weights with its Ada-RMSNorm factor at ``delay_tokens`` folded into
    each FFN norm, for a decoder without delay conditioning (exactly equal at that delay)."""
    recogniser = _recogniser(folder)
    decoder = recogniser.decoder
    x = decoder.tok_embeddings.weight.new_zeros(1, 1, decoder.args.dim)  # [1, 1, D]: only its dtype and device matter
    with torch.no_grad():
        gains = decoder.delay_gains(torch.tensor([float(delay_tokens)]), x)  # n_layers x [1, 1, D] or None
        state = {k: v.clone() for k, v in decoder.state_dict().items() if ".ada_rms_norm_t_cond." not in k}
        for i, gain in enumerate(gains):
            if gain is not None:
                state[f"layers.{i}.ffn_norm.weight"] = state[f"layers.{i}.ffn_norm.weight"] * gain.reshape(-1)
    return state


# ----------------------------------------------------------------------------- the task


@dataclasses.dataclass
class ChatTaskConfig:
    """The keys of a recipe's ``[tasks.chat]`` section, with their defaults."""

    train: list[str]  # instruction files (voxkit data chat)
    dev: list[str] = dataclasses.field(default_factory=list)
    batch_size: int = 8
    max_answer_tokens: int = 160
    dev_examples: int = 64  # dev examples scored at each evaluation (loss and answer-token accuracy)
    # learning-rate factors by parameter-name prefix, e.g. {"decoder." = 0.3}: a pretrained decoder
    # fine-tuned slower than the fresh adapter
    lr_scale: dict[str, float] = dataclasses.field(default_factory=dict)


class ChatTask:
    name = "chat"

    def __init__(self, cfg: ChatTaskConfig, model: ChatModel, tokenizer: Tokenizer) -> None:
        from voxkit.chat.instructions import read_examples

        self.cfg = cfg
        self.model_args = model.args
        self.tokenizer = tokenizer
        self.examples = [e for path in cfg.train for e in read_examples(path)]
        self.dev = [e for path in cfg.dev for e in read_examples(path)][: cfg.dev_examples]
        if not self.examples:
            raise DataError(f"no instruction examples in {cfg.train}")
        self._counter = model.audio_token_count

    def optimizers(self, model: torch.nn.Module) -> dict[str, list[dict[str, Any]]]:
        return prefix_lr_groups(model, self.cfg.lr_scale, "tasks.chat.lr_scale")

    def encode(self, example: Any) -> tuple[list[int], list[int], list[torch.Tensor]]:
        """(token ids, labels, 16 kHz audios) of one instruction example."""
        from voxkit.chat.messages import parse_messages
        from voxkit.chat.template import audio_parts, encode_chat, encode_transcription

        turns = parse_messages(example.messages)
        audios = audio_parts(turns)
        if example.kind == "transcribe":
            if len(audios) != 1:
                raise DataError(f"a transcription example needs one audio, got {len(audios)}")
            prompt = encode_transcription(self._counter(audios[0].samples.shape[-1]), self.tokenizer, language=example.language)
        else:
            prompt = encode_chat(turns, self.tokenizer, audio_tokens=lambda p: self._counter(p.samples.shape[-1]))
        answer = self.tokenizer.encode(example.answer, bos=False)[: self.cfg.max_answer_tokens] + [self.tokenizer.eos_id]
        return prompt + answer, [IGNORE] * len(prompt) + answer, [a.samples for a in audios]

    def _batch(self, examples: list[Any]) -> dict[str, Any]:
        encoded = [self.encode(e) for e in examples]
        T = max(len(ids) for ids, _, _ in encoded)
        tokens = torch.zeros(len(encoded), T, dtype=torch.long)  # [B, T] right-padded with 0 (never [AUDIO])
        labels = torch.full((len(encoded), T), IGNORE, dtype=torch.long)  # [B, T]
        for b, (ids, lab, _) in enumerate(encoded):
            tokens[b, : len(ids)] = torch.tensor(ids)
            labels[b, : len(lab)] = torch.tensor(lab)
        audios = [a for _, _, clips in encoded for a in clips]
        return {"tokens": tokens, "labels": labels, "audios": audios}

    def train_batches(self, epoch: int, rank: int, world_size: int) -> Iterator[dict[str, Any]]:
        order = list(range(len(self.examples)))
        random.Random(epoch).shuffle(order)
        mine = order[rank::world_size]
        for start in range(0, len(mine) - self.cfg.batch_size + 1, self.cfg.batch_size):
            yield self._batch([self.examples[i] for i in mine[start : start + self.cfg.batch_size]])

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        plain = getattr(model, "module", model)
        mel = plain.mel_chunks(batch["audios"]) if batch["audios"] else None  # [N, n_mels, F]
        logits = model(batch["tokens"], mel)  # [B, T, V]
        pred, target = logits[:, :-1].float(), batch["labels"][:, 1:]  # position t predicts token t + 1
        loss = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1), ignore_index=IGNORE)
        with torch.no_grad():
            mask = target != IGNORE
            accuracy = ((pred.argmax(-1) == target) & mask).sum() / mask.sum().clamp(min=1)
        return loss, {"answer_token_acc": accuracy}

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        if not self.dev:
            return {}
        losses, accs = [], []
        for start in range(0, len(self.dev), self.cfg.batch_size):
            batch = self._batch(self.dev[start : start + self.cfg.batch_size])
            device = next(model.parameters()).device
            batch = {"tokens": batch["tokens"].to(device), "labels": batch["labels"].to(device), "audios": batch["audios"]}
            loss, metrics = self.loss(model, batch)
            losses.append(float(loss))
            accs.append(float(metrics["answer_token_acc"]))
        return {"dev_loss": sum(losses) / len(losses), "dev_answer_token_acc": sum(accs) / len(accs)}


def build_chat_task(options: ChatTaskConfig, model: ChatModel, tokenizer: Tokenizer) -> ChatTask:
    if tokenizer.vocab_size > model.args.decoder.vocab_size:
        raise CheckpointError(f"the recipe's tokenizer has {tokenizer.vocab_size} ids, the decoder {model.args.decoder.vocab_size}")
    for path in [*options.train, *options.dev]:
        if not Path(path).is_file():
            raise DataError(f"instruction file not found: {path} (build it with voxkit data chat)")
    return ChatTask(options, model, tokenizer)


CHAT_MODEL_SPEC = ModelSpec(options=ChatRecipe, build=build_chat)
CHAT_TASK = TaskSpec(options=ChatTaskConfig, build=build_chat_task)
